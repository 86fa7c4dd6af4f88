"""OpenAPI 3.0 document for the gateway, generated from the loaded models' signatures.

Every model gets TF Serving's REST paths (predict row/columnar, classify/regress where a
signature has that method, status and metadata, version and label variants) and the
CloudML predict path; the default model also gets tfdeploy's ``/{signature}/predict``.
Schemas and example requests come from ``gateway.http.schemas``. OpenAPI 3.0 rather
than 3.1 because the bundled Swagger UI (4.x) renders 3.0 only. TF-free, aiohttp-free.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from gateway import __version__
from gateway.codec.samples import example_request, examples_request_example
from gateway.http.schemas import (
    Schema,
    SchemaRegistry,
    predict_request_schema,
    predict_response_schema,
    ref,
    signature_property,
)
from gateway.signatures import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD, Signature
from gateway.types import ModelEntry

__all__ = [
    "build_openapi",
    "predict_path",
    "public_signatures",
]


_ERRORS = {
    "400": "Invalid request: bad JSON, wrong dtype or shape, unknown input or signature",
    "401": "Missing bearer token (when the gateway requires one)",
    "403": "Wrong bearer token",
    "404": "Unknown model, version or route",
    "413": "Request body over the gateway's limit",
    "429": "Backend resource exhausted",
    "503": "Backend unavailable",
    "504": "Deadline exceeded",
}
_OP_ID = re.compile(r"[^A-Za-z0-9_]")
# (path suffix, path parameters, summary note) of TF Serving's model-addressing variants.
_VARIANTS = (
    ("", [], ""),
    ("/versions/{version}", ["version"], " (one version)"),
    ("/labels/{label}", ["label"], " (labelled version)"),
)


def public_signatures(model: ModelEntry) -> list[Signature]:
    """Signatures a client can call (not ``__saved_model_init_op``...), the default first."""
    sigs = [s for s in model.signatures.values() if not s.name.startswith("__")]
    return sorted(sigs, key=lambda s: s.name != DEFAULT_SIGNATURE)


def predict_path(model: str, verb: str = "predict", suffix: str = "") -> str:
    """``/v1/models/{model}{suffix}:{verb}`` with the model name percent-quoted."""
    return f"/v1/models/{quote(model, safe='')}{suffix}:{verb}"


def _json(schema: Schema, examples: Mapping[str, Any] | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if examples:
        media["examples"] = {k: {"summary": k, "value": v} for k, v in examples.items()}
    return {"application/json": media}


def _post(tag: str, summary: str, request: Schema, examples: Mapping[str, Any],
          response: Schema, answer: str, description: str = "") -> dict[str, Any]:
    """A POST operation with a JSON body, a JSON 200 and every error response."""
    op: dict[str, Any] = {"tags": [tag], "summary": summary}
    if description:
        op["description"] = description
    op["requestBody"] = {"required": True, "content": _json(request, examples)}
    op["responses"] = {"200": {"description": answer, "content": _json(response)},
                       **_errors()}
    return op


def _errors() -> dict[str, Any]:
    responses: dict[str, Any] = {code: ref("responses", f"E{code}") for code in _ERRORS}
    responses["default"] = ref("responses", "Error")
    return responses


def _any_of(refs: list[Schema]) -> Schema:
    if len(refs) == 1:
        return refs[0]
    return {"anyOf": refs} if refs else {"type": "object"}


class _Builder:
    """Accumulates paths, operation ids and schemas for one document."""

    def __init__(self) -> None:
        self.schemas = SchemaRegistry()
        self.paths: dict[str, dict[str, Any]] = {}
        self.op_ids: set[str] = set()

    def operation(self, path: str, method: str, op_id: str, op: dict[str, Any],
                  params: Sequence[str] = ()) -> None:
        op_id = base = _OP_ID.sub("_", op_id)
        n = 2
        while op_id in self.op_ids:
            op_id, n = f"{base}_{n}", n + 1
        self.op_ids.add(op_id)
        op = {"operationId": op_id, **op}
        if params:
            op["parameters"] = [ref("parameters", p) for p in params]
        self.paths.setdefault(path, {})[method] = op

    def add_model(self, model: ModelEntry) -> None:
        sigs = public_signatures(model)
        requests, bare, keyed = [], [], []
        for sig in sigs:
            key = f"{model.name}.{sig.name}"
            request = predict_request_schema(sig, self.schemas, key,
                                             name_required=sig.name != DEFAULT_SIGNATURE)
            requests.append(self.schemas.add(f"{key}.PredictRequest", request))
            bare.append(self.schemas.add(f"{key}.PredictResponse",
                                         predict_response_schema(sig, self.schemas, keyed=False)))
            keyed.append(self.schemas.add(f"{key}.KeyedPredictResponse",
                                          predict_response_schema(sig, self.schemas, keyed=True)))
        examples = {s.name: example_request(s) for s in sigs}
        self._predict(model, _any_of(requests), _any_of(bare), examples)
        self._cloudml(model, _any_of(requests), _any_of(keyed), examples)
        for method, verb in ((CLASSIFY_METHOD, "classify"), (REGRESS_METHOD, "regress")):
            chosen = [s for s in sigs if s.method_name == method]
            if chosen:
                self._examples_api(model, verb, chosen)
        self._status(model)

    def _predict(self, model: ModelEntry, request: Schema, response: Schema,
                 examples: dict[str, Any]) -> None:
        for suffix, params, note in _VARIANTS:
            op = _post(model.name, f"TF Serving predict{note}", request, examples, response,
                       "Predictions", "Row format `instances` → `predictions`; columnar "
                       "`inputs` → `outputs`. One output is bare, several are keyed by alias.")
            self.operation(predict_path(model.name, "predict", suffix), "post",
                           f"{model.name}_predict_{'_'.join(params)}".rstrip("_"), op, params)

    def _cloudml(self, model: ModelEntry, request: Schema, response: Schema,
                 examples: dict[str, Any]) -> None:
        base = f"/v1/projects/{{project}}/models/{quote(model.name, safe='')}"
        for suffix, params in (("", ["project"]), ("/versions/{version}", ["project", "version"])):
            op = _post(model.name, "CloudML predict (outputs always keyed by alias)", request,
                       examples, response, "Predictions keyed by output alias",
                       "The project part of the path is ignored.")
            self.operation(f"{base}{suffix}:predict", "post",
                           f"{model.name}_cloudml_predict{suffix and '_version'}", op, params)

    def _examples_api(self, model: ModelEntry, verb: str, sigs: list[Signature]) -> None:
        names = [s.name for s in sigs]
        request = self.schemas.add(f"{model.name}.{verb}.Request", {
            "type": "object",
            "required": (["examples"] if DEFAULT_SIGNATURE in names
                         else ["signature_name", "examples"]),
            "properties": {
                "signature_name": signature_property(names),
                "context": ref("schemas", "Example"),
                "examples": {"type": "array", "minItems": 1, "items": ref("schemas", "Example")},
            },
        })
        result = ref("schemas", "ClassifyResult") if verb == "classify" else {"type": "number"}
        response = {"type": "object", "required": ["results"],
                    "properties": {"results": {"type": "array", "items": result}}}
        examples = {s.name: examples_request_example(s) for s in sigs}
        for suffix, params, note in _VARIANTS:
            op = _post(model.name, f"TF Serving {verb}{note}", request, examples, response,
                       f"{verb} results", "Features of tf.Examples; their names come from "
                       "the model's parsing spec, which its signature does not show, so "
                       "`feature` in the example is a placeholder.")
            self.operation(predict_path(model.name, verb, suffix), "post",
                           f"{model.name}_{verb}_{'_'.join(params)}".rstrip("_"), op, params)

    def _status(self, model: ModelEntry) -> None:
        base = f"/v1/models/{quote(model.name, safe='')}"
        for suffix, params, _ in _VARIANTS[:2]:
            for kind, schema, tail in (("status", "ModelStatus", ""),
                                       ("metadata", "ModelMetadata", "/metadata")):
                op = {"tags": [model.name], "summary": f"TF Serving model {kind}",
                      "responses": {"200": {"description": f"Model {kind}",
                                            "content": _json(ref("schemas", schema))},
                                    **_errors()}}
                self.operation(base + suffix + tail, "get",
                               f"{model.name}_{kind}{suffix and '_version'}", op, params)

    def add_tfdeploy(self, model: ModelEntry) -> None:
        for sig in public_signatures(model):
            key = f"{model.name}.{sig.name}.tfdeploy"
            request = self.schemas.add(f"{key}.PredictRequest", predict_request_schema(
                sig, self.schemas, key, name_required=False))
            response = self.schemas.add(f"{key}.PredictResponse", predict_response_schema(
                sig, self.schemas, keyed=True))
            example = {sig.name: example_request(sig, name_in_body=False)}
            op = _post("tfdeploy", f"tfdeploy predict: {model.name} / {sig.name}", request,
                       example, response, "Predictions keyed by output alias",
                       "A `signature_name` in the body overrides the one in the path.")
            self.operation(f"/{quote(sig.name, safe='')}/predict", "post",
                           f"tfdeploy_{sig.name}_predict", op)

    def add_operations(self) -> None:
        for path, summary, extra in (
            ("/healthz", "Process alive", {}),
            ("/readyz", "Backend reachable and a model AVAILABLE",
             {"503": ref("responses", "E503")}),
        ):
            op = {"tags": ["operations"], "summary": summary,
                  "responses": {"200": {"description": summary}, **extra}}
            self.operation(path, "get", path.strip("/"), op)
        text = {"text/plain": {"schema": {"type": "string"}}}
        self.operation("/metrics", "get", "metrics", {
            "tags": ["operations"], "summary": "Prometheus metrics",
            "responses": {"200": {"description": "Prometheus text format", "content": text}},
        })


def _components(schemas: SchemaRegistry) -> dict[str, Any]:
    error = {"content": _json(ref("schemas", "Error"))}
    responses = {f"E{code}": {"description": text, **error} for code, text in _ERRORS.items()}
    responses["Error"] = {"description": "Other error", **error}
    label = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"}
    return {
        "schemas": schemas.items,
        "responses": responses,
        "parameters": {
            "version": {"name": "version", "in": "path", "required": True,
                        "schema": {"type": "integer", "format": "int64", "minimum": 0}},
            "label": {"name": "label", "in": "path", "required": True, "schema": label},
            "project": {"name": "project", "in": "path", "required": True,
                        "description": "Ignored (CloudML compatibility)",
                        "schema": {"type": "string"}},
        },
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    }


def _tags(models: Sequence[ModelEntry], default: ModelEntry | None) -> list[dict[str, str]]:
    tags = []
    for model in models:
        version = "unknown version" if model.version is None else f"version {model.version}"
        sigs = ", ".join(s.name for s in public_signatures(model)) or "no signatures"
        tags.append({"name": model.name, "description": f"{version}; signatures: {sigs}"})
    if default is not None:
        tags.append({"name": "tfdeploy",
                     "description": f"tfdeploy paths for the default model {default.name}"})
    tags.append({"name": "operations", "description": "Health, readiness and metrics"})
    return tags


def build_openapi(models: Sequence[ModelEntry], *, default_model: str | None) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document for ``models`` (tfdeploy paths for ``default_model``)."""
    builder = _Builder()
    for model in models:
        builder.add_model(model)
    default = next((m for m in models if m.name == default_model), None)
    if default is not None:
        builder.add_tfdeploy(default)
    builder.add_operations()
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "tfserving-gateway",
            "version": __version__,
            "description": "TF Serving REST, CloudML and tfdeploy predict APIs for the "
            "loaded models. Integer dtypes take JSON integers only, in range; strings take "
            'text or `{"b64": ...}`; NaN/Infinity literals are accepted for floats.',
        },
        "servers": [{"url": "/"}],
        "security": [{}, {"bearerAuth": []}],
        "tags": _tags(models, default),
        "paths": builder.paths,
        "components": _components(builder.schemas),
    }
