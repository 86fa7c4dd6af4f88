"""Property fuzzing of the JSON ↔ tensor codec with hypothesis.

For every supported dtype and shapes of rank 1–3: a random array written as TF Serving
JSON (row and columnar) decodes to the same array; ``to_tensor_proto``/``to_ndarray``
round-trip it; ``encode_predict_response`` prints JSON that parses back to it (NaN and
±Infinity included). Near-valid variants (one wrong leaf, ragged nesting, out-of-range
integer, unknown input) raise ``InvalidInput`` and nothing else. The strategies are
reused by ``test_fuzz_live.py`` against a running gateway and model server.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz import (
    DTYPES,
    FUZZ,
    arrays,
    dumps,
    from_output_json,
    json_value,
    near_valid,
    same,
    shape_for,
    signature,
)

from gateway import codec
from gateway.errors import InvalidInput
from gateway.tensors import to_ndarray, to_tensor_proto


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
