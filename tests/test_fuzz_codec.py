"""Property fuzzing of the JSON ↔ tensor codec with hypothesis.

For every supported dtype and shapes of rank 1–3: a random array written as TF Serving
JSON (row and columnar) decodes to the same array; ``to_tensor_proto``/``to_ndarray``
round-trip it; ``encode_predict_response`` prints JSON that parses back to it (NaN and
±Infinity included). Near-valid variants (one wrong leaf, ragged nesting, out-of-range
integer, unknown input) raise ``InvalidInput`` and nothing else. The strategies are
reused by ``test_fuzz_live.py`` against a running gateway and model server.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gateway import codec
from gateway.errors import InvalidInput
from gateway.pb import types_pb2
from gateway.signatures import Signature, TensorSpec
from gateway.tensors import to_ndarray, to_tensor_proto

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


@pytest.mark.parametrize("name", sorted(DTYPES))
@FUZZ
@given(data=st.data())
def test_columnar_and_row_round_trip(name: str, data: st.DataObject) -> None:
    array = data.draw(arrays(name))
    sig = signature(name, shape_for(array, data.draw(st.integers(0, 2))))
    value = json_value(array, name, b64_all=data.draw(st.booleans()))
    for doc in ({"inputs": {"x": value}}, {"inputs": value}, {"instances": value}):
        decoded = codec.decode_predict_inputs(codec.read_predict_body(dumps(doc)), sig)
        assert same(decoded["x"], array, name), doc
    proto = to_tensor_proto(decoded["x"], DTYPES[name])
    assert same(to_ndarray(proto), array, name)
    for alias in ("y", "y_bytes"):
        out = json.loads(codec.encode_predict_response({alias: array}, row=False, keyed=False))
        assert same(from_output_json(out["outputs"], name, array.shape), array, name)
        rows = json.loads(codec.encode_predict_response({alias: array}, row=True, keyed=True))
        back = [from_output_json(r[alias], name, array.shape[1:]) for r in rows["predictions"]]
        assert same(np.stack(back) if name != "string" else _stack(back, array.shape),
                    array, name)


def _stack(rows: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    flat = [v for row in rows for v in row.ravel()]
    return np.array([*flat, b""], dtype=object)[:-1].reshape(shape)


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


@pytest.mark.parametrize("name", sorted(DTYPES))
@FUZZ
@given(data=st.data())
def test_near_valid_inputs_raise_invalid_input(name: str, data: st.DataObject) -> None:
    array = data.draw(arrays(name).filter(lambda a: a.size > 1 or a.ndim == 1))
    value = json_value(array, name)
    doc = near_valid(name, value, data)
    sig = signature(name, (-1,) * array.ndim)
    with pytest.raises(InvalidInput) as info:
        codec.decode_predict_inputs(codec.read_predict_body(dumps(doc)), sig)
    assert info.value.message


@FUZZ
@given(body=st.binary(max_size=200))
def test_arbitrary_bytes_are_invalid_input_or_accepted(body: bytes) -> None:
    sig = signature("float32", (-1,))
    try:
        parsed = codec.read_predict_body(body)
        codec.decode_predict_inputs(parsed, sig)
    except InvalidInput as exc:
        assert exc.message


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=20,
)


@pytest.mark.parametrize("name", ["float32", "int64", "string", "bool"])
@FUZZ
@given(doc=st.dictionaries(st.sampled_from(["instances", "inputs", "signature_name", "x"]),
                           JSON_VALUES, max_size=3))
def test_arbitrary_json_documents_never_crash(name: str, doc: dict[str, Any]) -> None:
    sig = signature(name, None)
    try:
        codec.decode_predict_inputs(codec.read_predict_body(dumps(doc)), sig)
    except InvalidInput as exc:
        assert exc.message
