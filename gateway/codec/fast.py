"""The numeric fast path for ``:predict`` bodies: simdjson in, numpy out, no Python floats.

For the common request — dense lists of numbers for float or integer inputs — the body is
parsed by simdjson and each input's numbers are copied in C into one flat buffer
(``Array.as_buffer``), which numpy then views and casts once. No Python object is made per
number, which saves most of the decode CPU and keeps batch-256 bodies (200k numbers) from
churning the Python heap.

This path only ever *accepts*. Whatever it cannot prove equivalent to the strict path in
``gateway.codec.predict`` — NaN/Infinity literals, strings, booleans, nulls, empty or ragged lists,
scalars, duplicate keys, out-of-range numbers, too many instances — makes it return
``None``, and the strict path decides with its exact TF Serving errors.

Density proof. ``as_buffer`` flattens any nesting, so the shape is checked separately:
the shape comes from the first element at every level (as in TF Serving), every list above
the innermost level is walked and must be a list of that length, and every innermost list
must have the innermost length. That leaves only lists hiding *inside* the innermost lists
(``[1, [2, 3]]``, ``[[], 4]``), which would add ``[`` characters: the body's ``[`` count
must equal the number of lists the shape implies. A ``[`` inside a string only raises the
count, so that case falls back too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.errors import GatewayError
from gateway.pb import types_pb2
from gateway.signatures import Signature, TensorSpec
from gateway.tensors import FLOAT_TYPES, INT_TYPES, numpy_dtype

try:  # a hard dependency; without it (an exotic platform) every body takes the strict path
    import simdjson
except ImportError:  # pragma: no cover
    simdjson = None

__all__ = ["FastBody", "decode", "parse"]

DT = types_pb2.DataType
_NUMERIC = FLOAT_TYPES | INT_TYPES
_KEYS = ("instances", "inputs")
_BOM = b"\xef\xbb\xbf"
_SOURCE = {"d": np.float64, "i": np.int64, "u": np.uint64}  # numpy type per as_buffer type
_MIN_INNER = 4
"""Innermost lists shorter than this are left to the strict path (walking one proxy per
list would cost about as much as converting its numbers)."""


@dataclass(frozen=True, slots=True)
class FastBody:
    """A parsed body whose top level the strict path would accept as is."""

    signature_name: str | None
    row: bool
    data: Any  # simdjson Array (instances / plain inputs) or Object (named inputs)
    brackets: int  # '[' characters in the raw body


Found = tuple[dict[str, np.ndarray], int]
"""Arrays by input alias, and the number of JSON lists they were read from."""


def parse(raw: bytes) -> FastBody | None:
    """simdjson's view of ``raw`` when its top level is plainly valid; else ``None``."""
    if simdjson is None or raw.startswith(_BOM) or _thin_innermost(raw):
        return None  # simdjson skips a byte order mark; TF Serving and the strict path refuse it
    try:
        doc = simdjson.Parser().parse(raw)
    except (ValueError, RuntimeError, TypeError):  # NaN literals, bad UTF-8, depth, ...
        return None
    if not isinstance(doc, simdjson.Object) or _has_duplicates(list(doc.keys())):
        return None
    present = [key for key in _KEYS if key in doc]
    named = "signature_name" in doc
    signature_name = doc["signature_name"] if named else None
    if len(present) != 1 or (named and not isinstance(signature_name, str)):
        return None
    data = doc[present[0]]
    row = present[0] == "instances"
    if row and not (isinstance(data, simdjson.Array) and len(data)):
        return None
    if not isinstance(data, simdjson.Array | simdjson.Object):
        return None
    return FastBody(signature_name, row, data, raw.count(b"["))


def _thin_innermost(raw: bytes) -> bool:
    """Whether the first innermost list is short and nested in another list (image-like
    ``[[[0.1], [0.2], ...]]``): ``_dense_shape`` would refuse it, so skip the parse.

    A glance at the raw bytes, not a parse: a wrong guess only decides whether the fast
    path is tried, never what a body means.
    """
    end = raw.find(b"]")
    start = raw.rfind(b"[", 0, end)
    if end < 0 or start < 0 or raw.count(b",", start, end) + 1 >= _MIN_INNER:
        return False
    return raw[:start].rstrip().endswith(b"[")


def decode(body: FastBody, signature: Signature,
           max_instances: int | None) -> dict[str, np.ndarray] | None:
    """One array per signature input, exactly as the strict path would build; or ``None``."""
    inputs = signature.inputs
    if not inputs or not all(spec.dtype in _NUMERIC for spec in inputs.values()):
        return None
    try:
        found = (_rows(body.data, inputs, max_instances) if body.row
                 else _columns(body.data, inputs))
    except (GatewayError, ValueError, TypeError, RuntimeError, IndexError, OverflowError):
        return None  # a non-number, a number out of range, an unsupported dtype, ...
    if found is None or found[1] != body.brackets:
        return None
    return found[0]


def _rows(instances: Any, inputs: Mapping[str, TensorSpec],
          max_instances: int | None) -> Found | None:
    if max_instances is not None and len(instances) > max_instances:
        return None
    if not isinstance(instances[0], simdjson.Object):
        return _single(instances, inputs)
    columns: dict[str, list[Any]] = {alias: [] for alias in inputs}
    for item in instances:
        if not isinstance(item, simdjson.Object) or not _same_keys(item, inputs):
            return None
        for alias, column in columns.items():
            column.append(item[alias])
    stacked = ((alias, _stack(column, inputs[alias])) for alias, column in columns.items())
    return _gather(stacked, lists=1)  # the instances list itself


def _columns(data: Any, inputs: Mapping[str, TensorSpec]) -> Found | None:
    if isinstance(data, simdjson.Array):
        return _single(data, inputs)
    if not _same_keys(data, inputs):
        return None
    return _gather(((alias, _array(data[alias], spec)) for alias, spec in inputs.items()),
                   lists=0)


def _single(value: Any, inputs: Mapping[str, TensorSpec]) -> Found | None:
    """A plain list for a signature with exactly one input."""
    if len(inputs) != 1:
        return None
    alias, spec = next(iter(inputs.items()))
    return _gather([(alias, _array(value, spec))], lists=0)


def _gather(found: Iterable[tuple[str, tuple[np.ndarray, int] | None]],
            lists: int) -> Found | None:
    """Arrays by alias plus their summed list count; ``None`` as soon as one is missing."""
    arrays: dict[str, np.ndarray] = {}
    for alias, item in found:
        if item is None:
            return None
        arrays[alias], count = item
        lists += count
    return arrays, lists


def _array(value: Any, spec: TensorSpec) -> tuple[np.ndarray, int] | None:
    """One dense list of numbers as an array of ``spec.dtype``, and its list count."""
    shape = _dense_shape(value)
    if shape is None or not _dense(value, shape):
        return None
    array = _numbers([value.as_buffer(of_type=_buffer_type(spec.dtype))], shape, spec)
    return None if array is None else (array, _list_count(shape))


def _stack(values: list[Any], spec: TensorSpec) -> tuple[np.ndarray, int] | None:
    """Per-instance dense lists of one shape, stacked on a new batch dimension."""
    inner = _dense_shape(values[0])
    if inner is None or not all(_dense(value, inner) for value in values):
        return None  # includes scalars per instance: the strict path (few numbers anyway)
    of_type = _buffer_type(spec.dtype)
    buffers = [value.as_buffer(of_type=of_type) for value in values]
    array = _numbers(buffers, (len(values), *inner), spec)
    return None if array is None else (array, len(values) * _list_count(inner))


def _dense_shape(value: Any) -> tuple[int, ...] | None:
    """The shape the first element at each level implies (TF Serving's rule); ``None``
    for a scalar, an empty list, a first leaf that is not a number, or a thin innermost
    dimension."""
    shape: list[int] = []
    probe = value
    while isinstance(probe, simdjson.Array):
        if not len(probe):
            return None
        shape.append(len(probe))
        probe = probe[0]
    if not shape or type(probe) not in (int, float):
        return None
    if len(shape) > 1 and shape[-1] < _MIN_INNER:
        return None
    return tuple(shape)


def _dense(value: Any, shape: tuple[int, ...]) -> bool:
    """Every list down to the innermost level is a list of its level's size (the numbers
    inside the innermost lists are not walked)."""
    level: list[Any] = [value]
    for depth, size in enumerate(shape):
        if not all(isinstance(node, simdjson.Array) and len(node) == size for node in level):
            return False
        if depth + 1 < len(shape):
            level = [child for node in level for child in node]
    return True


def _list_count(shape: tuple[int, ...]) -> int:
    """Lists in a dense nesting of ``shape``: 1 + s0 + s0*s1 + ... (innermost included)."""
    return sum(math.prod(shape[:depth]) for depth in range(len(shape)))


def _buffer_type(dtype: int) -> str:
    if dtype in FLOAT_TYPES:
        return "d"
    return "u" if dtype == DT.DT_UINT64 else "i"


def _numbers(buffers: list[Any], shape: tuple[int, ...], spec: TensorSpec) -> np.ndarray | None:
    """The flat buffers cast to ``spec.dtype``; ``None`` if a value would not survive."""
    dtype = spec.dtype
    source = _SOURCE[_buffer_type(dtype)]
    raw = buffers[0] if len(buffers) == 1 else b"".join(buffers)
    flat = np.frombuffer(raw, dtype=source)
    if flat.size != math.prod(shape):
        return None  # a list nested inside an innermost list
    target = numpy_dtype(dtype)
    if dtype in FLOAT_TYPES:
        with np.errstate(over="ignore"):
            array = flat.astype(target)
        if dtype != DT.DT_DOUBLE and np.isinf(array).any():
            return None  # a finite number overflowed: the strict path names it
        return array.reshape(shape)
    if source is np.int64 and flat.size:
        info = np.iinfo(target)
        if int(flat.min()) < info.min or int(flat.max()) > info.max:
            return None
    return flat.astype(target).reshape(shape)


def _same_keys(obj: Any, inputs: Mapping[str, TensorSpec]) -> bool:
    keys = list(obj.keys())
    return len(keys) == len(inputs) and set(keys) == set(inputs)


def _has_duplicates(keys: list[str]) -> bool:
    return len(set(keys)) != len(keys)
