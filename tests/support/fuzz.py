"""Hypothesis strategies and helpers for the JSON ↔ tensor codec fuzzing suites.

Arrays of every supported dtype, their TF Serving JSON (row and columnar), comparisons that
treat NaN and float widths right, and near-valid corruptions (one wrong leaf, ragged
nesting, out-of-range integer, unknown input). Used by ``tests/codec/test_fuzz.py`` and,
against a running gateway, by ``tests/e2e/test_fuzz_live.py``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import ml_dtypes
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gateway.pb import types_pb2
from gateway.signatures import Signature, TensorSpec

DT = types_pb2
DTYPES: dict[str, int] = {
    "float32": DT.DT_FLOAT, "float64": DT.DT_DOUBLE, "float16": DT.DT_HALF,
    "bfloat16": DT.DT_BFLOAT16, "int8": DT.DT_INT8, "int16": DT.DT_INT16,
    "int32": DT.DT_INT32, "int64": DT.DT_INT64, "uint8": DT.DT_UINT8,
    "uint16": DT.DT_UINT16, "uint32": DT.DT_UINT32, "uint64": DT.DT_UINT64,
    "bool": DT.DT_BOOL, "string": DT.DT_STRING,
}
FLOATS = {"float32", "float64", "float16", "bfloat16"}
INTS = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def arrays(name: str) -> st.SearchStrategy[np.ndarray]:
    """Arrays of dtype ``name`` (strings: object arrays of bytes) with NaN/±inf for floats."""
    if name == "bfloat16":
        return hnp.arrays(np.float32, SHAPES, elements=st.floats(width=32)).map(
            lambda a: a.astype(ml_dtypes.bfloat16))
    if name == "string":
        leaves = st.one_of(st.text(max_size=8).map(str.encode), st.binary(max_size=8))
        return SHAPES.flatmap(lambda shape: st.lists(
            leaves, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))).map(
            lambda items, s=shape: np.array([*items, b""], dtype=object)[:-1].reshape(s)))
    return hnp.arrays(np.dtype(name), SHAPES)


def json_value(array: np.ndarray, name: str, *, b64_all: bool = False) -> Any:
    """The nested-list JSON value TF Serving clients send for ``array``."""
    if name == "string":
        def leaf(value: bytes) -> Any:
            try:
                return {"b64": base64.b64encode(value).decode()} if b64_all else value.decode()
            except UnicodeDecodeError:
                return {"b64": base64.b64encode(value).decode()}
        return np.vectorize(leaf, otypes=[object])(array).tolist()
    if name in FLOATS:
        return array.astype(np.float64).tolist()
    return array.tolist()


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


def signature(name: str, shape: tuple[int, ...] | None) -> Signature:
    spec = TensorSpec("x", "x:0", DTYPES[name], shape)
    out = TensorSpec("y", "y:0", DTYPES[name], shape)
    return Signature("serving_default", "tensorflow/serving/predict", {"x": spec}, {"y": out})


def same(got: np.ndarray, want: np.ndarray, name: str) -> bool:
    if got.shape != want.shape:
        return False
    if name == "string":
        return [bytes(v) for v in got.ravel()] == [bytes(v) for v in want.ravel()]
    if got.dtype != want.dtype:
        return False
    if name in FLOATS:
        return np.array_equal(got.astype(np.float64), want.astype(np.float64), equal_nan=True)
    return np.array_equal(got, want)


def from_output_json(value: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Parse an encoded output back to an array of ``name`` (b64 objects → bytes)."""
    if name == "string":
        leaves = [base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode()
                  for v in _leaves(value)]
        return np.array([*leaves, b""], dtype=object)[:-1].reshape(shape)
    if name in FLOATS:
        dtype = ml_dtypes.bfloat16 if name == "bfloat16" else np.dtype(name)
        return np.array(value, dtype=np.float64).astype(dtype)
    return np.array(value, dtype=np.dtype(name))


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def shape_for(array: np.ndarray, choice: int) -> tuple[int, ...] | None:
    return [None, (-1,) * array.ndim, array.shape][choice]


WRONG_LEAVES = {
    "number": ["x", None, {}, [], {"b64": "AAAA"}, True],
    "int": ["x", None, 1.5, 2.0, {}, True, float("nan")],
    "bool": ["x", None, 2, 1, 0.0, {}],
    "string": [1, 1.5, None, True, {"b64": "@@"}, {"b64": 1}, {"x": "y"}],
}


def _kind(name: str) -> str:
    if name in INTS:
        return "int"
    return {"bool": "bool", "string": "string"}.get(name, "number")


def _set_first_leaf(value: Any, new: Any) -> Any:
    if isinstance(value, list) and value:
        return [_set_first_leaf(value[0], new), *value[1:]]
    return new


def near_valid(name: str, value: Any, data: st.DataObject) -> Any:
    """``value`` with one defect that TF Serving's rules reject."""
    kind = _kind(name)
    mutation = data.draw(st.sampled_from(["leaf", "ragged", "deeper", "range", "unknown"]))
    if mutation == "range" and name in INTS:
        info = np.iinfo(np.dtype(name))
        bad = data.draw(st.sampled_from([int(info.max) + 1, int(info.min) - 1, 2**64, -(2**64)]))
        return {"inputs": {"x": _set_first_leaf(value, bad)}}
    if mutation == "ragged" and len(value) > 1 and isinstance(value[0], list):
        return {"inputs": {"x": [value[0] + value[0][:1], *value[1:]]}}
    if mutation in ("deeper", "ragged"):
        return {"inputs": {"x": _set_first_leaf(value, [_first(value), _first(value)])}}
    if mutation == "unknown":
        return {"inputs": {"x": value, "not_an_input": value}}
    return {"inputs": {"x": _set_first_leaf(value, data.draw(st.sampled_from(WRONG_LEAVES[kind])))}}


def _first(value: Any) -> Any:
    return _first(value[0]) if isinstance(value, list) else value
