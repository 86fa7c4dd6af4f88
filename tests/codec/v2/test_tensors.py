"""v2 datatypes, shapes, binary framing and JSON data text: gateway.codec.v2.tensors."""

from __future__ import annotations

import json
import struct

import ml_dtypes
import numpy as np
import pytest

from gateway.codec.v2.tensors import (
    DATATYPES,
    MAX_ELEMENTS,
    array_from_list,
    array_from_raw,
    array_to_raw,
    array_values,
    check_shape,
    datatype_of,
    json_data,
    tf_dtype,
    v2_datatype,
)
from gateway.errors import InvalidInput, Unimplemented
from gateway.pb import types_pb2

DT = types_pb2.DataType
# (v2 name, TensorFlow type, numpy dtype, size in bytes per the protocol's table)
TABLE = [
    ("BOOL", DT.DT_BOOL, np.dtype(bool), 1),
    ("UINT8", DT.DT_UINT8, np.dtype(np.uint8), 1),
    ("UINT16", DT.DT_UINT16, np.dtype(np.uint16), 2),
    ("UINT32", DT.DT_UINT32, np.dtype(np.uint32), 4),
    ("UINT64", DT.DT_UINT64, np.dtype(np.uint64), 8),
    ("INT8", DT.DT_INT8, np.dtype(np.int8), 1),
    ("INT16", DT.DT_INT16, np.dtype(np.int16), 2),
    ("INT32", DT.DT_INT32, np.dtype(np.int32), 4),
    ("INT64", DT.DT_INT64, np.dtype(np.int64), 8),
    ("FP16", DT.DT_HALF, np.dtype(np.float16), 2),
    ("FP32", DT.DT_FLOAT, np.dtype(np.float32), 4),
    ("FP64", DT.DT_DOUBLE, np.dtype(np.float64), 8),
    ("BF16", DT.DT_BFLOAT16, np.dtype(ml_dtypes.bfloat16), 2),
    ("BYTES", DT.DT_STRING, np.dtype(object), None),
]


@pytest.mark.parametrize(("name", "tf_type", "dtype", "size"), TABLE)
def test_datatype_table_both_ways(name: str, tf_type: int, dtype: np.dtype,
                                  size: int | None) -> None:
    assert tf_dtype(name) == tf_type
    assert v2_datatype(tf_type) == name
    assert datatype_of(np.zeros(2, dtype)) == name
    if size is not None:
        assert dtype.itemsize == size
        assert len(array_to_raw(np.zeros(3, dtype), name)) == 3 * size


def test_the_table_is_exactly_the_protocols() -> None:
    assert sorted(DATATYPES) == sorted(row[0] for row in TABLE)


@pytest.mark.parametrize("bad", ["FLOAT", "fp32", "", None, 5, ["FP32"]])
def test_unknown_datatypes_are_400(bad: object) -> None:
    with pytest.raises(InvalidInput, match=r"unsupported datatype.*BOOL, UINT8"):
        tf_dtype(bad, "input 'x'")


def test_tensorflow_types_v2_cannot_carry() -> None:
    for tf_type in (DT.DT_COMPLEX64, DT.DT_RESOURCE, DT.DT_VARIANT, DT.DT_QINT8):
        assert v2_datatype(tf_type) is None
    with pytest.raises(Unimplemented):
        datatype_of(np.zeros(1, np.complex128))
    assert datatype_of(np.zeros(1, ">f8")) == "FP64"


def test_check_shape() -> None:
    assert check_shape([2, 0, 3], "x") == (2, 0, 3)
    assert check_shape((), "x") == ()
    assert check_shape([0, MAX_ELEMENTS], "x") == (0, MAX_ELEMENTS)
    for bad in ([-1], [1.0], [True], ["2"], [None], "22", None, {"a": 1}, [2**63],
                [MAX_ELEMENTS + 1], [2**16, 2**16, 2], [1] * 33):
        with pytest.raises(InvalidInput):
            check_shape(bad, "x")


def frame(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in items)


def test_bytes_framing_is_length_prefixed_little_endian() -> None:
    array = np.array([[b"ab", ""], ["é", b"\x00" * 300]], dtype=object)
    raw = array_to_raw(array, "BYTES")
    assert raw == frame(b"ab", b"", "é".encode(), b"\x00" * 300)
    back = array_from_raw(raw, "BYTES", (2, 2), "x")
    assert back.tolist() == [[b"ab", b""], ["é".encode(), b"\x00" * 300]]
    assert all(type(v) is bytes for v in back.ravel())
    assert array_values(array, "BYTES")[2] == "é".encode()


@pytest.mark.parametrize(("name", "tf_type", "dtype", "size"), TABLE[:-1])
def test_raw_round_trip_is_little_endian_row_major(name: str, tf_type: int, dtype: np.dtype,
                                                    size: int) -> None:
    array = (np.arange(12) % 2 if name == "BOOL" else np.arange(12)).astype(dtype)
    matrix = array.reshape(3, 4).T  # not C-contiguous
    raw = array_to_raw(matrix, name)
    assert raw == np.ascontiguousarray(matrix).astype(dtype.newbyteorder("<")).tobytes()
    np.testing.assert_array_equal(array_from_raw(raw, name, (4, 3), "x"), matrix)


def test_raw_bool_accepts_only_zero_and_one() -> None:
    np.testing.assert_array_equal(array_from_raw(b"\x00\x01", "BOOL", (2,), "x"), [False, True])
    with pytest.raises(InvalidInput, match="0 or 1"):
        array_from_raw(b"\x00\xff", "BOOL", (2,), "x")


def test_raw_numeric_is_a_view_not_a_copy() -> None:
    body = bytearray(np.arange(4, dtype="<i4").tobytes())
    view = array_from_raw(memoryview(body), "INT32", (4,), "x")
    body[0] = 9
    assert view[0] == 9


def json_text(array: np.ndarray, datatype: str) -> str:
    return json_data(array, datatype, "y").decode()


def test_json_float_text() -> None:
    assert json_text(np.array([2.0, 0.1, 1e-7, 3.4028235e38], np.float32), "FP32") == (
        "[2.0,0.1,1e-7,3.4028235e+38]")
    assert json_text(np.array([0.1, 1e300, -0.0], np.float64), "FP64") == "[0.1,1e+300,-0.0]"
    assert json_text(np.array([0.1], np.float16), "FP16") == "[0.099975586]"
    assert json_text(np.array([0.1], ml_dtypes.bfloat16), "BF16") == "[0.100097656]"
    assert json_text(np.array([np.nan, 1.0, np.inf], np.float32), "FP32") == (
        "[NaN,1.0,Infinity]")
    assert json_text(np.array([-np.inf], np.float16), "FP16") == "[-Infinity]"
    assert json_text(np.zeros((0, 2), np.float32), "FP32") == "[]"
    parsed = json.loads(json_text(np.array([[1.5, np.nan]], np.float64), "FP64"))
    assert parsed[0] == 1.5 and parsed[1] != parsed[1]


def test_json_integer_and_bool_text() -> None:
    assert json_text(np.array([-(2**63), 2**63 - 1]), "INT64") == (
        "[-9223372036854775808,9223372036854775807]")
    assert json_text(np.array([2**64 - 1], np.uint64), "UINT64") == "[18446744073709551615]"
    assert json_text(np.array([[True], [False]]), "BOOL") == "[true,false]"
    assert json_text(np.array(["é", b"a"], dtype=object), "BYTES") == '["é","a"]'


def test_list_values_from_grpc_contents() -> None:
    got = array_from_list([b"a", b"\xff"], "BYTES", (2,), "x")
    assert got.tolist() == [b"a", b"\xff"]
    np.testing.assert_array_equal(array_from_list([1, 2], "FP16", (2,), "x"), [1.0, 2.0])
    np.testing.assert_array_equal(array_from_list([2**64 - 1], "UINT64", (1,), "x"), [2**64 - 1])
    with pytest.raises(InvalidInput, match=r"true or false, got 1\.0"):
        array_from_list([1.0], "BOOL", (1,), "x")
    with pytest.raises(InvalidInput, match="out of range for INT16"):
        array_from_list([40000], "INT16", (1,), "x")
