"""The HTTP edge (the only aiohttp user besides the docs pages): app, routes, middlewares.

Exports resolve lazily so ``gateway.http.keys`` can be imported (by ``gateway.docs``)
without pulling in the app, which itself mounts the docs routes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GatewayServer", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gateway.http import app

        return getattr(app, name)
    raise AttributeError(f"module 'gateway.http' has no attribute {name!r}")
