"""Open Inference Protocol (KServe v2) tensors: datatypes, shapes, binary and JSON data.

Shared by the REST and gRPC sides of the v2 codec. Every function takes the request's
own ``datatype`` and ``shape`` and either returns a numpy array of exactly that shape
or raises :class:`~gateway.errors.InvalidInput` naming the tensor (``where``).

Binary layout (Triton's binary tensor data extension and ``raw_*_contents``):
little-endian, row-major, no padding; BOOL one byte 0 or 1; BYTES each element a 4-byte
little-endian length then its bytes. Numeric binary data becomes an array with one
``np.frombuffer`` (a read-only view of the caller's buffer, no copy).
"""

from __future__ import annotations

import functools
import itertools
import math
import struct
from typing import Any

import numpy as np
import orjson

from gateway.errors import InvalidInput, Unimplemented
from gateway.pb import types_pb2
from gateway.tensors import numpy_dtype

__all__ = [
    "DATATYPES",
    "MAX_ELEMENTS",
    "MAX_RANK",
    "array_from_list",
    "array_from_raw",
    "array_to_raw",
    "array_values",
    "check_shape",
    "datatype_of",
    "json_data",
    "tf_dtype",
    "v2_datatype",
]

DT = types_pb2.DataType
DATATYPES: dict[str, int] = {
    "BOOL": DT.DT_BOOL,
    "UINT8": DT.DT_UINT8,
    "UINT16": DT.DT_UINT16,
    "UINT32": DT.DT_UINT32,
    "UINT64": DT.DT_UINT64,
    "INT8": DT.DT_INT8,
    "INT16": DT.DT_INT16,
    "INT32": DT.DT_INT32,
    "INT64": DT.DT_INT64,
    "FP16": DT.DT_HALF,
    "FP32": DT.DT_FLOAT,
    "FP64": DT.DT_DOUBLE,
    "BF16": DT.DT_BFLOAT16,
    "BYTES": DT.DT_STRING,
}
_TF_TO_V2 = {dtype: name for name, dtype in DATATYPES.items()}
MAX_RANK = 32  # numpy's limit before 2.0
MAX_ELEMENTS = 2**32  # product of the non-zero dims; beyond any body or gRPC message
_INT_MAX = 2**63 - 1
_OPT_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_LENGTH = struct.Struct("<I")


def tf_dtype(datatype: Any, where: str = "tensor") -> int:
    """The TensorFlow ``DataType`` for a v2 datatype name; anything else is a 400."""
    if isinstance(datatype, str) and datatype in DATATYPES:
        return DATATYPES[datatype]
    raise InvalidInput(
        f"{where}: unsupported datatype {_short(datatype)}; "
        f"expected one of {', '.join(DATATYPES)}"
    )


def v2_datatype(dtype: int) -> str | None:
    """The v2 name of a TensorFlow ``DataType`` (None for types v2 cannot carry)."""
    return _TF_TO_V2.get(dtype)


@functools.cache
def _numpy(datatype: str) -> np.dtype:
    return numpy_dtype(DATATYPES[datatype])


@functools.cache
def _by_numpy() -> dict[np.dtype, str]:
    table: dict[np.dtype, str] = {}
    for name in DATATYPES:
        try:
            table[_numpy(name)] = name
        except InvalidInput:  # pragma: no cover - BF16 without ml_dtypes
            continue
    return table


def datatype_of(array: np.ndarray) -> str:
    """The v2 datatype of an array (object arrays are BYTES); 501 for others."""
    dtype = array.dtype
    if dtype.kind in "iufb" and dtype.byteorder == ">":
        dtype = dtype.newbyteorder("<")
    name = _by_numpy().get(dtype)
    if name is None:
        raise Unimplemented(f"tensor type {dtype.name} has no v2 datatype")
    return name


def check_shape(shape: Any, where: str) -> tuple[int, ...]:
    """A shape as a tuple of non-negative ints, bounded in rank and element count."""
    if not isinstance(shape, (list, tuple)):
        raise InvalidInput(f"{where}: 'shape' must be an array of integers")
    if len(shape) > MAX_RANK:
        raise InvalidInput(f"{where}: shape has {len(shape)} dimensions, at most {MAX_RANK}")
    dims = tuple(shape)
    for dim in dims:
        if type(dim) is not int:
            raise InvalidInput(f"{where}: shape {_short(list(dims))} must hold integers")
        if not 0 <= dim <= _INT_MAX:
            raise InvalidInput(f"{where}: shape {list(dims)} has a negative or huge dimension")
    if math.prod(d for d in dims if d) > MAX_ELEMENTS:
        raise InvalidInput(f"{where}: shape {list(dims)} has more than {MAX_ELEMENTS} elements")
    return dims


def array_from_raw(
    buf: bytes | memoryview, datatype: str, shape: tuple[int, ...], where: str
) -> np.ndarray:
    """Binary tensor data (a REST binary section or one ``raw_input_contents``)."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _unpack_bytes(memoryview(buf), count, where).reshape(shape)
    dtype = _numpy(datatype)
    if len(buf) != count * dtype.itemsize:
        raise InvalidInput(
            f"{where}: {len(buf)} bytes of binary data, but {datatype} {list(shape)} "
            f"takes {count * dtype.itemsize}"
        )
    if datatype == "BOOL" and count and np.frombuffer(buf, np.uint8).max() > 1:
        raise InvalidInput(f"{where}: BOOL binary data must be bytes 0 or 1")
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def _unpack_bytes(buf: memoryview, count: int, where: str) -> np.ndarray:
    if count * _LENGTH.size > len(buf):
        raise InvalidInput(
            f"{where}: {len(buf)} bytes cannot hold {count} BYTES elements "
            "(each needs a 4-byte length)"
        )
    out = np.empty(count, dtype=object)
    offset, end = 0, len(buf)
    for index in range(count):
        if offset + _LENGTH.size > end:
            raise InvalidInput(f"{where}: BYTES element {index} has no 4-byte length")
        (length,) = _LENGTH.unpack_from(buf, offset)
        offset += _LENGTH.size
        if offset + length > end:
            raise InvalidInput(
                f"{where}: BYTES element {index} claims {length} bytes, {end - offset} remain"
            )
        out[index] = bytes(buf[offset : offset + length])
        offset += length
    if offset != end:
        raise InvalidInput(
            f"{where}: {end - offset} bytes left after {count} BYTES elements"
        )
    return out


def array_to_raw(array: np.ndarray, datatype: str) -> bytes:
    """The binary form of an array of ``datatype`` (row-major, little-endian)."""
    if datatype == "BYTES":
        return _pack_bytes(array)
    target = _numpy(datatype)
    return np.ascontiguousarray(array, dtype=target).tobytes()


def array_values(array: np.ndarray, datatype: str, where: str = "output") -> list[Any]:
    """Flat Python values for typed gRPC contents (BYTES elements as ``bytes``)."""
    values = array.ravel().tolist()
    if datatype == "BYTES":
        return [_as_bytes(v, where) for v in values]
    return values


def _pack_bytes(array: np.ndarray) -> bytes:
    parts: list[bytes] = []
    for item in array_values(array, "BYTES"):
        if len(item) >= 2**32:
            raise InvalidInput("BYTES element longer than 4 GiB")
        parts.append(_LENGTH.pack(len(item)))
        parts.append(item)
    return b"".join(parts)


def array_from_list(
    values: Any, datatype: str, shape: tuple[int, ...], where: str
) -> np.ndarray:
    """JSON ``data`` (flat or regularly nested) or typed gRPC contents, type-checked.

    Integer types take integers only, range-checked; float types take numbers and
    round like TF Serving's cast (beyond range is ±inf); BOOL takes booleans only;
    BYTES takes strings (UTF-8 encoded) or bytes.
    """
    flat, kinds = _flatten(values, where)
    count = math.prod(shape)
    if len(flat) != count:
        raise InvalidInput(
            f"{where}: shape {list(shape)} holds {count} elements but data has {len(flat)}"
        )
    return _typed_array(flat, kinds, datatype, where).reshape(shape)


def _flatten(values: Any, where: str) -> tuple[list[Any], set[type]]:
    if not isinstance(values, list):
        raise InvalidInput(f"{where}: 'data' must be a JSON array")
    level = values
    kinds = set(map(type, level))
    while list in kinds:
        if len(kinds) != 1 or len(set(map(len, level))) != 1:
            raise InvalidInput(
                f"{where}: 'data' is ragged (nested arrays of unequal depth or length)"
            )
        level = list(itertools.chain.from_iterable(level))
        kinds = set(map(type, level))
    return level, kinds


def _typed_array(flat: list[Any], kinds: set[type], datatype: str, where: str) -> np.ndarray:
    if datatype == "BYTES":
        _require(flat, kinds, {str, bytes}, f"{where}: BYTES data must be strings")
        out = np.empty(len(flat), dtype=object)
        out[:] = [_as_bytes(v, where) for v in flat]
        return out
    if datatype == "BOOL":
        _require(flat, kinds, {bool}, f"{where}: BOOL data must be true or false")
        return np.array(flat, dtype=bool)
    dtype = _numpy(datatype)
    if dtype.kind == "f":
        _require(flat, kinds, {int, float}, f"{where}: {datatype} data must be numbers")
        return _floats(flat, dtype)
    _require(flat, kinds, {int}, f"{where}: {datatype} data must be integers")
    info = np.iinfo(dtype)
    if flat and (min(flat) < info.min or max(flat) > info.max):
        bad = next(v for v in flat if not info.min <= v <= info.max)
        raise InvalidInput(
            f"{where}: {bad} is out of range for {datatype} [{info.min}, {info.max}]"
        )
    return np.array(flat, dtype=dtype)


def _require(flat: list[Any], kinds: set[type], allowed: set[type], message: str) -> None:
    if kinds <= allowed:
        return
    bad = next(v for v in flat if type(v) not in allowed)
    raise InvalidInput(f"{message}, got {_short(bad)}")


def _floats(flat: list[Any], dtype: np.dtype) -> np.ndarray:
    try:
        wide = np.array(flat, dtype=np.float64)
    except OverflowError:  # a JSON integer beyond float64: ±inf, as a double cast gives
        wide = np.array([_big_float(v) for v in flat], dtype=np.float64)
    with np.errstate(over="ignore"):
        return wide.astype(dtype)


def _big_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _as_bytes(value: Any, where: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{where}: string {_short(value)} is not valid UTF-8") from None
    raise InvalidInput(f"{where}: BYTES element {_short(value)} is not bytes or a string")


def json_data(array: np.ndarray, datatype: str, where: str) -> bytes:
    """JSON text of an array's elements, flat and row-major.

    Floats print as floats (``2.0``) in shortest round-trip form of their dtype (BF16 via
    float32, which is what tritonclient reads them into); NaN and ±Infinity as the
    literals ``NaN``, ``Infinity``, ``-Infinity`` (Triton's writer does the same; strict
    JSON has no spelling for them). BYTES elements print as UTF-8 strings.
    """
    flat = array.ravel()
    if datatype == "BYTES":
        return orjson.dumps([_utf8_text(v, where) for v in flat.tolist()])
    if datatype == "BF16":
        flat = flat.astype(np.float32)
    flat = np.ascontiguousarray(flat, dtype=flat.dtype.newbyteorder("="))
    if flat.dtype.kind != "f":
        return orjson.dumps(flat, option=_OPT_NUMPY)
    finite = np.isfinite(flat)
    if finite.all():
        return orjson.dumps(flat, option=_OPT_NUMPY)
    text = orjson.dumps(np.where(finite, flat, 0), option=_OPT_NUMPY)
    tokens = text[1:-1].split(b",")
    for index in np.flatnonzero(~finite).tolist():
        value = float(flat[index])
        tokens[index] = b"NaN" if math.isnan(value) else b"Infinity" if value > 0 else b"-Infinity"
    return b"[" + b",".join(tokens) + b"]"


def _utf8_text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except (UnicodeDecodeError, TypeError):
        raise InvalidInput(
            f"{where}: BYTES output is not valid UTF-8 and cannot be JSON; "
            "request it as binary data (parameters.binary_data: true)"
        ) from None


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
