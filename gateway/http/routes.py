"""Route handlers: parse the path, read the body, call the service, answer JSON.

- TF Serving: ``POST /v1/models/{m}[/versions/{v}|/labels/{l}]:{predict|classify|regress}``,
  ``GET /v1/models/{m}[/versions/{v}|/labels/{l}][/metadata]`` (bare single outputs).
- CloudML: ``POST /v1/projects/{p}/models/{m}[/versions/{v}]:predict`` (keyed outputs).
- tfdeploy: ``POST /{signature}/predict`` on the default model (keyed outputs).
- Vertex AI: ``AIP_PREDICT_ROUTE`` (default model, TF Serving body), ``AIP_HEALTH_ROUTE``.
- Operations: ``/healthz``, ``/readyz``, ``/metrics``.
"""

from __future__ import annotations

import re

import orjson
from aiohttp import web

from gateway.config import GatewayConfig
from gateway.errors import InvalidInput, NotFound
from gateway.http.body import read_body
from gateway.http.keys import (
    BODY_BYTES_KEY,
    CONFIG_KEY,
    DEADLINE_KEY,
    METRICS_KEY,
    MODEL_KEY,
    ROUTE_KEY,
    SERVICE_KEY,
)
from gateway.http.middlewares import error_response
from gateway.names import validate_label, validate_model_name
from gateway.service import Service
from gateway.types import ModelRef

__all__ = ["api_routes", "json_response", "model_ref"]

_VERSIONED = r"(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
_TFS_POST = re.compile(_VERSIONED + r":(?P<verb>[^/:]*)")
_TFS_GET = re.compile(_VERSIONED + r"(?P<metadata>/metadata)?")
_CLOUDML = re.compile(r"(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?:(?P<verb>[^/:]*)")
_VERBS = ("predict", "classify", "regress")


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def model_ref(name: str, version: str | None = None, label: str | None = None) -> ModelRef:
    """A validated :class:`ModelRef` from path parts (400 on a bad name/version/label)."""
    validate_model_name(name)
    if version is not None:
        if not version.isdigit() or not version.isascii():
            raise InvalidInput(f"Invalid version in path: {version!r} is not a number")
        if int(version) >= 2**63:  # ModelSpec.version is an int64
            raise InvalidInput(f"Invalid version in path: {version!r} is out of range")
        return ModelRef(name, version=int(version))
    if label is not None:
        return ModelRef(name, label=validate_label(label))
    return ModelRef(name)


def _tfserving_match(request: web.Request, pattern: re.Pattern[str], other: re.Pattern[str],
                     other_method: str) -> re.Match[str]:
    """The TF Serving path under ``/v1/models/`` matched by ``pattern``; a path only
    ``other`` matches is a 405 (allowing ``other_method``), anything else a 404."""
    rest = request.match_info["rest"]
    match = pattern.fullmatch(rest)
    if match is None:
        if other.fullmatch(rest):
            raise web.HTTPMethodNotAllowed(request.method, [other_method])
        raise web.HTTPNotFound()
    return match


async def _body(request: web.Request) -> bytes:
    config = request.app[CONFIG_KEY]
    body = await read_body(request, config.max_body_bytes, config.max_decompressed_bytes)
    request[BODY_BYTES_KEY] = len(body)
    return body


def _service(request: web.Request) -> Service:
    return request.app[SERVICE_KEY]


async def tfserving_post(request: web.Request) -> web.Response:
    match = _tfserving_match(request, _TFS_POST, _TFS_GET, "GET")
    verb = match["verb"]
    request[ROUTE_KEY] = verb if verb in _VERBS else "unmatched"
    request[MODEL_KEY] = match["name"]
    if verb not in _VERBS:
        raise NotFound(f"unknown method {verb!r}: use :predict, :classify or :regress")
    ref = model_ref(match["name"], match["version"], match["label"])
    body = await _body(request)
    service, deadline = _service(request), request[DEADLINE_KEY]
    if verb == "predict":
        return json_response(await service.predict(ref, body, keyed=False, deadline=deadline))
    if verb == "classify":
        return json_response(await service.classify(ref, body, deadline=deadline))
    return json_response(await service.regress(ref, body, deadline=deadline))


async def tfserving_get(request: web.Request) -> web.Response:
    match = _tfserving_match(request, _TFS_GET, _TFS_POST, "POST")
    request[ROUTE_KEY] = "metadata" if match["metadata"] else "status"
    request[MODEL_KEY] = match["name"]
    ref = model_ref(match["name"], match["version"], match["label"])
    service, deadline = _service(request), request[DEADLINE_KEY]
    if match["metadata"]:
        return json_response(await service.model_metadata(ref, deadline=deadline))
    return json_response(await service.model_status(ref, deadline=deadline))


async def cloudml_predict(request: web.Request) -> web.Response:
    match = _CLOUDML.fullmatch(request.match_info["rest"])
    if match is None or match["verb"] != "predict":
        request[ROUTE_KEY] = "unmatched"
        raise web.HTTPNotFound()
    request[ROUTE_KEY] = "cloudml_predict"
    request[MODEL_KEY] = match["name"]
    ref = model_ref(match["name"], match["version"])
    body = await _body(request)
    out = await _service(request).predict(ref, body, keyed=True, deadline=request[DEADLINE_KEY])
    return json_response(out)


def _default_model(service: Service) -> str:
    name = service.default_model()
    if name is None:
        known = ", ".join(service.known_models) or "none"
        raise NotFound(
            f"no default model (known models: {known}); start the gateway with "
            "--default-model NAME"
        )
    return name


async def tfdeploy_predict(request: web.Request) -> web.Response:
    request[ROUTE_KEY] = "tfdeploy_predict"
    service = _service(request)
    name = _default_model(service)
    request[MODEL_KEY] = name
    body = await _body(request)
    out = await service.predict(ModelRef(name), body, keyed=True, deadline=request[DEADLINE_KEY],
                                signature_name=request.match_info["signature"])
    return json_response(out)


async def vertex_predict(request: web.Request) -> web.Response:
    request[ROUTE_KEY] = "vertex_predict"
    service = _service(request)
    name = _default_model(service)
    request[MODEL_KEY] = name
    body = await _body(request)
    out = await service.predict(ModelRef(name), body, keyed=False, deadline=request[DEADLINE_KEY])
    return json_response(out)


async def healthz(request: web.Request) -> web.Response:
    request[ROUTE_KEY] = "healthz"
    return json_response(b'{"status":"ok"}')


async def readyz(request: web.Request) -> web.Response:
    request[ROUTE_KEY] = "readyz"
    ok, reason = await _service(request).ready()
    if not ok:
        return error_response(503, f"not ready: {reason}")
    return json_response(orjson.dumps({"status": "ready", "detail": reason}))


async def metrics(request: web.Request) -> web.Response:
    request[ROUTE_KEY] = "metrics"
    body, content_type = request.app[METRICS_KEY].render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def api_routes(config: GatewayConfig) -> list[web.RouteDef]:
    """Every API/operations route; Vertex AI routes first so they win over the patterns."""
    routes: list[web.RouteDef] = []
    if config.predict_route:
        routes.append(web.post(config.predict_route, vertex_predict))
    if config.health_route:
        routes.append(web.get(config.health_route, readyz, allow_head=False))
    routes += [
        web.get("/healthz", healthz, allow_head=False),
        web.get("/readyz", readyz, allow_head=False),
        web.get("/metrics", metrics, allow_head=False),
        web.post("/v1/projects/{project}/models/{rest:.+}", cloudml_predict),
        web.post("/v1/models/{rest:.+}", tfserving_post),
        web.get("/v1/models/{rest:.+}", tfserving_get, allow_head=False),
        web.post("/{signature}/predict", tfdeploy_predict),
    ]
    return routes
