"""Arrays/protos -> JSON (gateway.codec, encode side) and the classify/regress/status paths.

Golden responses live in ``tests/data/codec/responses.json``: exact bytes expected from
``encode_predict_response`` (keys sorted, compact), several taken from TF Serving's
json_tensor_test.cc (our floats are the shortest round-trip text, e.g. ``9000000.0``
where TF Serving prints ``9e+06``; both parse to the same value).
"""

from __future__ import annotations

import json
import math
from typing import Any

import ml_dtypes
import numpy as np
import orjson
import pytest
from google.protobuf import any_pb2, wrappers_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from support.paths import DATA_DIR

from gateway.codec import (
    encode_classify_response,
    encode_error,
    encode_model_metadata,
    encode_model_status,
    encode_predict_response,
    encode_regress_response,
    read_examples_body,
)
from gateway.errors import InvalidInput
from gateway.pb import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    meta_graph_pb2,
    regression_pb2,
    types_pb2,
)
from gateway.tensors import numpy_dtype

DATA = DATA_DIR / "codec"
GOLDEN = json.loads((DATA / "responses.json").read_text())
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def build_array(spec: dict[str, Any]) -> np.ndarray:
    dtype = types_pb2.DataType.Value(spec["dtype"])
    if dtype == types_pb2.DT_STRING:
        if "values_hex" in spec:
            values = [bytes.fromhex(v) for v in spec["values_hex"]]
        else:
            values = [v.encode("utf-8") for v in spec["values"]]
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(spec["shape"])
    values = [NON_FINITE.get(v, v) if isinstance(v, str) else v for v in spec["values"]]
    return np.array(values, dtype=numpy_dtype(dtype)).reshape(spec["shape"])


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden_response(case: dict[str, Any]) -> None:
    outputs = {alias: build_array(spec) for alias, spec in case["outputs"].items()}
    got = encode_predict_response(outputs, row=case["row"], keyed=case["keyed"])
    assert got.decode("utf-8") == case["json"]


def test_big_endian_and_strided_arrays_are_accepted() -> None:
    base = np.arange(12, dtype=">f4").reshape(3, 4)
    got = encode_predict_response({"y": base[:, ::2]}, row=True, keyed=False)
    assert got == b'{"predictions":[[0.0,2.0],[4.0,6.0],[8.0,10.0]]}'


# --------------------------------------------------------------------- errors


def test_empty_outputs_are_an_error() -> None:
    with pytest.raises(InvalidInput, match="Cannot convert empty tensor map to JSON"):
        encode_predict_response({}, row=True, keyed=False)


def test_row_format_needs_a_batch_dimension() -> None:
    with pytest.raises(InvalidInput, match="Tensor name: y has no shape information"):
        encode_predict_response({"y": np.array(3, np.int32)}, row=True, keyed=False)


def test_row_format_needs_one_batch_size() -> None:
    outputs = {"a": np.zeros((2, 3), np.int32), "b": np.zeros((1, 3), np.float32)}
    with pytest.raises(InvalidInput, match="Tensor name: b has inconsistent batch size: 1"):
        encode_predict_response(outputs, row=True, keyed=False)
    # the columnar form has no such constraint
    assert encode_predict_response(outputs, row=False, keyed=False).startswith(b'{"outputs"')


def test_zero_batch_mixed_with_non_zero_batch_is_inconsistent() -> None:
    outputs = {"a": np.zeros((0, 2), np.int32), "b": np.array([[b"f", b"b"]], dtype=object)}
    with pytest.raises(InvalidInput, match="inconsistent batch size"):
        encode_predict_response(outputs, row=True, keyed=False)


def test_unsupported_output_dtype_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="Failed to write JSON value for tensor type"):
        encode_predict_response({"c": np.ones(2, np.complex64)}, row=True, keyed=False)


# --------------------------------------------------------------------- float properties


def _stdlib(raw: bytes) -> Any:
    return json.loads(raw)  # stdlib accepts NaN/Infinity literals


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=1, max_size=40))
def test_float32_text_round_trips_to_the_same_bits(values: list[float]) -> None:
    array = np.array(values, dtype=np.float32)
    raw = encode_predict_response({"y": array}, row=True, keyed=False)
    back = np.array(_stdlib(raw)["predictions"], dtype=np.float32)
    same = (back.view(np.uint32) == array.view(np.uint32)) | (np.isnan(back) & np.isnan(array))
    assert same.all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(width=64, allow_nan=False), min_size=1, max_size=30))
def test_float64_text_round_trips_and_looks_like_floats(values: list[float]) -> None:
    array = np.array(values, dtype=np.float64)
    raw = encode_predict_response({"y": array}, row=False, keyed=False)
    tokens = raw.decode()[len('{"outputs":[') : -2].split(",")
    assert all(("." in t or "e" in t or "Infinity" in t) for t in tokens)
    assert np.array_equal(np.array(_stdlib(raw)["outputs"]), array)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_every_half_precision_value_round_trips(dtype: Any) -> None:
    """All 65536 bit patterns: text parses back to the same value of that dtype."""
    array = np.arange(65536, dtype=np.uint16).view(dtype)
    raw = encode_predict_response({"y": array}, row=False, keyed=False)
    back = np.array(_stdlib(raw)["outputs"], dtype=np.float64).astype(dtype)
    nan = np.isnan(array.astype(np.float32))
    assert np.array_equal(back.view(np.uint16)[~nan], array.view(np.uint16)[~nan])
    assert np.isnan(back.astype(np.float32)[nan]).all()


def test_float32_is_shortest_not_widened() -> None:
    raw = encode_predict_response({"y": np.array([0.1, 0.2], np.float32)}, row=True, keyed=False)
    assert raw == b'{"predictions":[0.1,0.2]}'


# --------------------------------------------------------------------- examples


def test_examples_without_context() -> None:
    name, parsed = read_examples_body(
        b'{"examples": [{"names": ["foo", "bar"], "ratings": [8.0, 9.0], "age": 20},'
        b' {"names": ["baz"], "ratings": 6.0}]}'
    )
    assert name is None
    examples = parsed.example_list.examples
    assert len(examples) == 2
    first = examples[0].features.feature
    assert list(first["names"].bytes_list.value) == [b"foo", b"bar"]
    assert list(first["ratings"].float_list.value) == [8.0, 9.0]
    assert list(first["age"].int64_list.value) == [20]
    assert list(examples[1].features.feature["ratings"].float_list.value) == [6.0]


def test_examples_with_context_signature_b64_bools_and_non_finite() -> None:
    name, parsed = read_examples_body(
        b'{"signature_name": "custom", "context": {"query": "pizza", "location": ["sfo"]},'
        b' "examples": [{"names": ["baz", {"b64": "aGVsbG8="}], "ratings": [NaN, -Infinity],'
        b' "intboolmix": [1, true, false]}]}'
    )
    assert name == "custom"
    ctx = parsed.example_list_with_context.context.features.feature
    assert list(ctx["query"].bytes_list.value) == [b"pizza"]
    assert list(ctx["location"].bytes_list.value) == [b"sfo"]
    feature = parsed.example_list_with_context.examples[0].features.feature
    assert list(feature["names"].bytes_list.value) == [b"baz", b"hello"]
    ratings = list(feature["ratings"].float_list.value)
    assert math.isnan(ratings[0]) and ratings[1] == -math.inf
    assert list(feature["intboolmix"].int64_list.value) == [1, 1, 0]


def test_examples_empty_list_feature_has_no_kind() -> None:
    _, parsed = read_examples_body(b'{"examples": [{"empty": []}]}')
    feature = parsed.example_list.examples[0].features.feature["empty"]
    assert feature.WhichOneof("kind") is None


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"signature_name": ["hello"], "examples": [{}]}', "'signature_name' key must be"),
        (b'{"context": [{"names": ["foo"]}]}', "Example must be JSON object"),
        (b'{"examples": {"names": ["foo", "bar"]}}', "list/array"),
        (b'{"examples": [[{"names": ["foo"]}]]}', "Example must be JSON object"),
        (b'{"examples": []}', "'examples' value is an empty array"),
        (b'{"context": {}}', "'examples' is expected and was not found"),
        (b'{"examples": [{"names": [10, null]}]}', "names has element with unexpected JSON type"),
        (b'{"examples": [{"names": [10, 10.0]}]}', "feature: names expecting type: int64"),
        (b'{"examples": [{"names": ["a", 1]}]}', "feature: names expecting type: bytes"),
        (b'{"examples": [{"names": [10, {"test": 10}]}]}', "unexpected JSON type: Object"),
        (b'{"examples": [{"names": [[10], 20]}]}', "unexpected JSON type: Array"),
        (b'{"examples": [{"names": [20, 18446744073709551603]}]}', "Only int64 is supported"),
        (b'{"examples": [{"names": 1.7976931348623157e308}]}', "loss of precision"),
        (b'[1]', "Is not object"),
        (b'', "document is empty"),
    ],
)
def test_examples_errors(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        read_examples_body(body)
    assert message in info.value.message


def test_classify_response() -> None:
    resp = classification_pb2.ClassificationResponse()
    for scores in ([0.2, 0.7, 0.1], [0.7, 0.1, 0.2]):
        classes = resp.result.classifications.add()
        for label, score in zip(["car", "bike", "bus"], scores, strict=True):
            classes.classes.add(label=label, score=score)
    assert json.loads(encode_classify_response(resp)) == {
        "results": [
            [["car", 0.2], ["bike", 0.7], ["bus", 0.1]],
            [["car", 0.7], ["bike", 0.1], ["bus", 0.2]],
        ]
    }


def test_regress_response_with_non_finite() -> None:
    resp = regression_pb2.RegressionResponse()
    for value in (0.2, math.inf, 1.0, -math.inf, math.nan):
        resp.result.regressions.add(value=value)
    assert encode_regress_response(resp) == b'{"results":[0.2,Infinity,1.0,-Infinity,NaN]}'


def test_empty_results_are_errors() -> None:
    with pytest.raises(InvalidInput, match="empty ClassificationResults"):
        encode_classify_response(classification_pb2.ClassificationResponse())
    with pytest.raises(InvalidInput, match="empty RegressionResults"):
        encode_regress_response(regression_pb2.RegressionResponse())


# --------------------------------------------------------------------- status / metadata


def test_model_status_json_matches_tf_serving() -> None:
    resp = get_model_status_pb2.GetModelStatusResponse()
    status = resp.model_version_status.add(version=123)
    status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    status.status.SetInParent()  # TF Serving always fills it (OK)
    assert orjson.loads(encode_model_status(resp)) == {
        "model_version_status": [
            {
                "version": "123",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def test_model_metadata_json_renders_the_signature_def_map() -> None:
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    sig = sig_map.signature_def["serving_default"]
    sig.method_name = "tensorflow/serving/predict"
    info = sig.inputs["x"]
    info.name = "x:0"
    info.dtype = types_pb2.DT_FLOAT
    info.tensor_shape.dim.add(size=-1)
    sig.outputs["y"].CopyFrom(meta_graph_pb2.TensorInfo(name="y:0", dtype=types_pb2.DT_STRING))
    resp = get_model_metadata_pb2.GetModelMetadataResponse()
    resp.model_spec.name = "half_plus_two"
    resp.model_spec.version.CopyFrom(wrappers_pb2.Int64Value(value=123))
    packed = any_pb2.Any(
        type_url="type.googleapis.com/tensorflow.serving.SignatureDefMap",
        value=sig_map.SerializeToString(),
    )
    resp.metadata["signature_def"].CopyFrom(packed)
    doc = orjson.loads(encode_model_metadata(resp))
    assert doc["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "123"}
    serving = doc["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert serving["method_name"] == "tensorflow/serving/predict"
    assert serving["inputs"]["x"] == {
        "name": "x:0",
        "dtype": "DT_FLOAT",
        "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False},
    }
    assert serving["outputs"]["y"]["dtype"] == "DT_STRING"


def test_encode_error() -> None:
    assert encode_error('Bad key: "key"') == b'{"error":"Bad key: \\"key\\""}'
    assert json.loads(encode_error("Bad key: 'key'")) == {"error": "Bad key: 'key'"}


def test_deeply_nested_example_value_is_a_400() -> None:
    deep = b'{"x":' * 1000 + b"1" + b"}" * 1000
    with pytest.raises(InvalidInput, match="unexpected JSON type: Object"):
        read_examples_body(b'{"examples": [{"f": [' + deep + b"]}]}")
