"""Run the gateway's aiohttp application on a socket, with a graceful stop.

aiohttp answers requests it cannot parse (bad request lines, oversized headers) itself,
in text/plain, before any middleware runs. It has no public hook for that answer, so this
module — and only this module — reaches into ``AppRunner._make_server`` and
``web.Server``'s ``_loop``/``_kwargs`` to make those answers ``{"error": ...}`` JSON too.
``tests/http/test_server.py`` pins the aiohttp versions this was checked on.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web, web_protocol

from gateway.config import GatewayConfig, display_host
from gateway.http.app import create_app
from gateway.service import Service

__all__ = ["AIOHTTP_CHECKED", "GatewayServer"]

AIOHTTP_CHECKED = ("3.10", "3.14")
"""Oldest and newest aiohttp minor versions the private hook below was checked on."""


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
        return f"http://{display_host(self.config.host)}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, then close the backend channel."""
        await self._runner.cleanup()
