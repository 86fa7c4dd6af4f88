"""TensorProto <-> numpy, without TensorFlow.

Numeric tensors are written as ``tensor_content`` (one ``tobytes()`` of a little-endian
array) and read back with ``np.frombuffer``; the typed ``*_val`` fields that TF Serving
sends by default are read too, with TensorFlow's fill rules (one value broadcasts, a
short list is padded with its last value, no values means zeros).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from gateway.errors import InvalidInput
from gateway.pb import tensor_pb2, tensor_shape_pb2, types_pb2

__all__ = ["FLOAT_TYPES", "INT_TYPES", "datatype_of", "dtype_name", "fill_tensor_proto",
           "numpy_dtype", "to_ndarray", "to_tensor_proto"]

DT = types_pb2.DataType
FLOAT_TYPES = frozenset({DT.DT_FLOAT, DT.DT_DOUBLE, DT.DT_HALF, DT.DT_BFLOAT16})
INT_TYPES = frozenset({
    DT.DT_INT8, DT.DT_INT16, DT.DT_INT32, DT.DT_INT64,
    DT.DT_UINT8, DT.DT_UINT16, DT.DT_UINT32, DT.DT_UINT64,
})

_NUMPY: dict[int, str] = {
    DT.DT_FLOAT: "<f4",
    DT.DT_DOUBLE: "<f8",
    DT.DT_HALF: "<f2",
    DT.DT_INT8: "i1",
    DT.DT_INT16: "<i2",
    DT.DT_INT32: "<i4",
    DT.DT_INT64: "<i8",
    DT.DT_UINT8: "u1",
    DT.DT_UINT16: "<u2",
    DT.DT_UINT32: "<u4",
    DT.DT_UINT64: "<u8",
    DT.DT_BOOL: "?",
    DT.DT_COMPLEX64: "<c8",
    DT.DT_COMPLEX128: "<c16",
}

# Which typed field holds the values of each dtype when tensor_content is empty.
_VAL_FIELD: dict[int, str] = {
    DT.DT_FLOAT: "float_val",
    DT.DT_DOUBLE: "double_val",
    DT.DT_HALF: "half_val",
    DT.DT_BFLOAT16: "half_val",
    DT.DT_INT8: "int_val",
    DT.DT_INT16: "int_val",
    DT.DT_INT32: "int_val",
    DT.DT_UINT8: "int_val",
    DT.DT_UINT16: "int_val",
    DT.DT_INT64: "int64_val",
    DT.DT_UINT32: "uint32_val",
    DT.DT_UINT64: "uint64_val",
    DT.DT_BOOL: "bool_val",
    DT.DT_COMPLEX64: "scomplex_val",
    DT.DT_COMPLEX128: "dcomplex_val",
    DT.DT_STRING: "string_val",
}


_DATATYPE_BY_NUMPY: dict[str, int] = {
    **{np.dtype(spec).name: dtype for dtype, spec in _NUMPY.items()},
    "bfloat16": DT.DT_BFLOAT16,
    "object": DT.DT_STRING,
}
"""numpy dtype name → DataType: the reverse of :func:`numpy_dtype`."""


def datatype_of(array: np.ndarray, hint: int | None = None) -> int:
    """The DataType to send ``array`` as: ``hint`` (the signature's dtype), else numpy's."""
    if hint is not None:
        return hint
    try:
        return _DATATYPE_BY_NUMPY[array.dtype.name]
    except KeyError:
        raise InvalidInput(f"cannot send numpy dtype {array.dtype} to the backend") from None


def dtype_name(dtype: int) -> str:
    """``DT_FLOAT`` style name, or the number for values this build does not know."""
    try:
        return DT.Name(dtype)
    except ValueError:
        return f"DataType({dtype})"


@functools.cache
def _bfloat16() -> np.dtype | None:
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - ml_dtypes ships with numpy stacks we use
        return None
    return np.dtype(ml_dtypes.bfloat16)


@functools.cache
def numpy_dtype(dtype: int) -> np.dtype:
    """numpy dtype for a DataType number (DT_STRING -> object); else ``InvalidInput``."""
    if dtype == DT.DT_STRING:
        return np.dtype(object)
    if dtype == DT.DT_BFLOAT16 and (bf16 := _bfloat16()) is not None:
        return bf16
    spec = _NUMPY.get(dtype)
    if spec is None:
        raise InvalidInput(f"Unsupported tensor type: {dtype_name(dtype)}")
    return np.dtype(spec)


def to_tensor_proto(array: np.ndarray, dtype: int) -> tensor_pb2.TensorProto:
    """A TensorProto of ``dtype`` holding ``array`` (numeric as ``tensor_content``)."""
    tensor = tensor_pb2.TensorProto()
    fill_tensor_proto(tensor, array, dtype)
    return tensor


def fill_tensor_proto(tensor: tensor_pb2.TensorProto, array: np.ndarray, dtype: int) -> None:
    """Write ``array`` as ``dtype`` into an empty ``tensor`` in place (e.g. a request's
    ``inputs[alias]``): one copy of the bytes fewer than ``CopyFrom(to_tensor_proto(...))``."""
    array = np.asarray(array)
    tensor.dtype = dtype
    tensor.tensor_shape.dim.extend(
        tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape
    )
    if dtype == DT.DT_STRING:
        tensor.string_val.extend(
            v if isinstance(v, bytes) else _to_bytes(v) for v in array.ravel().tolist()
        )
        return
    target = numpy_dtype(dtype)
    if array.dtype != target:
        array = array.astype(target)
    tensor.tensor_content = np.ascontiguousarray(array).tobytes()


def _to_bytes(value: object) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise InvalidInput(f"String tensor element {value!r} is not bytes or str")


def _shape_of(tensor: tensor_pb2.TensorProto) -> tuple[int, ...]:
    dims = tuple(int(d.size) for d in tensor.tensor_shape.dim)
    if any(d < 0 for d in dims):
        raise InvalidInput(f"Tensor shape {list(dims)} has an unknown dimension")
    return dims


def to_ndarray(tensor: tensor_pb2.TensorProto) -> np.ndarray:
    """The numpy array a TensorProto holds (strings as an object array of ``bytes``)."""
    shape = _shape_of(tensor)
    size = math.prod(shape)
    if tensor.dtype == DT.DT_STRING:
        return _fill(_string_values(tensor), size, np.dtype(object)).reshape(shape)
    target = numpy_dtype(tensor.dtype)
    if tensor.tensor_content:
        content = tensor.tensor_content
        if len(content) != size * target.itemsize:
            raise InvalidInput(
                f"tensor_content has {len(content)} bytes, expected "
                f"{size * target.itemsize} for {dtype_name(tensor.dtype)} {list(shape)}"
            )
        return np.frombuffer(content, dtype=target).reshape(shape)
    return _fill(_typed_values(tensor, target), size, target).reshape(shape)


def _string_values(tensor: tensor_pb2.TensorProto) -> np.ndarray:
    values = np.empty(len(tensor.string_val), dtype=object)
    values[:] = list(tensor.string_val)
    return values


def _typed_values(tensor: tensor_pb2.TensorProto, target: np.dtype) -> np.ndarray:
    field = _VAL_FIELD[tensor.dtype]
    raw = getattr(tensor, field)
    if field == "half_val":
        return np.array(raw, dtype=np.int32).astype("<u2").view(target)
    if field in ("scomplex_val", "dcomplex_val"):
        parts = np.array(raw, dtype=np.float32 if field == "scomplex_val" else np.float64)
        if len(parts) % 2:
            raise InvalidInput(f"{field} has an odd number of values")
        return parts.view(target)
    if field == "int_val":
        wide = np.array(raw, dtype=np.int32)
        return wide.astype(target)
    return np.array(raw, dtype=target)


def _fill(values: np.ndarray, size: int, target: np.dtype) -> np.ndarray:
    """TensorFlow's rule: zeros if empty, pad with the last value if short."""
    count = len(values)
    if count == size:
        return values
    if count > size:
        raise InvalidInput(f"Tensor has {count} values but its shape holds {size}")
    out = np.empty(size, dtype=target)
    if count == 0:
        out[...] = b"" if target == np.dtype(object) else 0
        return out
    out[:count] = values
    out[count:] = values[-1]
    return out
