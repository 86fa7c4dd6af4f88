"""Cross-cutting request handling, outermost first: observe (metrics + access log), CORS,
gzip responses, errors → JSON (the one place), bearer auth, per-request deadline.

Handlers record ``ROUTE_KEY`` and ``MODEL_KEY`` (``gateway.http.keys``) for the metrics labels,
and read ``DEADLINE_KEY`` (an absolute ``time.monotonic()`` value).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import zlib

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.config import GatewayConfig, parse_duration
from gateway.errors import (
    Code,
    DeadlineExceeded,
    GatewayError,
    InvalidInput,
    PermissionDenied,
    Unauthenticated,
)
from gateway.http.keys import BODY_BYTES_KEY, DEADLINE_KEY, MODEL_KEY, ROUTE_KEY, SERVICE_KEY
from gateway.http.memory import Trimmer
from gateway.metrics import Metrics

__all__ = ["build_middlewares", "error_response"]

log = logging.getLogger("gateway.http")
access_log = logging.getLogger("gateway.access")

UNAUTHENTICATED_PATHS = frozenset({"/healthz", "/readyz"})
CORS_HEADERS = "Authorization, Content-Type, Content-Encoding, Accept-Encoding, Request-Timeout"
CORS_METHODS = "GET, POST, OPTIONS"
CLIENT_CLOSED = 499


def error_response(status: int, message: str, headers: dict[str, str] | None = None
                   ) -> web.Response:
    """``{"error": message}`` with ``status`` — every gateway-made error looks like this."""
    body = orjson.dumps({"error": message})
    return web.Response(body=body, status=status, content_type="application/json",
                        headers=headers)


def build_middlewares(config: GatewayConfig, metrics: Metrics,
                      trimmer: Trimmer | None = None) -> list[Middleware]:
    public = UNAUTHENTICATED_PATHS | ({config.health_route} if config.health_route else set())
    chain: list[Middleware] = [_observe(metrics, config.access_log, trimmer or Trimmer())]
    if config.cors_origins:
        chain.append(_cors(frozenset(config.cors_origins)))
    chain += [_compress(config.gzip_min_bytes), _errors]
    if config.tokens:
        chain.append(_auth([t.encode() for t in config.tokens], public))
    chain.append(_deadline(config))
    return chain


def _observe(metrics: Metrics, log_access: bool, trimmer: Trimmer) -> Middleware:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        metrics.in_flight.inc()
        trimmer.started()
        status, out_bytes = 500, 0
        try:
            response = await handler(request)
            status = response.status
            out_bytes = response.content_length or 0
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            metrics.in_flight.dec()
            elapsed = time.monotonic() - started
            route = request.get(ROUTE_KEY) or _resource_label(request)
            model = _model_label(request)
            in_bytes = request.get(BODY_BYTES_KEY, 0)
            metrics.observe_request(model=model, route=route, code=status, seconds=elapsed,
                                    in_bytes=in_bytes, out_bytes=out_bytes)
            trimmer.finished(in_bytes)  # after large bodies: give their memory back
            if log_access:
                _log_access(request, route, model, status, elapsed, in_bytes, out_bytes)

    return observe


def _resource_label(request: web.Request) -> str:
    """Route label for handlers that set none (docs pages): the matched path template."""
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "unmatched"
    return info.route.resource.canonical


def _model_label(request: web.Request) -> str:
    name = request.get(MODEL_KEY)
    if not name:
        return ""
    return name if request.app[SERVICE_KEY].is_known(name) else "_unknown"


def _log_access(request: web.Request, route: str, model: str, status: int, elapsed: float,
                in_bytes: int, out_bytes: int) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    record = {
        "remote": request.remote, "method": request.method, "path": request.path,
        "route": route, "model": model, "status": status,
        "ms": round(elapsed * 1000, 3), "in": in_bytes, "out": out_bytes,
    }
    access_log.info(orjson.dumps(record).decode())


def _cors(origins: frozenset[str]) -> Middleware:
    any_origin = "*" in origins

    def allowed(origin: str | None) -> bool:
        return bool(origin) and (any_origin or origin in origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        preflight = (request.method == "OPTIONS"
                     and "Access-Control-Request-Method" in request.headers)
        if preflight:
            request[ROUTE_KEY] = "preflight"
            if not allowed(origin):
                return error_response(403, f"CORS origin {origin!r} is not allowed")
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
            response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        if allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
            response.headers.add("Vary", "Origin")
        return response

    return cors


def _accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and float(q[2:] or 0) == 0)
    return False


def _compress(min_bytes: int) -> Middleware:
    @web.middleware
    async def compress(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        body = getattr(response, "body", None)
        if (
            isinstance(response, web.Response)
            and isinstance(body, bytes)
            and len(body) >= min_bytes
            and "Content-Encoding" not in response.headers
            and _accepts_gzip(request.headers.get("Accept-Encoding", ""))
        ):
            deflater = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            response.body = deflater.compress(body) + deflater.flush()
            response.headers["Content-Encoding"] = "gzip"
            response.headers.add("Vary", "Accept-Encoding")
        return response

    return compress


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place errors become ``{"error": ...}`` responses."""
    try:
        return await handler(request)
    except GatewayError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.code == Code.UNAUTHENTICATED else None
        return error_response(exc.http_status, exc.message, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "WWW-Authenticate")}
        message = _http_message(request, exc)
        return error_response(exc.status, message, headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal error")


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no route for {request.method} {request.path}"
    if exc.status == 405:
        return f"method {request.method} not allowed for {request.path}"
    if exc.status == 413:
        return "request body too large"
    return exc.reason


def _auth(tokens: list[bytes], public: frozenset[str] | set[str]) -> Middleware:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in public:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
        given = token.strip().encode()
        matched = False
        for expected in tokens:  # compare against every token: no early exit
            matched |= hmac.compare_digest(given, expected)
        if not matched:
            raise PermissionDenied("invalid bearer token")
        return await handler(request)

    return auth


def _request_timeout(request: web.Request, config: GatewayConfig) -> float:
    raw = request.headers.get("Request-Timeout") or request.headers.get("grpc-timeout")
    if not raw:
        return config.request_timeout
    try:
        value = parse_duration(raw)
    except ValueError:
        raise InvalidInput(
            f"invalid Request-Timeout {raw!r}: use seconds (2.5) or grpc-timeout form (500m)"
        ) from None
    return min(value, config.max_request_timeout)


def _deadline(config: GatewayConfig) -> Middleware:
    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        seconds = _request_timeout(request, config)
        request[DEADLINE_KEY] = time.monotonic() + seconds
        try:
            async with asyncio.timeout(seconds):
                return await handler(request)
        except TimeoutError:
            raise DeadlineExceeded(
                f"request did not complete within its {seconds:g}s deadline"
            ) from None

    return deadline

