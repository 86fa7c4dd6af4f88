"""``:classify`` / ``:regress`` bodies and results, as TF Serving's REST API has them.

Request: ``{"signature_name"?, "context"?, "examples": [...]}`` -> ``Input`` of
``Example`` protos (ints and bools -> int64_list, floats -> float_list, strings and
``{"b64": ...}`` -> bytes_list). Results: ``{"results": ...}`` with float32 scores.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from gateway.codec.values import (
    decode_b64,
    is_b64,
    json_tokens,
    json_type,
    parse_request_object,
    utf8,
)
from gateway.errors import InvalidInput
from gateway.pb import classification_pb2, example_pb2, feature_pb2, input_pb2, regression_pb2

__all__ = ["encode_classify_response", "encode_regress_response", "read_examples_body"]

_F32_MAX = float(np.finfo(np.float32).max)
_I64 = np.iinfo(np.int64)


def read_examples_body(body: bytes) -> tuple[str | None, input_pb2.Input]:
    """``{"signature_name"?, "context"?, "examples": [...]}`` -> ``Input`` (as TF Serving)."""
    doc, signature_name = parse_request_object(body)
    result = input_pb2.Input()
    context = None
    if "context" in doc:
        context = _example(doc["context"])
    if "examples" not in doc:
        raise InvalidInput("Key 'examples' is expected and was not found")
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise InvalidInput("Expecting 'examples' value to be an list/array")
    if not examples:
        raise InvalidInput("'examples' value is an empty array")
    parsed = [_example(item) for item in examples]
    if context is not None:
        result.example_list_with_context.context.CopyFrom(context)
        result.example_list_with_context.examples.extend(parsed)
    else:
        result.example_list.examples.extend(parsed)
    return signature_name, result


def _example(value: Any) -> example_pb2.Example:
    if not isinstance(value, dict):
        raise InvalidInput(f"Example must be JSON object but got JSON {json_type(value)}")
    example = example_pb2.Example()
    for name, content in value.items():
        items = content if isinstance(content, list) else [content]
        example.features.feature[name].CopyFrom(_feature(name, items))
    return example


def _feature(name: str, items: list[Any]) -> feature_pb2.Feature:
    kind: str | None = None
    values: list[Any] = []
    for item in items:
        item_kind, converted = _feature_value(name, item)
        if kind is not None and item_kind != kind:
            raise InvalidInput(
                f"Unexpected element type in feature: {name} expecting type: {kind}"
            )
        kind = item_kind
        values.append(converted)
    feature = feature_pb2.Feature()
    if kind is not None:
        getattr(feature, f"{kind}_list").value.extend(values)
    return feature


def _feature_value(name: str, item: Any) -> tuple[str, Any]:
    if type(item) is bool:
        return "int64", int(item)
    if type(item) is int:
        if item > _I64.max:
            raise InvalidInput(f"Feature: {name} has uint64 element. Only int64 is supported.")
        if item < _I64.min:
            raise InvalidInput(f"Feature: {name} has an int64 element out of range: {item}")
        return "int64", item
    if type(item) is float:
        if math.isfinite(item) and abs(item) > _F32_MAX:
            raise InvalidInput(
                f"Cannot convert JSON value: {item!r} to float without loss of precision."
            )
        return "float", item
    if type(item) is str:
        return "bytes", utf8(item)
    if is_b64(item):
        return "bytes", decode_b64(item["b64"])
    raise InvalidInput(
        f"Feature: {name} has element with unexpected JSON type: {json_type(item)}"
    )


def encode_classify_response(resp: classification_pb2.ClassificationResponse) -> bytes:
    """``{"results": [[[label, score], ...], ...]}``."""
    result = resp.result
    if not result.classifications:
        raise InvalidInput("Cannot convert empty ClassificationResults to JSON")
    rows = []
    for classifications in result.classifications:
        scores = _float32_fragments([c.score for c in classifications.classes])
        rows.append([
            [c.label, score] for c, score in zip(classifications.classes, scores, strict=True)
        ])
    return orjson.dumps({"results": rows})


def encode_regress_response(resp: regression_pb2.RegressionResponse) -> bytes:
    """``{"results": [value, ...]}``."""
    regressions = resp.result.regressions
    if not regressions:
        raise InvalidInput("Cannot convert empty RegressionResults to JSON")
    return orjson.dumps({"results": _float32_fragments([r.value for r in regressions])})


def _float32_fragments(values: list[float]) -> list[orjson.Fragment]:
    return [orjson.Fragment(t) for t in json_tokens(np.array(values, dtype=np.float32))]
