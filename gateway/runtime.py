"""Processes: start a gateway, an embedded or docker backend, or both; stop them on a signal.

Every command, the demo, the examples, the tests and the benchmarks start servers through
this module, so a gateway is always wired the same way (backend options, TLS, message
limits, batching) and SIGTERM/SIGINT always drain it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.config import GatewayConfig, display_host

if TYPE_CHECKING:
    from gateway.http import GatewayServer
    from gateway.modelserver import ModelServer, ModelServerOptions
    from gateway.service import BatcherFactory

__all__ = [
    "STOP_SIGNALS",
    "DockerBackend",
    "EmbeddedBackend",
    "LocalStack",
    "StopSignals",
    "Stopped",
    "describe_urls",
    "pick_port",
    "start_gateway",
    "wait_for_stop_signal",
]

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
READY_TIMEOUT = 300.0


def pick_port(host: str, requested: int | None, preferred: int) -> int:
    """``requested`` as given; else ``preferred`` if free on ``host``, else 0 (any)."""
    if requested is not None:
        return requested
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, preferred))
        except OSError:
            return 0
    return preferred


async def start_gateway(config: GatewayConfig, *,
                        batcher: BatcherFactory | None = None) -> GatewayServer:
    """Build backend → service → app from ``config`` and listen; returns the server."""
    from gateway.backend import Backend, BackendOptions
    from gateway.http import GatewayServer
    from gateway.service import Service

    backend = Backend(config.backends, BackendOptions.from_config(config))
    server = GatewayServer(config, Service(backend, config, batcher=batcher))
    await server.start()
    return server


def describe_urls(base: str, models: Sequence[str]) -> str:
    """The lines every long-running command prints: where to look and what to call."""
    lines = [
        f"  REST     {base}",
        f"  docs     {base}/docs",
        f"  metrics  {base}/metrics   health {base}/healthz   ready {base}/readyz",
    ]
    lines += [f"  predict  POST {base}/v1/models/{name}:predict" for name in models]
    return "\n".join(lines)


# -- signals ----------------------------------------------------------------------------
class Stopped(Exception):
    """A stop signal arrived while :meth:`StopSignals.guard` was waiting."""


class StopSignals:
    """SIGTERM/SIGINT set an event while the context is open (so start-up can be cut short).

    Use ``StopSignals.early()`` before ``asyncio.run`` to also remember a signal that
    arrives while the process is still starting (importing TensorFlow takes seconds).
    ``await guard(coro)`` runs ``coro`` but cancels it and raises :class:`Stopped` if a
    signal comes first; ``await wait()`` blocks until a signal.
    """

    _early_received = False

    @classmethod
    def early(cls) -> None:
        """Remember SIGTERM/SIGINT from now on, until a ``StopSignals`` context opens."""
        def remember(_signum: int, _frame: FrameType | None) -> None:
            cls._early_received = True

        for sig in STOP_SIGNALS:
            signal.signal(sig, remember)

    def __enter__(self) -> StopSignals:
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            self._loop.add_signal_handler(sig, self._event.set)
        if StopSignals._early_received:
            self._event.set()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig in STOP_SIGNALS:
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


def wait_for_stop_signal() -> None:
    """Block the main thread until SIGTERM or SIGINT (for code without an event loop)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- backends -----------------------------------------------------------------------------
class EmbeddedBackend:
    """``gateway.modelserver.ModelServer`` on this process's event loop."""

    def __init__(self, options: ModelServerOptions, ready_timeout: float = READY_TIMEOUT
                 ) -> None:
        self.options = options
        self.ready_timeout = ready_timeout
        self.server: ModelServer | None = None

    async def start(self) -> str:
        """Listen, wait until every model is AVAILABLE; the gRPC target to call."""
        from gateway.modelserver import ModelServer

        self.server = ModelServer(self.options)
        port = await self.server.start()
        await self.server.wait_until_available(self.ready_timeout)
        return f"{display_host(self.options.host)}:{port}"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


class DockerBackend:
    """The official ``tensorflow/serving`` container (``gateway.docker_backend``) for a
    container spec, started and stopped off the event loop."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.container: Any = None

    async def start(self) -> str:
        """Run the container, wait until its models are AVAILABLE; the gRPC target."""
        from gateway import docker_backend

        self.container = docker_backend.DockerTFServing(self.spec)
        try:
            await asyncio.to_thread(self.container.start)
            await asyncio.to_thread(self.container.wait_healthy)
        except BaseException:
            await self.stop()
            raise
        return str(self.container.target)

    async def stop(self) -> None:
        if self.container is not None:
            await asyncio.to_thread(self.container.stop)


class LocalStack:
    """The embedded model server and a gateway for one model, on a background event-loop
    thread (for the demo, the examples and notebooks).

    Use as a context manager: on entry both are listening and the model is AVAILABLE
    (``rest_url``/``grpc_target`` say where); on exit the gateway drains and both stop.
    """

    def __init__(self, base_path: str | Path, model_name: str, *, host: str = "127.0.0.1",
                 port: int = 0, grpc_port: int = 0, ready_timeout: float = 120.0) -> None:
        self.base_path = Path(base_path).resolve()
        self.model_name = model_name
        self.host, self.port, self.grpc_port = host, port, grpc_port
        self.ready_timeout = ready_timeout
        self.rest_url = ""
        self.grpc_target = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._backend: EmbeddedBackend | None = None
        self._gateway: GatewayServer | None = None

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tfgw-local-stack", daemon=True
        )
        self._thread.start()
        try:
            self._run(self._start(), self.ready_timeout + 30)
        except BaseException:
            self.stop()
            raise

    async def _start(self) -> None:
        from gateway.modelserver import ModelServerOptions

        options = ModelServerOptions(
            model_name=self.model_name, model_base_path=str(self.base_path),
            host=self.host, port=self.grpc_port,
        )
        self._backend = EmbeddedBackend(options, self.ready_timeout)
        self.grpc_target = await self._backend.start()
        config = GatewayConfig(
            backends=(self.grpc_target,), host=self.host, port=self.port,
            models=(self.model_name,), default_model=self.model_name, access_log=False,
        )
        self._gateway = await start_gateway(config)
        self.rest_url = self._gateway.url

    async def _stop(self) -> None:
        try:
            if self._gateway is not None:
                await self._gateway.stop()
        finally:
            if self._backend is not None:
                await self._backend.stop()

    def stop(self) -> None:
        if self._loop is None:
            return
        loop, thread = self._loop, self._thread
        try:
            if loop.is_running():
                self._run(self._stop(), 60)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(timeout=30)
            if not loop.is_running():
                loop.close()
            self._loop = self._thread = None
