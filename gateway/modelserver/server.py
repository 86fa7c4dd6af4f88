"""``ModelServer``: the embedded TF-Serving-compatible gRPC server, usable in-process.

``start()`` imports TensorFlow off the event loop, binds the grpc.aio server (raised
message limits, health, reflection, PredictionService, ModelService), then loads the
configured models in the background and polls their base paths. ``stop()`` flips health
to NOT_SERVING, refuses new calls and drains in-flight ones for ``grace`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from gateway.errors import Code, GatewayError
from gateway.modelserver.loader import configure_tensorflow
from gateway.modelserver.manager import ModelManager
from gateway.modelserver.options import ModelServerOptions, build_server_config

__all__ = ["ModelServer"]

log = logging.getLogger(__name__)


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


class ModelServer:
    """Serve the models of ``options`` over gRPC until ``stop()``."""

    def __init__(self, options: ModelServerOptions) -> None:
        self.options = options
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None
        self._manager: ModelManager | None = None
        self._health: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._config_lock = asyncio.Lock()
        self._health_lock = asyncio.Lock()
        self._health_names: set[str] = set()
        self._stopping = False
        self._initial_load: asyncio.Task[None] | None = None
        self._load_executor: ThreadPoolExecutor | None = None
        self._predict_executor: ThreadPoolExecutor | None = None

    async def start(self) -> int:
        """Bind and start serving; models load in the background. Returns the bound port."""
        loop = asyncio.get_running_loop()
        opts = self.options
        await loop.run_in_executor(
            None, configure_tensorflow, opts.tf_intra_op_threads, opts.tf_inter_op_threads
        )
        config = await loop.run_in_executor(None, build_server_config, opts)
        self._load_executor = ThreadPoolExecutor(opts.load_workers, "tfgw-load")
        self._predict_executor = ThreadPoolExecutor(opts.predict_workers, "tfgw-predict")
        self._manager = ModelManager(self._load_executor, self._health_changed)
        self._server = self._build_server()
        await self._push_health()
        try:
            self.port = self._server.add_insecure_port(f"{opts.host}:{opts.port}")
        except RuntimeError as exc:
            await self.stop(0)
            raise GatewayError(
                f"cannot listen on {opts.host}:{opts.port}: {exc}", Code.UNAVAILABLE
            ) from None
        await self._server.start()
        self._initial_load = self._spawn(self._run(config))
        if opts.model_config_file and opts.model_config_file_poll_wait_seconds > 0:
            self._spawn(self._watch_config_file(opts.model_config_file))
        log.info("model server listening on %s:%d", opts.host, self.port)
        return self.port

    def _build_server(self) -> grpc.aio.Server:
        from grpc_health.v1 import health, health_pb2_grpc
        from grpc_reflection.v1alpha import reflection
        from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2
        from tensorflow_serving.apis import model_service_pb2_grpc as model_grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc as predict_grpc

        from gateway.modelserver.servicers import ModelServicer, PredictionServicer

        limit = self.options.max_message_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
                ("grpc.so_reuseport", 0),  # a port in use is an error, not a shared port
            ]
        )
        assert self._manager is not None and self._predict_executor is not None
        predict_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self._manager, self._predict_executor), server
        )
        model_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(self._manager, self.reload_config), server
        )
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        # the *_pb2 imports register the service descriptors reflection serves
        names = [
            prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name,
            model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        ]
        reflection.enable_server_reflection(names, server)
        return server

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, config: Any) -> None:
        """Initial load, then poll the base paths every ``file_system_poll_wait_seconds``."""
        assert self._manager is not None
        try:
            await self.reload_config(config)
        except GatewayError as exc:
            log.error("%s", exc.message)
        except Exception:
            log.exception("loading the configured models failed")
        interval = self.options.file_system_poll_wait_seconds
        while interval > 0:
            await asyncio.sleep(interval)
            try:
                await self._manager.reconcile_all()
            except Exception:
                log.exception("polling the model base paths failed")

    async def _watch_config_file(self, path: str) -> None:
        """Re-apply ``path`` whenever its content changes (TF Serving's config polling)."""
        loop = asyncio.get_running_loop()
        last = await loop.run_in_executor(None, _read_bytes, path)
        while True:
            await asyncio.sleep(self.options.model_config_file_poll_wait_seconds)
            current = await loop.run_in_executor(None, _read_bytes, path)
            if current is None or current == last:
                continue
            last = current
            try:
                config = await loop.run_in_executor(None, build_server_config, self.options)
                await self.reload_config(config)
                log.info("reloaded model config file %s", path)
            except GatewayError as exc:
                log.error("model config file %s: %s", path, exc.message)

    async def reload_config(self, config: Any) -> None:
        """Apply a new ModelServerConfig; error if a configured model has no AVAILABLE version."""
        assert self._manager is not None
        async with self._config_lock:
            await self._manager.apply_config(config)
        missing = [n for n in self._manager.model_names if not self._manager.is_available(n)]
        if missing:
            raise GatewayError(
                f"Some models did not become available: {{{', '.join(missing)}}}", Code.UNKNOWN
            )

    def _health_changed(self) -> None:
        if not self._stopping:
            self._spawn(self._push_health())

    async def _push_health(self) -> None:
        from grpc_health.v1 import health_pb2

        if self._manager is None or self._health is None:
            return
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        async with self._health_lock:
            names = self._manager.model_names
            for name in names:
                available = self._manager.is_available(name)
                await self._health.set(name, serving if available else not_serving)
            for stale in self._health_names - set(names):
                await self._health.set(stale, not_serving)
            self._health_names |= set(names)
            overall = serving if self._manager.all_available() else not_serving
            await self._health.set("", overall)

    async def wait_until_available(self, timeout: float) -> None:
        """Wait until every configured model has an AVAILABLE version.

        Raises ``GatewayError`` as soon as loading has settled with a model whose versions
        all failed (its load error), ``TimeoutError`` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while self._manager is None or not self._manager.all_available():
            if self._manager is not None and self._initial_load is not None:
                self._raise_if_failed()
            if time.monotonic() > deadline:
                raise TimeoutError(f"models not available within {timeout}s: {self.status()}")
            await asyncio.sleep(0.05)

    def _raise_if_failed(self) -> None:
        assert self._manager is not None
        if not self._manager.settled() or not self._manager.model_names:
            return
        for name, rows in self._manager.snapshot().items():
            errors = [row["error"] for row in rows if row["error"]]
            if errors and not self._manager.is_available(name):
                raise GatewayError(f"model {name!r} failed to load: {errors[0]}")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting calls, drain in-flight ones for up to ``grace`` s, unload models."""
        self._stopping = True
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        if self._server is not None:
            await self._server.stop(grace)
        if self._manager is not None:
            await self._manager.close()
        for executor in (self._predict_executor, self._load_executor):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    def status(self) -> dict[str, Any]:
        """Bound address and every model's version states (for logs and ``tfgw serve``)."""
        models = self._manager.snapshot() if self._manager else {}
        return {"host": self.options.host, "port": self.port, "models": models}
