"""What the tutorial and the floor gateways share: one predict route and one command line.

Both are standalone comparison servers (``benchmarks/naive_gateway.py``,
``benchmarks/floor_gateway.py``) that the harness starts as scripts.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

__all__ = ["MAX_MESSAGE", "parse_args", "predict_app"]

MAX_MESSAGE = 256 * 1024 * 1024
MAX_BODY = 64 * 1024 * 1024


def predict_app(predict: Callable[[web.Request], Awaitable[web.StreamResponse]],
                channel: Callable[[web.Application], AsyncIterator[None]]) -> web.Application:
    """``POST /v1/models/{name}:predict`` → ``predict``; ``channel`` opens/closes gRPC."""
    app = web.Application(client_max_size=MAX_BODY)
    app.cleanup_ctx.append(channel)
    app.router.add_post("/v1/models/{name}:predict", predict)
    return app


def parse_args(description: str, port: int, *, dtype: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backend", default="127.0.0.1:8500")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--input-name", default="image")
    if dtype:
        parser.add_argument("--dtype", default="float32",
                            help="numpy dtype of the input tensor (default float32)")
    return parser.parse_args()
