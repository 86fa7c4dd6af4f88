"""Build the aiohttp application: ``create_app(config, service)``.

It wires middlewares, routes and the docs pages; the service (and its gRPC channel) is
closed by the app's cleanup, after aiohttp has stopped accepting connections and drained
in-flight requests. ``gateway.http.server`` runs it on a socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gateway.config import GatewayConfig
from gateway.http.docs import docs_routes
from gateway.http.keys import CONFIG_KEY, METRICS_KEY, SERVICE_KEY
from gateway.http.memory import Trimmer
from gateway.http.middlewares import build_middlewares
from gateway.http.routes import api_routes
from gateway.service import Service

__all__ = ["HANDLER_ARGS", "create_app"]

HANDLER_ARGS: dict[str, Any] = {
    "handler_cancellation": True,  # client gone → handler (and its gRPC call) cancelled
    "auto_decompress": False,  # gzip bodies are inflated by gateway.http.body with a cap
}


def create_app(config: GatewayConfig, service: Service) -> web.Application:
    """The gateway's aiohttp application (routes, middlewares, docs, cleanup)."""
    trimmer = Trimmer()  # gives large requests' memory back to the OS after they finish
    app = web.Application(
        middlewares=build_middlewares(config, service.metrics, trimmer),
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
