"""JSON request -> arrays, with TF Serving's json_tensor rules (gateway.codec, decode side).

Golden cases live in ``tests/data/codec/requests.json`` (accepted bodies and the arrays
they must produce) and ``request_errors.json`` (bodies that must be a 400 naming the
problem). The cases marked "TF ..." mirror tensorflow_serving/util/json_tensor_test.cc.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.paths import DATA_DIR

from gateway.codec import (
    PredictBody,
    decode_b64,
    decode_predict_inputs,
    parse_json,
    read_predict_body,
)
from gateway.errors import Code, GatewayError, InvalidInput
from gateway.pb import types_pb2
from gateway.signatures import Signature, TensorSpec
from gateway.tensors import numpy_dtype

DATA = DATA_DIR / "codec"
GOLDEN = json.loads((DATA / "requests.json").read_text())
ERRORS = json.loads((DATA / "request_errors.json").read_text())


def make_signature(inputs: dict[str, list[Any]], name: str = "serving_default") -> Signature:
    specs = {
        alias: TensorSpec(
            alias=alias,
            name=f"{alias}:0",
            dtype=types_pb2.DataType.Value(dtype),
            shape=None if shape is None else tuple(shape),
        )
        for alias, (dtype, shape) in sorted(inputs.items())
    }
    return Signature(name=name, method_name="tensorflow/serving/predict", inputs=specs, outputs={})


def body_bytes(text: str) -> bytes:
    """Case bodies are JSON text; ``DEEP:n`` / ``DEEPNAN:n`` build absurdly nested ones."""
    if text.startswith("DEEPNAN:"):
        depth = int(text.split(":")[1])
        return b'{"inputs": [NaN, ' + b"[" * depth + b"1" + b"]" * depth + b"]}"
    if text.startswith("DEEP:"):
        depth = int(text.split(":")[1])
        return b'{"inputs": ' + b"[" * depth + b"1" + b"]" * depth + b"}"
    return text.encode("utf-8")


def decode(text: str | bytes, inputs: dict[str, list[Any]], **kwargs: Any) -> dict:
    raw = text if isinstance(text, bytes) else body_bytes(text)
    return decode_predict_inputs(read_predict_body(raw), make_signature(inputs), **kwargs)


def expected_array(spec: dict[str, Any]) -> np.ndarray:
    dtype = types_pb2.DataType.Value(spec["dtype"])
    if dtype == types_pb2.DT_STRING:
        if "values_utf8" in spec:
            values = [v.encode("utf-8") for v in spec["values_utf8"]]
        else:
            values = [v.encode("latin-1") for v in spec["values"]]
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(spec["shape"])
    return np.array(spec["values"], dtype=numpy_dtype(dtype)).reshape(spec["shape"])


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden_request(case: dict[str, Any]) -> None:
    arrays = decode(case["body"], case["inputs"])
    assert sorted(arrays) == sorted(case["expect"])
    for alias, spec in case["expect"].items():
        want = expected_array(spec)
        got = arrays[alias]
        assert got.dtype == want.dtype, alias
        assert got.shape == want.shape, alias
        assert got.tolist() == want.tolist(), alias


@pytest.mark.parametrize("case", ERRORS, ids=[c["name"] for c in ERRORS])
def test_request_error(case: dict[str, Any]) -> None:
    kwargs = {"max_instances": case["max_instances"]} if "max_instances" in case else {}
    with pytest.raises(InvalidInput) as info:
        decode(case["body"], case["inputs"], **kwargs)
    assert info.value.code == Code.INVALID_ARGUMENT
    assert info.value.http_status == 400
    assert case["error"] in info.value.message


def test_enough_cases() -> None:
    assert len(GOLDEN) + len(ERRORS) >= 80


# --------------------------------------------------------------------- non-finite


def test_nan_and_infinities_are_accepted_in_float_inputs() -> None:
    arrays = decode(
        '{"instances": [{"f": [1.0, NaN], "d": [NaN]}, {"f": [2.0, Infinity], "d": [-Infinity]}]}',
        {"f": ["DT_FLOAT", None], "d": ["DT_DOUBLE", None]},
    )
    f, d = arrays["f"], arrays["d"]
    assert f.dtype == np.float32 and f.shape == (2, 2)
    assert f[0, 0] == 1.0 and math.isnan(f[0, 1]) and f[1, 1] == math.inf
    assert d.dtype == np.float64 and math.isnan(d[0, 0]) and d[1, 0] == -math.inf


@pytest.mark.parametrize("dtype", ["DT_HALF", "DT_BFLOAT16"])
def test_nan_and_infinities_in_half_precision(dtype: str) -> None:
    got = decode('{"inputs": [NaN, Infinity, -Infinity, 1.5]}', {"x": [dtype, [-1]]})["x"]
    assert got.dtype == numpy_dtype(types_pb2.DataType.Value(dtype))
    values = got.astype(np.float64)
    assert math.isnan(values[0]) and values[1] == math.inf and values[2] == -math.inf
    assert values[3] == 1.5


# --------------------------------------------------------------------- fast path vs strict


@pytest.mark.parametrize(
    "dtype, values",
    [
        ("DT_FLOAT", [[0.5, -1, 3e-5], [7, 8.25, 1e30]]),
        ("DT_DOUBLE", [[0.1, 2, 1e300], [-0.0, 5, 6]]),
        ("DT_INT32", [[1, -2, 3], [4, 5, 2147483647]]),
        ("DT_UINT64", [[1, 2, 3], [4, 5, 18446744073709551615]]),
        ("DT_BOOL", [[True, False, True], [False, False, True]]),
    ],
)
def test_fast_path_and_strict_path_agree(dtype: str, values: list[list[Any]]) -> None:
    """A string value elsewhere in the body forces the strict walker: same arrays."""
    inputs = {"x": [dtype, [-1, 3]], "tag": ["DT_STRING", [-1]]}
    fast = decode(json.dumps({"inputs": {"x": values}}), {"x": inputs["x"]})
    rows = [{"x": row, "tag": "t"} for row in values]
    strict = decode(json.dumps({"instances": rows}), inputs)
    assert fast["x"].dtype == strict["x"].dtype
    want = np.array(values, dtype=fast["x"].dtype).tolist()
    assert fast["x"].tolist() == strict["x"].tolist() == want


def test_float_input_converts_straight_to_float32() -> None:
    got = decode('{"instances": [[0.1, 0.2]]}', {"x": ["DT_FLOAT", [-1, 2]]})["x"]
    assert got.dtype == np.float32
    assert got.tobytes() == np.array([[0.1, 0.2]], dtype=np.float32).tobytes()


def test_large_batch_of_floats() -> None:
    rng = np.random.default_rng(7)
    data = rng.standard_normal((64, 784)).astype(np.float32)
    body = json.dumps({"instances": data.tolist()})
    got = decode(body, {"image": ["DT_FLOAT", [-1, 784]]})["image"]
    np.testing.assert_array_equal(got, data)


def test_row_objects_for_several_inputs_keep_instance_order() -> None:
    rows = [{"a": [i, i + 1], "b": i * 10} for i in range(5)]
    arrays = decode(
        json.dumps({"instances": rows}), {"a": ["DT_INT64", [-1, 2]], "b": ["DT_INT32", [-1]]}
    )
    assert arrays["a"].tolist() == [[i, i + 1] for i in range(5)]
    assert arrays["b"].tolist() == [i * 10 for i in range(5)]


def test_max_instances_allows_the_limit_itself() -> None:
    got = decode('{"instances": [1, 2]}', {"x": ["DT_FLOAT", [-1]]}, max_instances=2)["x"]
    assert got.shape == (2,)


def test_signature_without_inputs_is_rejected() -> None:
    body = read_predict_body(b'{"instances": [1]}')
    with pytest.raises(InvalidInput, match="Failed to get input map for signature: sig"):
        decode_predict_inputs(body, Signature("sig", "m", {}, {}))


def test_columnar_inputs_that_are_not_batched_may_differ_in_length() -> None:
    arrays = decode(
        '{"inputs": {"queries": [[1, 2]], "table": [1, 2, 3]}}',
        {"queries": ["DT_INT32", [-1, 2]], "table": ["DT_INT32", [3]]},
    )
    assert arrays["queries"].shape == (1, 2) and arrays["table"].shape == (3,)


# --------------------------------------------------------------------- top level


def test_read_predict_body_row_and_columnar() -> None:
    row = read_predict_body(b'{"signature_name": "s", "instances": [1]}')
    assert (row.signature_name, row.row, row.data) == ("s", True, [1])
    cols = read_predict_body(b'{"inputs": {"a": 1}}')
    assert (cols.signature_name, cols.row, cols.data) == (None, False, {"a": 1})
    assert isinstance(cols, PredictBody) and cols.raw == b'{"inputs": {"a": 1}}'


def test_errors_are_gateway_errors_with_invalid_argument() -> None:
    with pytest.raises(GatewayError) as info:
        read_predict_body(b"{")
    assert info.value.code == Code.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "body, expected",
    [
        (b'{"a": NaN}', "nan"),
        (b'{"a": Infinity}', math.inf),
        (b'{"a": -Infinity}', -math.inf),
        (b' {"a": [1, 2]} \n', [1, 2]),
    ],
)
def test_parse_json_accepts_non_finite_literals(body: bytes, expected: Any) -> None:
    value = parse_json(body)["a"]
    if expected == "nan":
        assert math.isnan(value)
    else:
        assert value == expected


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"{", b'{"a": 1} x', b'{"a": NaN} x', b"\xff\xfe", b'{"a": NaNa}'],
)
def test_parse_json_rejects(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_json(body)


# --------------------------------------------------------------------- base64


@pytest.mark.parametrize(
    "text, expected",
    [
        ("aGVsbG8=", b"hello"),
        ("aGVsbG8", b"hello"),
        ("+/+/", b"\xfb\xff\xbf"),
        ("-_-_", b"\xfb\xff\xbf"),
        ("-_8", b"\xfb\xff"),
        ("", b""),
    ],
)
def test_decode_b64_alphabets_and_padding(text: str, expected: bytes) -> None:
    assert decode_b64(text) == expected


@pytest.mark.parametrize("text", ["a", "abcde", "ab$=", "+_==", "aGVsbG8=x"])
def test_decode_b64_rejects(text: str) -> None:
    with pytest.raises(InvalidInput, match="Unable to base64 decode"):
        decode_b64(text)


# --------------------------------------------------------------------- fuzz: never a crash

_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5)
    | st.fixed_dictionaries({"b64": st.sampled_from(["aGk=", "-_8", "@@", ""])})
)
_VALUES = st.recursive(
    _LEAVES,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["x", "y", "b64", "z"]), children, max_size=3),
    max_leaves=20,
)
_FUZZ_DTYPES = ["DT_FLOAT", "DT_HALF", "DT_INT8", "DT_UINT64", "DT_INT64", "DT_BOOL", "DT_STRING"]


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(["instances", "inputs"]),
    value=_VALUES,
    dtypes=st.lists(st.sampled_from(_FUZZ_DTYPES), min_size=1, max_size=2),
    ranked=st.booleans(),
)
def test_decode_never_crashes(key: str, value: Any, dtypes: list[str], ranked: bool) -> None:
    """Any JSON value: arrays of the signature dtypes, or an InvalidInput; nothing else."""
    shape = [-1] if ranked else None
    inputs = {alias: [dtype, shape] for alias, dtype in zip("xy", dtypes, strict=False)}
    raw = json.dumps({key: value}).encode()
    try:
        arrays = decode(raw, inputs)
    except InvalidInput as exc:
        assert exc.message
        return
    assert sorted(arrays) == sorted(inputs)
    for alias, (dtype, _) in inputs.items():
        assert arrays[alias].dtype == numpy_dtype(types_pb2.DataType.Value(dtype))


def test_deeply_nested_object_is_a_400_not_a_crash() -> None:
    deep = b'{"x":' * 1000 + b"1" + b"}" * 1000
    with pytest.raises(InvalidInput, match="Type: Object is not of expected type: DT_FLOAT"):
        decode(b'{"instances": [{"x": [' + deep + b"]}]}", {"x": ["DT_FLOAT", None]})
