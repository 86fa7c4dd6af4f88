"""The HTTP edge, the only aiohttp user: app, routes, middlewares, docs and OpenAPI.

``create_app(config, service)`` builds the application; ``GatewayServer`` runs it.
"""

from __future__ import annotations

from gateway.http.app import create_app
from gateway.http.server import GatewayServer

__all__ = ["GatewayServer", "create_app"]
