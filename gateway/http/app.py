"""Build the aiohttp application and run it on a socket with a graceful stop.

``create_app(config, service)`` wires middlewares, routes and the docs pages; the service
(and its gRPC channel) is closed by the app's cleanup, after aiohttp has stopped accepting
connections and drained in-flight requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web, web_protocol

from gateway.config import GatewayConfig
from gateway.docs import docs_routes
from gateway.http.keys import CONFIG_KEY, METRICS_KEY, SERVICE_KEY
from gateway.http.memory import Trimmer
from gateway.http.middlewares import build_middlewares
from gateway.http.routes import api_routes
from gateway.service import Service

__all__ = ["HANDLER_ARGS", "GatewayServer", "create_app"]

HANDLER_ARGS: dict[str, Any] = {
    "handler_cancellation": True,  # client gone → handler (and its gRPC call) cancelled
    "auto_decompress": False,  # gzip bodies are inflated by gateway.http.body with a cap
}


def create_app(config: GatewayConfig, service: Service) -> web.Application:
    """The gateway's aiohttp application (routes, middlewares, docs, cleanup)."""
    trimmer = Trimmer()  # gives large requests' memory back to the OS after they finish
    app = web.Application(
        middlewares=build_middlewares(config, service.metrics, trimmer),  # type: ignore[arg-type]
        client_max_size=config.max_body_bytes,
        handler_args=HANDLER_ARGS,
    )
    app[CONFIG_KEY] = config
    app[SERVICE_KEY] = service
    app[METRICS_KEY] = service.metrics
    app.add_routes(api_routes(config))
    app.add_routes(_docs_routes(service))
    app.cleanup_ctx.append(_close_service)

    async def close_trimmer(_app: web.Application) -> None:
        trimmer.close()

    app.on_cleanup.append(close_trimmer)
    return app


async def _close_service(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[SERVICE_KEY].close()


def _docs_routes(service: Service) -> list[web.AbstractRouteDef]:
    """``/``, ``/docs``, ``/openapi.json`` and the offline Swagger UI assets."""
    return list(docs_routes(service.list_models, service.default_model))


class _JsonErrorHandler(web_protocol.RequestHandler):
    """aiohttp answers unparsable requests (bad headers, huge lines) itself, in text/plain;
    answer those with the gateway's ``{"error": ...}`` JSON too."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)
        text = (message or getattr(plain, "text", None) or "bad request").strip()
        body = orjson.dumps({"error": text.split("\n", 1)[0].rstrip(":") or "bad request"})
        response = web.Response(status=status, body=body, content_type="application/json")
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> web_protocol.RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # same state, JSON parse-error answers
        return server


class GatewayServer:
    """Run ``create_app`` on ``host:port`` (``port=0`` picks one); ``stop()`` drains."""

    def __init__(self, config: GatewayConfig, service: Service) -> None:
        self.config = config
        self.app = create_app(config, service)
        self._runner = _Runner(
            self.app, access_log=None, shutdown_timeout=config.shutdown_grace,
            handle_signals=False,
        )
        self.port: int | None = None

    async def start(self) -> int:
        """Listen; returns the bound port. ``OSError`` (port busy) after cleaning up."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port,
                           backlog=1024, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        self.port = self._runner.addresses[0][1]
        return self.port

    @property
    def url(self) -> str:
        host = self.config.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        return f"http://{shown}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, then close the backend channel."""
        await self._runner.cleanup()
