"""``tfgw gateway --backend HOST:PORT``: the REST/JSON gateway in front of a gRPC backend.

TensorFlow-free: it imports only the codec, backend, service and HTTP modules. Runs until
SIGTERM/SIGINT, then stops accepting, drains in-flight requests and closes the channel.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.cli import UsageError
from gateway.config import GatewayConfig, add_arguments

if TYPE_CHECKING:
    from gateway.http import GatewayServer

T = TypeVar("T")

__all__ = ["StopSignals", "Stopped", "configure", "describe_urls", "run", "start_gateway"]


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if not args.backends and not os.environ.get("TFGW_BACKEND"):
        raise UsageError("--backend HOST:PORT is required (or set TFGW_BACKEND)")
    try:
        config = GatewayConfig.from_args(args)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    from gateway.http.memory import limit_arenas

    limit_arenas()  # before gRPC starts its threads: flatter RSS (gateway.http.memory)
    try:
        return asyncio.run(_main(config))
    except OSError as exc:
        sys.stderr.write(f"tfgw gateway: error: cannot listen on {config.host}:{config.port}: "
                         f"{exc.strerror or exc}\n")
        return 1


async def _main(config: GatewayConfig) -> int:
    with StopSignals() as signals:
        server = await start_gateway(config)
        print(f"tfgw gateway: backend {', '.join(config.backends)}", flush=True)
        print(describe_urls(server.url, config.known_models()), flush=True)
        try:
            await signals.wait()
        finally:
            await server.stop()
    print("tfgw gateway: stopped", flush=True)
    return 0


async def start_gateway(config: GatewayConfig) -> GatewayServer:
    """Build backend → service → app and listen; returns the running ``GatewayServer``."""
    from gateway.backend import Backend, BackendOptions
    from gateway.http import GatewayServer
    from gateway.service import Service

    options = BackendOptions(
        max_message_bytes=config.max_message_bytes,
        tls=config.backend_tls,
        ca_file=config.backend_ca_file,
        cert_file=config.backend_cert_file,
        key_file=config.backend_key_file,
        server_name=config.backend_server_name,
    )
    server = GatewayServer(config, Service(Backend(config.backends, options), config))
    await server.start()
    return server


def describe_urls(base: str, models: Sequence[str]) -> str:
    """The lines every long-running command prints: where to look and what to call."""
    lines = [
        f"  REST     {base}",
        f"  docs     {base}/docs",
        f"  metrics  {base}/metrics   health {base}/healthz   ready {base}/readyz",
    ]
    for name in models:
        lines.append(f"  predict  POST {base}/v1/models/{name}:predict")
    return "\n".join(lines)


class Stopped(Exception):
    """A stop signal arrived while :meth:`StopSignals.guard` was waiting."""


class StopSignals:
    """SIGTERM/SIGINT set an event while the context is open (so start-up can be cut short).

    ``await guard(coro)`` runs ``coro`` but cancels it and raises :class:`Stopped` if a
    signal comes first; ``await wait()`` blocks until a signal.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __enter__(self) -> StopSignals:
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            self._loop.add_signal_handler(sig, self._event.set)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig in self.SIGNALS:
            self._loop.remove_signal_handler(sig)
        sys.stdout.flush()

    async def wait(self) -> None:
        await self._event.wait()

    async def guard(self, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.ensure_future(coro)
        stop = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise Stopped
        return task.result()
