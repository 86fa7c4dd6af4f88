"""TensorProto <-> numpy without TensorFlow (gateway.tensors)."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

from gateway.errors import InvalidInput
from gateway.pb import tensor_pb2, types_pb2
from gateway.tensors import datatype_of, dtype_name, numpy_dtype, to_ndarray, to_tensor_proto

DT = types_pb2.DataType

NUMERIC = {
    DT.DT_FLOAT: np.float32,
    DT.DT_DOUBLE: np.float64,
    DT.DT_HALF: np.float16,
    DT.DT_BFLOAT16: ml_dtypes.bfloat16,
    DT.DT_INT8: np.int8,
    DT.DT_INT16: np.int16,
    DT.DT_INT32: np.int32,
    DT.DT_INT64: np.int64,
    DT.DT_UINT8: np.uint8,
    DT.DT_UINT16: np.uint16,
    DT.DT_UINT32: np.uint32,
    DT.DT_UINT64: np.uint64,
    DT.DT_BOOL: np.bool_,
    DT.DT_COMPLEX64: np.complex64,
    DT.DT_COMPLEX128: np.complex128,
}


def sample(dtype: Any, shape: tuple[int, ...] = (2, 3)) -> np.ndarray:
    size = int(np.prod(shape))
    if dtype is np.bool_:
        return (np.arange(size) % 3 == 0).reshape(shape)
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        values = [int(info.min), int(info.max), 0, 1, 5, int(info.max) - 1]
        return np.array((values * size)[:size], dtype=dtype).reshape(shape)
    if np.issubdtype(np.dtype(dtype), np.complexfloating):
        return (np.arange(size) + 1j * np.arange(size)[::-1]).astype(dtype).reshape(shape)
    return (np.arange(size, dtype=np.float64) * 0.5 - 1.25).astype(dtype).reshape(shape)


@pytest.mark.parametrize("dtype", sorted(NUMERIC), ids=lambda d: DT.Name(d))
def test_numeric_round_trip_via_tensor_content(dtype: int) -> None:
    array = sample(NUMERIC[dtype])
    proto = to_tensor_proto(array, dtype)
    assert proto.dtype == dtype
    assert [d.size for d in proto.tensor_shape.dim] == [2, 3]
    assert proto.tensor_content == np.ascontiguousarray(array).astype(
        numpy_dtype(dtype)
    ).tobytes()
    assert not proto.float_val and not proto.int_val and not proto.half_val
    back = to_ndarray(tensor_pb2.TensorProto.FromString(proto.SerializeToString()))
    assert back.dtype == numpy_dtype(dtype)
    assert back.shape == array.shape
    assert back.tobytes() == array.astype(numpy_dtype(dtype)).tobytes()


def test_tensor_content_is_little_endian() -> None:
    proto = to_tensor_proto(np.array([1.0], dtype=">f4"), DT.DT_FLOAT)
    assert proto.tensor_content == b"\x00\x00\x80\x3f"


def test_to_tensor_proto_casts_to_the_requested_dtype() -> None:
    proto = to_tensor_proto(np.array([[1, 2]], dtype=np.int64), DT.DT_FLOAT)
    assert to_ndarray(proto).tolist() == [[1.0, 2.0]]
    assert to_ndarray(proto).dtype == np.float32


def test_scalar_round_trip() -> None:
    proto = to_tensor_proto(np.array(7, np.int32), DT.DT_INT32)
    assert len(proto.tensor_shape.dim) == 0
    back = to_ndarray(proto)
    assert back.shape == () and back.item() == 7


def test_strings_round_trip() -> None:
    array = np.empty((2, 2), dtype=object)
    array[:] = [[b"a", b"\xff\x00"], [b"", "\u00e9"]]
    proto = to_tensor_proto(array, DT.DT_STRING)
    assert list(proto.string_val) == [b"a", b"\xff\x00", b"", "\u00e9".encode()]
    back = to_ndarray(proto)
    assert back.dtype == object and back.shape == (2, 2)
    assert back.tolist() == [[b"a", b"\xff\x00"], [b"", "\u00e9".encode()]]


def test_strings_reject_non_bytes() -> None:
    with pytest.raises(InvalidInput):
        to_tensor_proto(np.array([1, 2], dtype=object), DT.DT_STRING)


# ------------------------------------------------------------------- typed *_val fields


def typed(dtype: int, shape: list[int], **fields: Any) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **fields)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


@pytest.mark.parametrize(
    "dtype, field, values, expected_dtype",
    [
        (DT.DT_FLOAT, "float_val", [1.5, -2.0, 3.25, 0.0], np.float32),
        (DT.DT_DOUBLE, "double_val", [1e300, -2.0, 0.1, 0.0], np.float64),
        (DT.DT_INT32, "int_val", [-(2**31), 2**31 - 1, 0, 5], np.int32),
        (DT.DT_INT16, "int_val", [-32768, 32767, 0, 5], np.int16),
        (DT.DT_INT8, "int_val", [-128, 127, 0, 5], np.int8),
        (DT.DT_UINT8, "int_val", [0, 255, 1, 5], np.uint8),
        (DT.DT_UINT16, "int_val", [0, 65535, 1, 5], np.uint16),
        (DT.DT_INT64, "int64_val", [-(2**63), 2**63 - 1, 0, 5], np.int64),
        (DT.DT_UINT32, "uint32_val", [0, 2**32 - 1, 1, 5], np.uint32),
        (DT.DT_UINT64, "uint64_val", [0, 2**64 - 1, 1, 5], np.uint64),
        (DT.DT_BOOL, "bool_val", [True, False, False, True], np.bool_),
        (DT.DT_STRING, "string_val", [b"a", b"bc", b"", b"\xff"], object),
    ],
)
def test_typed_fields(dtype: int, field: str, values: list[Any], expected_dtype: Any) -> None:
    proto = typed(dtype, [2, 2], **{field: values})
    back = to_ndarray(tensor_pb2.TensorProto.FromString(proto.SerializeToString()))
    assert back.dtype == np.dtype(expected_dtype)
    assert back.shape == (2, 2)
    assert back.ravel().tolist() == values


@pytest.mark.parametrize("dtype, np_dtype", [(DT.DT_HALF, np.float16),
                                             (DT.DT_BFLOAT16, ml_dtypes.bfloat16)])
def test_half_val_holds_bit_patterns(dtype: int, np_dtype: Any) -> None:
    values = np.array([0.5, -2.0, np.inf, 65504 if np_dtype is np.float16 else 3e38], np_dtype)
    bits = values.view(np.uint16).astype(np.int32).tolist()
    back = to_ndarray(typed(dtype, [4], half_val=bits))
    assert back.dtype == np.dtype(np_dtype)
    assert back.view(np.uint16).tolist() == values.view(np.uint16).tolist()


def test_complex_typed_fields_are_pairs() -> None:
    back = to_ndarray(typed(DT.DT_COMPLEX64, [2], scomplex_val=[1.0, 2.0, 3.0, -4.0]))
    assert back.tolist() == [1 + 2j, 3 - 4j]
    back = to_ndarray(typed(DT.DT_COMPLEX128, [1], dcomplex_val=[0.5, 0.25]))
    assert back.tolist() == [0.5 + 0.25j]


@pytest.mark.parametrize(
    "dtype, field, value",
    [
        (DT.DT_FLOAT, "float_val", 3.0),
        (DT.DT_INT32, "int_val", 7),
        (DT.DT_INT64, "int64_val", -9),
        (DT.DT_BOOL, "bool_val", True),
        (DT.DT_STRING, "string_val", b"x"),
        (DT.DT_UINT64, "uint64_val", 2**64 - 1),
    ],
)
def test_single_value_broadcasts(dtype: int, field: str, value: Any) -> None:
    back = to_ndarray(typed(dtype, [2, 3], **{field: [value]}))
    assert back.shape == (2, 3)
    assert back.ravel().tolist() == [value] * 6


def test_short_value_list_is_padded_with_the_last_value() -> None:
    back = to_ndarray(typed(DT.DT_INT32, [5], int_val=[1, 2]))
    assert back.tolist() == [1, 2, 2, 2, 2]


def test_no_values_means_zeros() -> None:
    assert to_ndarray(typed(DT.DT_FLOAT, [3])).tolist() == [0.0, 0.0, 0.0]
    assert to_ndarray(typed(DT.DT_STRING, [2])).tolist() == [b"", b""]


def test_empty_tensor() -> None:
    back = to_ndarray(typed(DT.DT_FLOAT, [0, 4]))
    assert back.shape == (0, 4) and back.dtype == np.float32


def test_too_many_values_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="3 values"):
        to_ndarray(typed(DT.DT_FLOAT, [2], float_val=[1, 2, 3]))


def test_wrong_tensor_content_size_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="tensor_content has 3 bytes"):
        to_ndarray(typed(DT.DT_FLOAT, [1], tensor_content=b"abc"))


def test_unknown_dimension_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="unknown dimension"):
        to_ndarray(typed(DT.DT_FLOAT, [-1]))


@pytest.mark.parametrize("dtype", [DT.DT_RESOURCE, DT.DT_VARIANT, DT.DT_QINT8, DT.DT_INVALID])
def test_unsupported_dtypes(dtype: int) -> None:
    with pytest.raises(InvalidInput, match="Unsupported tensor type"):
        numpy_dtype(dtype)


def test_numpy_dtype_of_strings_is_object() -> None:
    assert numpy_dtype(DT.DT_STRING) == np.dtype(object)
    assert dtype_name(DT.DT_FLOAT) == "DT_FLOAT"
    assert dtype_name(999) == "DataType(999)"


def test_datatype_of() -> None:
    assert datatype_of(np.zeros(2, np.float32)) == types_pb2.DT_FLOAT
    assert datatype_of(np.zeros(2, np.uint8)) == types_pb2.DT_UINT8
    assert datatype_of(np.array([b"a"], dtype=object)) == types_pb2.DT_STRING
    assert datatype_of(np.zeros(2, np.float32), types_pb2.DT_HALF) == types_pb2.DT_HALF
    with pytest.raises(InvalidInput):
        datatype_of(np.zeros(2, "datetime64[s]"))
