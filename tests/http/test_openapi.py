"""OpenAPI document built from real-looking signatures: valid, typed per dtype, working examples."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from gateway.codec import decode_predict_inputs, read_predict_body
from gateway.codec.samples import example_request
from gateway.http.openapi import build_openapi
from gateway.pb import types_pb2 as t
from gateway.signatures import Signature, TensorSpec
from gateway.types import ModelEntry

PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


def _specs(items: list[tuple[str, int, tuple[int, ...] | None]]) -> dict[str, TensorSpec]:
    return {a: TensorSpec(alias=a, name=f"{a}:0", dtype=d, shape=s) for a, d, s in items}


def _sig(name: str, inputs: list, outputs: list, method: str = PREDICT) -> Signature:
    return Signature(name=name, method_name=method, inputs=_specs(inputs), outputs=_specs(outputs))


def _model(name: str, *sigs: Signature, version: int | None = 1) -> ModelEntry:
    return ModelEntry(name=name, version=version, signatures={s.name: s for s in sigs})


INT_DTYPES = [t.DT_UINT8, t.DT_INT8, t.DT_INT16, t.DT_UINT16, t.DT_INT32, t.DT_UINT32,
              t.DT_INT64, t.DT_UINT64]

DIGITS = _model(
    "digits",
    _sig("serving_default", [("image", t.DT_FLOAT, (-1, 8, 8))],
         [("prediction", t.DT_FLOAT, (-1, 10))]),
)
MTCARS = _model(
    "mtcars",
    _sig("serving_default", [("disp", t.DT_DOUBLE, (-1, 1)), ("cyl", t.DT_INT64, (-1, 1))],
         [("mpg", t.DT_FLOAT, (-1, 1))]),
    _sig("ints", [(f"v{d}", d, (-1, 2)) for d in INT_DTYPES] + [("flag", t.DT_BOOL, (-1,))],
         [("total", t.DT_INT64, (-1,)), ("any", t.DT_BOOL, (-1,))]),
    version=7,
)
TEXT = _model(
    "text",
    _sig("serving_default", [("text", t.DT_STRING, (-1,)), ("image_bytes", t.DT_STRING, (-1,))],
         [("label", t.DT_STRING, (-1,)), ("embedding_bytes", t.DT_STRING, (-1,))]),
)
SHAPES = _model(
    "my-model.v2",
    _sig("serving_default", [("x", t.DT_FLOAT, None)], [("y", t.DT_FLOAT, None)]),
    _sig("scalar", [("s", t.DT_INT32, ())], [("y", t.DT_FLOAT, ())]),
    _sig("fixed_batch", [("x", t.DT_HALF, (3, -1))], [("y", t.DT_HALF, (3, -1))]),
    _sig("weird sig/<x>", [("x", t.DT_FLOAT, (-1,))], [("y", t.DT_FLOAT, (-1,))]),
    version=None,
)
CLASSIFIER = _model(
    "classifier",
    _sig("classify_x_to_y", [("inputs", t.DT_STRING, (-1,))],
         [("classes", t.DT_STRING, (-1, 2)), ("scores", t.DT_FLOAT, (-1, 2))], CLASSIFY),
    _sig("regress_x_to_y", [("inputs", t.DT_STRING, (-1,))], [("outputs", t.DT_FLOAT, (-1,))],
         REGRESS),
    _sig("serving_default", [("x", t.DT_FLOAT, (-1,))], [("y", t.DT_FLOAT, (-1,))]),
)
ALL = [DIGITS, MTCARS, TEXT, SHAPES, CLASSIFIER]


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    """A JSON Schema validator for ``schema`` whose ``#/components/...`` refs resolve in ``doc``."""
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


def _is_valid(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    return _validator(doc, schema).is_valid(value)


def _request_schema(doc: dict[str, Any], path: str) -> dict[str, Any]:
    return doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def _response_schema(doc: dict[str, Any], path: str) -> dict[str, Any]:
    return doc["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]


def _component(doc: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    return doc["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


def _request_examples(doc: dict[str, Any]) -> Iterator[tuple[str, str, Any, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        body = item.get("post", {}).get("requestBody")
        if body:
            media = body["content"]["application/json"]
            for name, example in media["examples"].items():
                yield path, name, example["value"], media["schema"]


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_openapi(ALL, default_model="digits")


@pytest.mark.parametrize("default_model", [None, "digits", "my-model.v2", "absent"])
def test_document_is_valid_openapi(default_model: str | None) -> None:
    document = build_openapi(ALL, default_model=default_model)
    validate(document)
    assert document["openapi"].startswith("3.0")
    json.dumps(document, allow_nan=False)


def test_empty_model_list_is_valid() -> None:
    document = build_openapi([], default_model=None)
    validate(document)
    assert set(document["paths"]) == {"/healthz", "/readyz", "/metrics"}


def test_tf_serving_paths_per_model(doc: dict[str, Any]) -> None:
    paths = set(doc["paths"])
    for name in ("digits", "mtcars", "text", "my-model.v2", "classifier"):
        base = f"/v1/models/{name}"
        assert {
            f"{base}:predict", f"{base}/versions/{{version}}:predict",
            f"{base}/labels/{{label}}:predict", base, f"{base}/metadata",
            f"{base}/versions/{{version}}", f"{base}/versions/{{version}}/metadata",
            f"/v1/projects/{{project}}/models/{name}:predict",
            f"/v1/projects/{{project}}/models/{name}/versions/{{version}}:predict",
        } <= paths
        assert set(doc["paths"][base]) == {"get"}
        assert set(doc["paths"][f"{base}:predict"]) == {"post"}
    assert {"/healthz", "/readyz", "/metrics"} <= paths


def test_classify_and_regress_only_where_a_signature_has_that_method(doc: dict[str, Any]) -> None:
    verbs = {p.rsplit(":", 1)[1] for p in doc["paths"] if ":" in p}
    assert verbs == {"predict", "classify", "regress"}
    for path in doc["paths"]:
        if path.endswith((":classify", ":regress")):
            assert path.startswith("/v1/models/classifier")
    classify = _component(doc, _request_schema(doc, "/v1/models/classifier:classify"))
    assert classify["properties"]["signature_name"]["enum"] == ["classify_x_to_y"]
    assert "signature_name" in classify["required"]


def test_tfdeploy_paths_only_for_the_default_model() -> None:
    without = build_openapi(ALL, default_model=None)
    assert not [p for p in without["paths"] if p.endswith("/predict") and ":" not in p]
    shapes = build_openapi(ALL, default_model="my-model.v2")
    tfdeploy = sorted(p for p in shapes["paths"] if p.endswith("/predict") and ":" not in p)
    assert tfdeploy == ["/fixed_batch/predict", "/scalar/predict", "/serving_default/predict",
                        "/weird%20sig%2F%3Cx%3E/predict"]


def test_parameters_and_error_responses(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/v1/models/mtcars/versions/{version}:predict"]["post"]
    assert op["parameters"] == [{"$ref": "#/components/parameters/version"}]
    version = doc["components"]["parameters"]["version"]
    assert (version["in"], version["required"], version["schema"]["type"]) == (
        "path", True, "integer")
    for code in ("400", "401", "403", "404", "413", "429", "503", "504"):
        response = doc["components"]["responses"][op["responses"][code]["$ref"].rsplit("/", 1)[1]]
        error = response["content"]["application/json"]["schema"]
        assert _is_valid(doc, error, {"error": "bad"})
        assert not _is_valid(doc, error, {"message": "bad"})
    ids = [o["operationId"] for item in doc["paths"].values() for o in item.values()]
    assert len(ids) == len(set(ids))


def _leaf(doc: dict[str, Any], model: str, signature: str, alias: str) -> dict[str, Any]:
    """Element schema of one input, read from the row-format instance schema."""
    instance = doc["components"]["schemas"][f"{model}.{signature}.Instance"]
    keyed = instance["anyOf"][1] if "anyOf" in instance else instance
    schema = keyed["properties"][alias]
    while schema.get("type") == "array":
        schema = schema["items"]
    return {k: v for k, v in schema.items() if k != "description"}


@pytest.mark.parametrize(
    ("dtype", "low", "high"),
    [(t.DT_UINT8, 0, 255), (t.DT_INT8, -128, 127), (t.DT_INT16, -32768, 32767),
     (t.DT_UINT16, 0, 65535), (t.DT_INT32, -(2**31), 2**31 - 1), (t.DT_UINT32, 0, 2**32 - 1),
     (t.DT_INT64, -(2**63), 2**63 - 1), (t.DT_UINT64, 0, 2**64 - 1)],
)
def test_integer_schemas_carry_the_width_range(doc: dict[str, Any], dtype: int, low: int,
                                               high: int) -> None:
    leaf = _leaf(doc, "mtcars", "ints", f"v{dtype}")
    assert (leaf["type"], leaf["minimum"], leaf["maximum"]) == ("integer", low, high)
    assert _is_valid(doc, leaf, low) and _is_valid(doc, leaf, high)
    assert not _is_valid(doc, leaf, low - 1) and not _is_valid(doc, leaf, high + 1)
    assert not _is_valid(doc, leaf, 2.5) and not _is_valid(doc, leaf, "1")


def test_float_bool_and_string_schemas(doc: dict[str, Any]) -> None:
    assert _leaf(doc, "digits", "serving_default", "image") == {"type": "number", "format": "float"}
    assert _leaf(doc, "mtcars", "serving_default", "disp")["format"] == "double"
    assert _leaf(doc, "mtcars", "ints", "flag") == {"type": "boolean"}
    text = _leaf(doc, "text", "serving_default", "text")
    for good in ("hello", {"b64": "aGVsbG8="}):
        assert _is_valid(doc, text, good)
    for bad in (1, {"b64": 1}, {"b64": "x", "extra": 1}, {"text": "x"}):
        assert not _is_valid(doc, text, bad)


def test_output_strings_are_b64_only_for_bytes_aliases(doc: dict[str, Any]) -> None:
    schema = _response_schema(doc, "/v1/models/text:predict")
    good = {"predictions": [{"label": "cat", "embedding_bytes": {"b64": "AAE="}}]}
    assert _is_valid(doc, schema, good)
    assert not _is_valid(doc, schema, {"predictions": [{"label": {"b64": "AA=="},
                                                        "embedding_bytes": {"b64": "AA=="}}]})
    assert not _is_valid(doc, schema, {"predictions": [{"label": "a", "embedding_bytes": "AA"}]})


def test_an_answer_with_zero_rows_is_valid(doc: dict[str, Any]) -> None:
    """Requests may not send ``[]`` for a [-1, 2] input, but a 0-row answer prints as ``[]``."""
    schema = _response_schema(doc, "/v1/models/classifier:predict")
    assert _is_valid(doc, schema, {"outputs": {"classes": [], "scores": []}})
    assert _is_valid(doc, schema, {"outputs": {"classes": [["a", "b"]], "scores": [[0.1, 0.9]]}})


def test_shapes_nest_and_bound_known_dims(doc: dict[str, Any]) -> None:
    instance = doc["components"]["schemas"]["digits.serving_default.Instance"]
    bare = instance["anyOf"][0]
    assert (bare["minItems"], bare["maxItems"]) == (8, 8)
    assert (bare["items"]["minItems"], bare["items"]["maxItems"]) == (8, 8)
    assert bare["items"]["items"]["type"] == "number"
    schema = _request_schema(doc, "/v1/models/digits:predict")
    row = [[0.5] * 8] * 8
    assert _is_valid(doc, schema, {"instances": [row, row]})
    assert _is_valid(doc, schema, {"instances": [{"image": row}]})
    assert _is_valid(doc, schema, {"inputs": [row]})
    assert _is_valid(doc, schema, {"inputs": {"image": [row, row, row]}})
    for bad in (
        {"instances": [[[0.5] * 7] * 8]},          # wrong inner size
        {"instances": [row], "inputs": [row]},      # both formats
        {"instances": []},                          # no instances
        {"instances": [{"image": row, "extra": 1}]},
        {"instances": [[["0.5"] * 8] * 8]},
        {"signature_name": "other", "instances": [row]},
        {"inputs": [[0.5] * 8] * 8},                # columnar keeps the batch dim
        {"inputs": []},                             # [] would lose the inner dims
        {"inputs": {"image": []}},
    ):
        assert not _is_valid(doc, schema, bad), bad


def test_unknown_dims_and_unknown_rank_are_unbounded(doc: dict[str, Any]) -> None:
    schema = _request_schema(doc, "/v1/models/my-model.v2:predict")
    for value in (1.5, [1.5], [[1.5, 2.5]], [[[0.0]]]):
        assert _is_valid(doc, schema, {"instances": [value]}), value
    assert not _is_valid(doc, schema, {"instances": [[["x"]]]})
    fixed = {"signature_name": "fixed_batch"}
    assert _is_valid(doc, schema, {**fixed, "instances": [[1.0] * 5] * 3})
    assert _is_valid(doc, schema, {**fixed, "inputs": [[1.0] * 5] * 3})


def test_multi_input_requires_every_alias(doc: dict[str, Any]) -> None:
    schema = _request_schema(doc, "/v1/models/mtcars:predict")
    assert _is_valid(doc, schema, {"instances": [{"disp": [160.0], "cyl": [6]}]})
    assert not _is_valid(doc, schema, {"instances": [{"disp": [160.0]}]})
    assert not _is_valid(doc, schema, {"instances": [{"disp": [160.0], "cyl": [6.5]}]})
    assert not _is_valid(doc, schema, {"instances": [[160.0]]})
    ints = {"signature_name": "ints", "instances": [{
        **{f"v{d}": [1, 2] for d in INT_DTYPES}, "flag": True}]}
    assert _is_valid(doc, schema, ints)
    ints["instances"][0][f"v{t.DT_UINT8}"] = [1, 300]
    assert not _is_valid(doc, schema, ints)
    del ints["signature_name"]
    ints["instances"][0][f"v{t.DT_UINT8}"] = [1, 2]
    assert not _is_valid(doc, schema, ints), "non-default signature needs signature_name"


def test_tf_serving_single_output_is_bare_cloudml_keyed(doc: dict[str, Any]) -> None:
    bare = {"predictions": [[0.1] * 10]}
    keyed = {"predictions": [{"prediction": [0.1] * 10}]}
    tf_serving = _response_schema(doc, "/v1/models/digits:predict")
    cloudml = _response_schema(doc, "/v1/projects/{project}/models/digits:predict")
    tfdeploy = _response_schema(doc, "/serving_default/predict")
    assert _is_valid(doc, tf_serving, bare) and not _is_valid(doc, tf_serving, keyed)
    for schema in (cloudml, tfdeploy):
        assert _is_valid(doc, schema, keyed) and not _is_valid(doc, schema, bare)
    assert _is_valid(doc, tf_serving, {"outputs": [[0.1] * 10]})
    assert _is_valid(doc, cloudml, {"outputs": {"prediction": [[0.1] * 10]}})


def test_every_example_validates_against_its_request_schema(doc: dict[str, Any]) -> None:
    seen = 0
    for path, name, value, schema in _request_examples(doc):
        errors = list(_validator(doc, schema).iter_errors(value))
        assert not errors, (path, name, [e.message for e in errors])
        seen += 1
    signatures = sum(len(m.signatures) for m in ALL)
    assert seen >= 5 * signatures  # predict (3) + cloudml (2) per signature, + extras


def test_example_requests_follow_dtype_and_shape() -> None:
    digits = example_request(DIGITS.signatures["serving_default"])
    assert digits == {"instances": [{"image": [[0.0] * 8] * 8}]}
    mtcars = MTCARS.signatures
    assert example_request(mtcars["serving_default"]) == {
        "instances": [{"cyl": [0], "disp": [0.0]}]}
    ints = example_request(mtcars["ints"])
    assert ints["signature_name"] == "ints" and ints["instances"][0]["flag"] is False
    assert "signature_name" not in example_request(mtcars["ints"], name_in_body=False)
    assert example_request(TEXT.signatures["serving_default"]) == {
        "instances": [{"image_bytes": {"b64": ""}, "text": ""}]}
    shapes = SHAPES.signatures
    assert example_request(shapes["serving_default"]) == {"instances": [{"x": 0.0}]}
    assert example_request(shapes["scalar"]) == {"signature_name": "scalar", "inputs": {"s": 0}}
    assert example_request(shapes["fixed_batch"])["instances"] == [{"x": [0.0]}] * 3


def test_hostile_names_become_valid_keys_and_quoted_paths(doc: dict[str, Any]) -> None:
    keys = doc["components"]["schemas"]
    assert all(set(k) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
               for k in keys)
    schema = _request_schema(doc, "/v1/models/my-model.v2:predict")
    named = {"signature_name": "weird sig/<x>", "instances": [{"x": 1.0}]}
    assert _is_valid(doc, schema, named)


def _compatible(shape: tuple[int, ...] | None, actual: tuple[int, ...]) -> bool:
    if shape is None:
        return True
    return len(shape) == len(actual) and all(d in (-1, a) for d, a in zip(shape, actual,
                                                                            strict=True))


@pytest.mark.parametrize("model", ALL, ids=lambda m: m.name)
def test_examples_are_accepted_by_the_codec(model: ModelEntry) -> None:
    """The gateway's own decoder takes every predict example (dtype, rank, batch, b64)."""
    for sig in model.signatures.values():
        for name_in_body in (True, False):
            raw = json.dumps(example_request(sig, name_in_body=name_in_body)).encode()
            body = read_predict_body(raw)
            arrays = decode_predict_inputs(body, sig)
            assert set(arrays) == set(sig.inputs)
            for alias, array in arrays.items():
                assert _compatible(sig.inputs[alias].shape, array.shape), (sig.name, alias)
