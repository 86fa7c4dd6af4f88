"""JSON <-> tensors with TensorFlow Serving's REST semantics (``json_tensor.cc``).

This module decodes ``:predict`` bodies; it also re-exports the rest of the codec
(``codec_output``: responses, status, metadata, errors; ``codec_examples``: classify and
regress) so callers import everything from ``gateway.codec``.

Requests: dense numeric inputs take ``gateway.codec_fast`` (simdjson straight into
numpy, no Python object per number). Everything else, and every error, takes the strict
path: one ``orjson`` parse, then one ``np.array(..., dtype)`` per input. A few ``memchr``
scans of the raw body prove that no string, ``true``/``false`` or ``null`` can hide among
the numbers; when that proof fails, or numpy refuses the data, a strict walker re-reads
the value to accept it or name the exact problem.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway import codec_fast
from gateway.codec_examples import (
    encode_classify_response,
    encode_regress_response,
    read_examples_body,
)
from gateway.codec_output import (
    encode_error,
    encode_model_metadata,
    encode_model_status,
    encode_predict_response,
)
from gateway.codec_values import (
    decode_b64,
    decode_b64_object,
    is_object,
    json_type,
    parse_json,
    parse_request_object,
    short_json,
    utf8,
)
from gateway.errors import InvalidInput
from gateway.pb import types_pb2
from gateway.signatures import Signature, TensorSpec
from gateway.tensors import FLOAT_TYPES, INT_TYPES, dtype_name, numpy_dtype

__all__ = [
    "PredictBody",
    "decode_b64",
    "decode_predict_inputs",
    "encode_classify_response",
    "encode_error",
    "encode_model_metadata",
    "encode_model_status",
    "encode_predict_response",
    "encode_regress_response",
    "parse_json",
    "read_examples_body",
    "read_predict_body",
]

DT = types_pb2.DataType
_MAX_RANK = 64
_F64_MAX_INT = int(np.finfo(np.float64).max)


_UNPARSED: Any = object()


class PredictBody:
    """A ``:predict`` body after top-level validation; ``data`` is instances or inputs.

    A body the fast path took holds its simdjson view in ``fast``; ``data`` (Python
    objects) is then only parsed if the strict path is needed after all.
    """

    __slots__ = ("_data", "fast", "raw", "row", "signature_name")

    def __init__(self, signature_name: str | None, row: bool, data: Any, raw: bytes,
                 fast: codec_fast.FastBody | None = None) -> None:
        self.signature_name = signature_name
        self.row = row
        self.raw = raw
        self.fast = fast
        self._data = data

    @property
    def data(self) -> Any:
        if self._data is _UNPARSED:
            self._data = _read_strict(self.raw).data
        return self._data


def read_predict_body(body: bytes) -> PredictBody:
    """Validate the top level: an object with ``instances`` XOR ``inputs``."""
    fast = codec_fast.parse(body)
    if fast is not None:
        return PredictBody(fast.signature_name, fast.row, _UNPARSED, body, fast)
    return _read_strict(body)


def _read_strict(body: bytes) -> PredictBody:
    doc, signature_name = parse_request_object(body)
    has_rows, has_cols = "instances" in doc, "inputs" in doc
    if has_rows and has_cols:
        raise InvalidInput(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"
        )
    if not (has_rows or has_cols):
        raise InvalidInput("Missing 'inputs' or 'instances' key")
    if has_rows:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise InvalidInput("Expecting 'instances' to be an list/array")
        if not instances:
            raise InvalidInput("No values in 'instances' array")
    data = doc["instances"] if has_rows else doc["inputs"]
    return PredictBody(signature_name=signature_name, row=has_rows, data=data, raw=body)


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


class _Context:
    """Per-request state: the signature and a lazily computed body scan."""

    def __init__(self, body: PredictBody, signature: Signature) -> None:
        self.body = body
        self.signature = signature
        self._scan: _Scan | None = None

    @property
    def scan(self) -> _Scan:
        if self._scan is None:
            self._scan = _scan(self.body.raw)
        return self._scan

    def numbers_only(self) -> bool:
        """True when the body provably holds no string values and no literals."""
        allowed = 1 if isinstance(self.body.signature_name, str) else 0
        scan = self.scan
        return not scan.literals and scan.value_strings <= allowed


def decode_predict_inputs(
    body: PredictBody, signature: Signature, *, max_instances: int | None = None
) -> dict[str, np.ndarray]:
    """One array per signature input (dtype from the signature), or a precise 400."""
    if not signature.inputs:
        raise InvalidInput(f"Failed to get input map for signature: {signature.name}")
    fast, body.fast = body.fast, None  # the simdjson view is released once used
    arrays = codec_fast.decode(fast, signature, max_instances) if fast else None
    if arrays is not None and not body.row:
        _check_column_batch(signature, arrays, max_instances)
    if arrays is None:
        arrays = _decode_strict(body, signature, max_instances)
    for alias, array in arrays.items():
        _check_shape(signature, signature.inputs[alias], array)
    return arrays


def _decode_strict(
    body: PredictBody, signature: Signature, max_instances: int | None
) -> dict[str, np.ndarray]:
    ctx = _Context(body, signature)
    try:
        if body.row:
            return _decode_rows(ctx, max_instances)
        return _decode_columns(ctx, max_instances)
    except RecursionError:
        raise InvalidInput("JSON value nested too deeply") from None


def _decode_rows(ctx: _Context, max_instances: int | None) -> dict[str, np.ndarray]:
    instances: list[Any] = ctx.body.data
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("Expecting 'instances' to be a non-empty list/array")
    if max_instances is not None and len(instances) > max_instances:
        raise InvalidInput(
            f"Request has {len(instances)} instances, more than the limit of {max_instances}"
        )
    inputs = ctx.signature.inputs
    columns = _split_instances(instances, inputs)
    return {
        alias: _rows_to_array(ctx, inputs[alias], values) for alias, values in columns.items()
    }


def _split_instances(
    instances: list[Any], inputs: Mapping[str, TensorSpec]
) -> dict[str, list[Any]]:
    """Per-input lists of instance values; objects must all carry exactly the inputs."""
    first = instances[0]
    if not is_object(first):
        if len(inputs) > 1:
            raise InvalidInput(
                "instances is a plain list, but expecting list of objects as multiple "
                f"input tensors required as per tensorinfo_map (inputs: {_names(inputs)})"
            )
        for index, item in enumerate(instances):
            if is_object(item):
                raise InvalidInput(
                    f"Expecting value/list but got object at item {index} of input list"
                )
        return {next(iter(inputs)): instances}
    names = set(inputs)
    columns: dict[str, list[Any]] = {alias: [] for alias in inputs}
    for index, item in enumerate(instances):
        if not is_object(item):
            raise InvalidInput(
                f"Expecting object but got {json_type(item).lower()} at item {index} "
                "of input list"
            )
        if item.keys() != names:
            raise InvalidInput(_key_mismatch(index, item, names))
        for alias, column in columns.items():
            column.append(item[alias])
    return columns


def _key_mismatch(index: int, item: dict[str, Any], names: set[str]) -> str:
    unknown = sorted(set(item) - names)
    missing = sorted(names - set(item))
    parts = []
    if unknown:
        parts.append(f"unknown input(s): {', '.join(unknown)}")
    if missing:
        parts.append(f"missing input(s): {', '.join(missing)}")
    return (
        f"Failed to process element: {index} of 'instances' list: {'; '.join(parts)}. "
        f"JSON object keys must be equal to: {','.join(sorted(names))}"
    )


def _decode_columns(ctx: _Context, max_instances: int | None) -> dict[str, np.ndarray]:
    inputs = ctx.signature.inputs
    data = ctx.body.data
    if not is_object(data):
        if len(inputs) > 1:
            raise InvalidInput(
                "inputs is a plain value/list, but expecting an object as multiple input "
                f"tensors required as per tensorinfo_map (inputs: {_names(inputs)})"
            )
        values = {next(iter(inputs)): data}
    else:
        missing = [alias for alias in inputs if alias not in data]
        if missing:
            raise InvalidInput(f"Missing named input: {', '.join(missing)} in 'inputs' object.")
        unknown = sorted(set(data) - set(inputs))
        if unknown:
            raise InvalidInput(
                f"Unknown named input: {', '.join(unknown)} in 'inputs' object "
                f"(signature inputs: {_names(inputs)})."
            )
        values = {alias: data[alias] for alias in inputs}
    arrays = {
        alias: _value_to_array(ctx, inputs[alias], value, where=f"input '{alias}'")
        for alias, value in values.items()
    }
    _check_column_batch(ctx.signature, arrays, max_instances)
    return arrays


def _check_column_batch(
    signature: Signature, arrays: Mapping[str, np.ndarray], max_instances: int | None
) -> None:
    """Batched inputs (leading -1 in the signature) must agree on, and respect, dim 0."""
    batched = {
        alias: array.shape[0]
        for alias, array in arrays.items()
        if array.ndim and (signature.inputs[alias].shape or (0,))[0] == -1
    }
    if max_instances is not None:
        for alias, size in batched.items():
            if size > max_instances:
                raise InvalidInput(
                    f"Input '{alias}' has {size} instances, more than the limit "
                    f"of {max_instances}"
                )
    if len(batched) == len(arrays) and len(set(batched.values())) > 1:
        sizes = ", ".join(f"{alias}={size}" for alias, size in sorted(batched.items()))
        raise InvalidInput(f"Inputs have different batch sizes (dimension 0): {sizes}")


def _check_shape(signature: Signature, spec: TensorSpec, array: np.ndarray) -> None:
    expected = spec.shape
    if expected is None:
        return
    if len(expected) == array.ndim and all(
        want < 0 or want == got for want, got in zip(expected, array.shape, strict=True)
    ):
        return
    raise InvalidInput(
        f"Input '{spec.alias}' has shape {_shape_str(array.shape)} but signature "
        f"'{signature.name}' expects {_shape_str(expected)} (-1 = any size)"
    )


def _rows_to_array(ctx: _Context, spec: TensorSpec, values: list[Any]) -> np.ndarray:
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
                f"Expecting shape {_shape_str(first_shape)} but got: {_shape_str(shape)} "
                f"(element {index} of 'instances', input '{spec.alias}')"
            )
        leaves.extend(item)
    assert first_shape is not None
    return _leaves_to_array(leaves, (len(values), *first_shape), spec, target)


def _value_to_array(ctx: _Context, spec: TensorSpec, value: Any, where: str) -> np.ndarray:
    array = _fast_array(ctx, spec, value)
    if array is not None:
        return array
    try:
        leaves, shape = _strict_leaves(value, spec)
    except InvalidInput as exc:
        raise InvalidInput(f"Failed to process {where}. Error: {exc.message}") from None
    return _leaves_to_array(leaves, shape, spec, numpy_dtype(spec.dtype))


def _fast_array(ctx: _Context, spec: TensorSpec, value: Any) -> np.ndarray | None:
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


def _names(inputs: Mapping[str, Any]) -> str:
    return ", ".join(sorted(inputs))


def _shape_str(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"
