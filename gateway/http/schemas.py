"""JSON schemas and example requests derived from one signature (for ``gateway.http.openapi``).

A tensor's schema is nested arrays following its shape (known dims bounded, unknown dims
free, unknown rank recursive) around an element schema per dtype: ``number`` for floats,
``integer`` with the width's min/max, ``boolean``, and text or ``{"b64": ...}`` for
DT_STRING (outputs: ``{"b64": ...}`` only for ``*_bytes`` aliases), as SPEC §6.
Schemas use the JSON Schema subset OpenAPI 3.0 shares, so plain ``jsonschema`` checks them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.pb import types_pb2
from gateway.signatures import DEFAULT_SIGNATURE, Signature, TensorSpec

__all__ = [
    "SchemaRegistry",
    "predict_request_schema",
    "predict_response_schema",
    "ref",
    "shape_text",
    "signature_property",
    "static_schemas",
]

Schema = dict[str, Any]

_FLOAT_FORMATS = {
    types_pb2.DT_HALF: "float",
    types_pb2.DT_BFLOAT16: "float",
    types_pb2.DT_FLOAT: "float",
    types_pb2.DT_DOUBLE: "double",
}
_INT_RANGES = {
    types_pb2.DT_INT8: (-(2**7), 2**7 - 1),
    types_pb2.DT_UINT8: (0, 2**8 - 1),
    types_pb2.DT_INT16: (-(2**15), 2**15 - 1),
    types_pb2.DT_UINT16: (0, 2**16 - 1),
    types_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}
_KEY = re.compile(r"[^A-Za-z0-9._-]")


def ref(kind: str, key: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{key}"}


def shape_text(spec: TensorSpec) -> str:
    """``[-1, 8, 8]``, or ``unknown rank``."""
    if spec.shape is None:
        return "unknown rank"
    return "[" + ", ".join(str(d) for d in spec.shape) + "]"


def _is_bytes_output(spec: TensorSpec) -> bool:
    return spec.dtype == types_pb2.DT_STRING and spec.alias.endswith("_bytes")


def _leaf_schema(spec: TensorSpec, *, output: bool) -> Schema:
    """Schema of one element of ``spec``'s tensor as JSON carries it."""
    dtype = spec.dtype
    if dtype in _FLOAT_FORMATS:
        return {"type": "number", "format": _FLOAT_FORMATS[dtype]}
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        fmt = "int64" if high > 2**31 else "int32"
        return {"type": "integer", "format": fmt, "minimum": low, "maximum": high}
    if dtype == types_pb2.DT_BOOL:
        return {"type": "boolean"}
    if dtype == types_pb2.DT_STRING:
        if output:
            return ref("schemas", "Base64") if _is_bytes_output(spec) else {"type": "string"}
        return {"anyOf": [{"type": "string"}, ref("schemas", "Base64")]}
    return {"description": f"{spec.dtype_name} tensors are not supported by the JSON API"}


def static_schemas() -> dict[str, Schema]:
    """Schemas every document has: errors, b64 strings, tf.Example, status, metadata."""
    scalar = {"anyOf": [{"type": "number"}, {"type": "string"}, ref("schemas", "Base64")]}
    status = {
        "type": "object",
        "properties": {
            "version": {"type": "string", "description": "int64 as a string"},
            "state": {"type": "string", "enum": [
                "UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END"]},
            "status": {"type": "object", "properties": {
                "error_code": {"type": "string"}, "error_message": {"type": "string"}}},
        },
    }
    return {
        "Error": {"type": "object", "required": ["error"],
                  "properties": {"error": {"type": "string"}}},
        "Base64": {
            "type": "object",
            "description": "Binary string, base64 (standard or URL-safe alphabet)",
            "required": ["b64"],
            "properties": {"b64": {"type": "string"}},
            "additionalProperties": False,
        },
        "Example": {
            "type": "object",
            "description": "tf.Example features: a value or a list of values per feature",
            "additionalProperties": {"anyOf": [scalar, {"type": "array", "items": scalar}]},
        },
        "ClassifyResult": {
            "type": "array",
            "description": "[label, score] pairs for one example",
            "items": {"type": "array", "minItems": 2, "maxItems": 2,
                      "items": {"anyOf": [{"type": "string"}, {"type": "number"}]}},
        },
        "ModelStatus": {"type": "object", "properties": {
            "model_version_status": {"type": "array", "items": status}}},
        "ModelMetadata": {"type": "object", "properties": {
            "model_spec": {"type": "object"},
            "metadata": {"type": "object", "properties": {"signature_def": {"type": "object"}}},
        }},
    }


class SchemaRegistry:
    """``components.schemas`` under construction: unique keys that OpenAPI accepts."""

    def __init__(self) -> None:
        self.items: dict[str, Schema] = static_schemas()

    def add(self, key: str, schema: Schema) -> Schema:
        """Store ``schema`` under a sanitised, de-duplicated ``key``; return its ``$ref``."""
        key = _KEY.sub("_", key)
        base, n = key, 2
        while key in self.items:
            key, n = f"{base}_{n}", n + 1
        self.items[key] = schema
        return ref("schemas", key)

    def any_rank(self, spec: TensorSpec, *, output: bool) -> Schema:
        """A recursive "scalar or nested lists of any depth" schema (shared per dtype)."""
        key = f"AnyRank.{spec.dtype_name}"
        if output and spec.dtype == types_pb2.DT_STRING:
            key += ".bytes" if _is_bytes_output(spec) else ".text"
        if key not in self.items:
            self.items[key] = {
                "description": f"{spec.dtype_name}: a scalar or nested lists of any depth",
                "anyOf": [_leaf_schema(spec, output=output),
                          {"type": "array", "items": ref("schemas", key)}],
            }
        return ref("schemas", key)

    def tensor(self, spec: TensorSpec, *, output: bool, drop_batch: bool) -> Schema:
        """Nested arrays following ``spec.shape`` (minus the batch dim for row format)."""
        if spec.shape is None:
            # A bare $ref: openapi-spec-validator loops on allOf around a recursive schema.
            return self.any_rank(spec, output=output)
        dims = spec.shape[1:] if drop_batch and spec.shape else spec.shape
        schema = _leaf_schema(spec, output=output)
        for depth, dim in enumerate(reversed(dims)):
            schema = {"type": "array", "items": schema}
            if dim >= 0:
                schema |= {"minItems": dim, "maxItems": dim}
            elif depth > 0 and not output:  # a request's [] would lose the inner dims
                schema |= {"minItems": 1}  # (an answer with 0 rows is legitimately [])
        note = {"description": f"{spec.dtype_name}, tensor shape {shape_text(spec)}"}
        return {"allOf": [schema], **note} if "$ref" in schema else schema | note

    def values(self, specs: Mapping[str, TensorSpec], *, bare: bool, output: bool,
               drop_batch: bool) -> Schema:
        """Object keyed by alias; also the bare value when ``bare`` and one tensor."""
        keyed = {
            "type": "object",
            "required": list(specs),
            "properties": {a: self.tensor(s, output=output, drop_batch=drop_batch)
                           for a, s in specs.items()},
            "additionalProperties": False,
        }
        if bare and len(specs) == 1:
            (spec,) = specs.values()
            return {"anyOf": [self.tensor(spec, output=output, drop_batch=drop_batch), keyed]}
        return keyed


def signature_property(names: Sequence[str]) -> Schema:
    prop: Schema = {"type": "string", "enum": list(names)}
    if DEFAULT_SIGNATURE in names:
        prop["default"] = DEFAULT_SIGNATURE
    return prop


def predict_request_schema(sig: Signature, schemas: SchemaRegistry, key: str, *,
                           name_required: bool) -> Schema:
    """Row (``instances``) or columnar (``inputs``) predict body for one signature."""
    instance = schemas.add(f"{key}.Instance", schemas.values(
        sig.inputs, bare=True, output=False, drop_batch=True))
    inputs = schemas.add(f"{key}.Inputs", schemas.values(
        sig.inputs, bare=True, output=False, drop_batch=False))
    required = ["signature_name"] if name_required else []
    name = signature_property([sig.name])

    def body(field: str, schema: Schema) -> Schema:
        return {"type": "object", "required": [*required, field],
                "properties": {"signature_name": name, field: schema},
                "additionalProperties": False}

    rows = {"type": "array", "minItems": 1, "items": instance}
    return {"description": f"Signature {sig.name!r}: row or columnar format",
            "anyOf": [body("instances", rows), body("inputs", inputs)]}


def predict_response_schema(sig: Signature, schemas: SchemaRegistry, *, keyed: bool) -> Schema:
    """``{"predictions": [...]}`` or ``{"outputs": ...}``; one output bare unless ``keyed``."""
    if not keyed and len(sig.outputs) == 1:
        (spec,) = sig.outputs.values()
        prediction = schemas.tensor(spec, output=True, drop_batch=True)
        outputs = schemas.tensor(spec, output=True, drop_batch=False)
    else:
        prediction = schemas.values(sig.outputs, bare=False, output=True, drop_batch=True)
        outputs = schemas.values(sig.outputs, bare=False, output=True, drop_batch=False)
    return {"anyOf": [
        {"type": "object", "required": ["predictions"],
         "properties": {"predictions": {"type": "array", "items": prediction}}},
        {"type": "object", "required": ["outputs"], "properties": {"outputs": outputs}},
    ]}
