"""One JSON value (nested lists) → one numpy array of a signature dtype.

numpy's C conversion is used when a scan of the raw body proves that no string,
``true``/``false`` or ``null`` can hide among the numbers (a few ``memchr`` passes); when
that proof fails, or numpy refuses the data, a strict walker re-reads the value to accept
it or name the exact problem, with TF Serving's ``json_tensor.cc`` messages.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.codec.values import decode_b64_object, is_object, json_type, short_json, utf8
from gateway.errors import InvalidInput
from gateway.pb import types_pb2
from gateway.signatures import TensorSpec
from gateway.tensors import FLOAT_TYPES, INT_TYPES, dtype_name, numpy_dtype

__all__ = ["BodyScan", "rows_to_array", "shape_text", "value_to_array"]

DT = types_pb2.DataType
_MAX_RANK = 64
_F64_MAX_INT = int(np.finfo(np.float64).max)

@dataclass(frozen=True, slots=True)
class _Scan:
    """What the raw bytes say about the values: string values and bare literals."""

    value_strings: int
    literals: bool


def _scan(raw: bytes) -> _Scan:
    """Count string *values* (not keys) and find true/false/null outside strings."""
    if raw.find(b"\\") >= 0:  # escapes make quote pairing ambiguous: assume the worst
        return _Scan(value_strings=1 << 30, literals=True)
    starts: list[int] = []
    ends: list[int] = []
    values = 0
    size = len(raw)
    pos = raw.find(b'"')
    while pos >= 0:
        end = raw.find(b'"', pos + 1)
        if end < 0:
            break
        starts.append(pos)
        ends.append(end)
        nxt = end + 1
        while nxt < size and raw[nxt] in b" \t\r\n":
            nxt += 1
        if nxt >= size or raw[nxt] != 0x3A:  # not followed by ':' -> a value
            values += 1
        pos = raw.find(b'"', end + 1)
    # every one of true/false/null contains a 'u' or an 'l'; numbers contain neither
    literals = _outside_strings(raw, b"u", starts, ends) or _outside_strings(
        raw, b"l", starts, ends
    )
    return _Scan(value_strings=values, literals=literals)


def _outside_strings(raw: bytes, char: bytes, starts: list[int], ends: list[int]) -> bool:
    pos = raw.find(char)
    while pos >= 0:
        i = bisect.bisect_right(starts, pos) - 1
        if i < 0 or pos > ends[i]:
            return True
        pos = raw.find(char, ends[i] + 1)
    return False


class BodyScan:
    """What the raw request body allows, computed once per request and only if needed."""

    def __init__(self, raw: bytes, signature_name: str | None) -> None:
        self.raw = raw
        self.signature_name = signature_name
        self._scan: _Scan | None = None

    @property
    def scan(self) -> _Scan:
        if self._scan is None:
            self._scan = _scan(self.raw)
        return self._scan

    def numbers_only(self) -> bool:
        """True when the body provably holds no string values and no literals."""
        allowed = 1 if isinstance(self.signature_name, str) else 0
        scan = self.scan
        return not scan.literals and scan.value_strings <= allowed


def rows_to_array(ctx: BodyScan, spec: TensorSpec, values: list[Any]) -> np.ndarray:
    """Stack per-instance values into one batch array (fast path, else strict)."""
    array = _fast_array(ctx, spec, values)
    if array is not None:
        return array
    target = numpy_dtype(spec.dtype)
    leaves: list[Any] = []
    first_shape: tuple[int, ...] | None = None
    for index, value in enumerate(values):
        try:
            item, shape = _strict_leaves(value, spec)
        except InvalidInput as exc:
            raise InvalidInput(
                f"Failed to process element: {index} of 'instances' list (input "
                f"'{spec.alias}'). Error: {exc.message}"
            ) from None
        if first_shape is None:
            first_shape = shape
        elif math.prod(shape) != math.prod(first_shape):
            raise InvalidInput(
                f"Expecting tensor size: {math.prod(first_shape)} but got: "
                f"{math.prod(shape)} (element {index} of 'instances', input '{spec.alias}')"
            )
        elif shape != first_shape:
            raise InvalidInput(
                f"Expecting shape {shape_text(first_shape)} but got: {shape_text(shape)} "
                f"(element {index} of 'instances', input '{spec.alias}')"
            )
        leaves.extend(item)
    assert first_shape is not None
    return _leaves_to_array(leaves, (len(values), *first_shape), spec, target)


def value_to_array(ctx: BodyScan, spec: TensorSpec, value: Any, where: str) -> np.ndarray:
    array = _fast_array(ctx, spec, value)
    if array is not None:
        return array
    try:
        leaves, shape = _strict_leaves(value, spec)
    except InvalidInput as exc:
        raise InvalidInput(f"Failed to process {where}. Error: {exc.message}") from None
    return _leaves_to_array(leaves, shape, spec, numpy_dtype(spec.dtype))


def _fast_array(ctx: BodyScan, spec: TensorSpec, value: Any) -> np.ndarray | None:
    """numpy's C conversion when the body provably fits the dtype; else ``None``."""
    dtype = spec.dtype
    if dtype == DT.DT_STRING or is_object(value):
        return None
    try:
        if dtype in FLOAT_TYPES:
            if not ctx.numbers_only():
                return None
            with np.errstate(over="ignore"):
                array = np.array(value, dtype=numpy_dtype(dtype))
            if dtype != DT.DT_DOUBLE and np.isinf(array).any():
                _check_float_overflow(spec, value, array)
            return array
        inferred = np.array(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if dtype == DT.DT_BOOL:
        return inferred if inferred.dtype == np.bool_ else None
    if dtype in INT_TYPES and inferred.dtype.kind in "iu" and not ctx.scan.literals:
        target = numpy_dtype(dtype)
        if inferred.size:
            info = np.iinfo(target)
            if int(inferred.min()) < info.min or int(inferred.max()) > info.max:
                return None
        return inferred.astype(target)
    return None


def _check_float_overflow(spec: TensorSpec, value: Any, array: np.ndarray) -> None:
    """A finite JSON number that became +-inf in a narrow float dtype is a 400."""
    source = np.array(value, dtype=np.float64)
    lost = np.isinf(array) & np.isfinite(source)
    if lost.any():
        raise InvalidInput(
            f"Cannot convert JSON value: {float(source[lost][0])!r} to "
            f"{dtype_name(spec.dtype)} without loss of precision (input '{spec.alias}')"
        )


def _leaves_to_array(
    leaves: list[Any], shape: tuple[int, ...], spec: TensorSpec, target: np.dtype
) -> np.ndarray:
    if spec.dtype == DT.DT_STRING:
        array = np.empty(len(leaves), dtype=object)
        array[:] = leaves
        return array.reshape(shape)
    if spec.dtype in FLOAT_TYPES:
        with np.errstate(over="ignore"):
            array = np.array(leaves, dtype=np.float64).astype(target)
        if spec.dtype != DT.DT_DOUBLE and np.isinf(array).any():
            _check_float_overflow(spec, leaves, array)
        return array.reshape(shape)
    return np.array(leaves, dtype=target).reshape(shape)


def _strict_leaves(value: Any, spec: TensorSpec) -> tuple[list[Any], tuple[int, ...]]:
    """TF Serving's FillTensorProto: dense shape from first elements, every leaf typed."""
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if len(shape) > _MAX_RANK:
            raise InvalidInput(f"JSON lists nested deeper than {_MAX_RANK} levels")
        if not probe:
            break
        probe = probe[0]
    rank = len(shape)
    convert = _leaf_converter(spec.dtype)
    leaves: list[Any] = []

    def fill(item: Any, level: int) -> None:
        if not isinstance(item, list):
            if level != rank:
                raise InvalidInput(
                    f"JSON Value: {short_json(item)} found at incorrect level: {level + 1} in "
                    f"the JSON DOM. Expected at level: {rank}"
                )
            leaves.append(convert(item))
            return
        if level >= rank:
            raise InvalidInput(
                f"Encountered list at unexpected level: {level} expected < {rank}"
            )
        if len(item) != shape[level]:
            raise InvalidInput(
                f"Encountered list at unexpected size: {len(item)} at level: {level} "
                f"expected size: {shape[level]}"
            )
        for child in item:
            fill(child, level + 1)

    fill(value, 0)
    return leaves, tuple(shape)


def _leaf_converter(dtype: int) -> Callable[[Any], Any]:
    name = dtype_name(dtype)
    if dtype in FLOAT_TYPES:
        return functools.partial(_float_leaf, name=name)
    if dtype in INT_TYPES:
        info = np.iinfo(numpy_dtype(dtype))
        return functools.partial(_int_leaf, name=name, lo=int(info.min), hi=int(info.max))
    if dtype == DT.DT_BOOL:
        return functools.partial(_bool_leaf, name=name)
    if dtype == DT.DT_STRING:
        return _string_leaf
    numpy_dtype(dtype)  # raises for types numpy cannot hold
    raise InvalidInput(f"Conversion of JSON values to type: {name} is not supported")


def _type_error(value: Any, name: str) -> InvalidInput:
    return InvalidInput(
        f"JSON Value: {short_json(value)} Type: {json_type(value)} is not of expected type: "
        f"{name}"
    )


def _float_leaf(value: Any, name: str) -> float | int:
    if type(value) is float:
        return value
    if type(value) is int:
        if abs(value) > _F64_MAX_INT:
            raise InvalidInput(
                f"Cannot convert JSON value: {short_json(value)} to {name} "
                "without loss of precision"
            )
        return value
    raise _type_error(value, name)


def _int_leaf(value: Any, name: str, lo: int, hi: int) -> int:
    if type(value) is not int:
        raise _type_error(value, name)
    if not lo <= value <= hi:
        raise InvalidInput(f"JSON Value: {value} is out of range for {name} [{lo}, {hi}]")
    return value


def _bool_leaf(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise _type_error(value, name)
    return value


def _string_leaf(value: Any) -> bytes:
    if type(value) is str:
        return utf8(value)
    if isinstance(value, dict):
        return decode_b64_object(value)
    raise _type_error(value, "DT_STRING")


def shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"

