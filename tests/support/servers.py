"""pytest plugin (``pytest_plugins = ["support.servers"]``): SavedModels and model servers.

Fixtures (session-scoped, built once):

- ``model_base``: a model base path holding ``mnist/1``, ``multi/1``, ``half_plus_two/1``
  (float32), ``half_plus_two_int/1`` (int32), ``classify_regress/1`` and ``slow/1``
  (sleeps ``SLOW_SECONDS``); see ``support.models`` for their signatures.
- ``models_config``: a ``models.config`` (ModelServerConfig text) serving all of them.
- ``modelserver_port``: a ``python -m gateway modelserver`` subprocess on that config,
  health SERVING for every model; yields its gRPC port on 127.0.0.1.
- ``inprocess_modelserver``: the same models served by an in-process ``ModelServer`` on a
  background thread (no second TensorFlow import); ``.port`` is its gRPC port.

Helpers: ``start_modelserver(args)`` (context manager → port) and
``modelserver_process(args)`` (→ ``(Popen, port)``) spawn the CLI on a free port, wait
(bounded) for health SERVING and stop it with SIGTERM, then SIGKILL;
``modelserver_in_thread(**options)`` runs a ``ModelServer`` in-process (→ ``ThreadedModelServer``);
``stop_process(process)`` stops any subprocess the same way (→ its exit status).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from support import models
from support.net import free_port
from support.paths import REPO_ROOT

__all__ = [
    "MODEL_NAMES",
    "SLOW_SECONDS",
    "ThreadedModelServer",
    "build_model_base",
    "health_status",
    "inprocess_modelserver",
    "model_base",
    "models_config",
    "modelserver_in_thread",
    "modelserver_port",
    "modelserver_process",
    "start_modelserver",
    "stop_process",
    "write_models_config",
]

SLOW_SECONDS = 2.0
MODEL_NAMES = (
    "mnist",
    "multi",
    "half_plus_two",
    "half_plus_two_int",
    "classify_regress",
    "slow",
)


def build_model_base(base: Path) -> Path:
    """Write every test model as version 1 under ``base``; returns ``base``."""
    models.build_mnist_model(base / "mnist" / "1")
    models.build_multi_io_model(base / "multi" / "1")
    models.build_half_plus_two(base / "half_plus_two" / "1", "float32")
    models.build_half_plus_two(base / "half_plus_two_int" / "1", "int32")
    models.build_classify_regress_model(base / "classify_regress" / "1")
    models.build_slow_model(base / "slow" / "1", SLOW_SECONDS)
    return base


def write_models_config(path: Path, base: Path, names: Sequence[str] = MODEL_NAMES) -> Path:
    """A ModelServerConfig text file serving ``names`` from ``base`` (latest policy)."""
    entries = "".join(
        f'  config {{ name: "{name}" base_path: "{base / name}" model_platform: "tensorflow" }}\n'
        for name in names
    )
    path.write_text("model_config_list {\n" + entries + "}\n")
    return path


@pytest.fixture(scope="session")
def model_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_base(tmp_path_factory.mktemp("model_base"))


@pytest.fixture(scope="session")
def models_config(model_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_models_config(tmp_path_factory.mktemp("config") / "models.config", model_base)


@pytest.fixture(scope="session")
def modelserver_port(models_config: Path) -> Iterator[int]:
    with start_modelserver(
        ["--model-config-file", str(models_config)], wait_models=MODEL_NAMES
    ) as port:
        yield port


def health_status(port: int, service: str = "", timeout: float = 2.0) -> str:
    """``SERVING``/``NOT_SERVING``/... from ``grpc.health.v1``; ``UNREACHABLE`` on error."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return "UNREACHABLE" if exc.code() == grpc.StatusCode.UNAVAILABLE else exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def _wait_serving(
    process: subprocess.Popen[bytes], port: int, names: Sequence[str], timeout: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    pending = ["", *names]
    while pending:
        if process.poll() is not None:
            raise RuntimeError(
                f"modelserver exited with {process.returncode}: {log.read_text()[-2000:]}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"modelserver not SERVING {pending} within {timeout}s")
        if health_status(port, pending[0]) == "SERVING":
            pending.pop(0)
        else:
            time.sleep(0.1)


def stop_process(process: subprocess.Popen[Any], grace: float = 15.0) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


@contextlib.contextmanager
def modelserver_process(
    args: Sequence[str],
    *,
    wait_models: Sequence[str] = (),
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run ``python -m gateway modelserver --host 127.0.0.1 ARGS --port P``; yield
    ``(process, port)``.

    Waits until health reports SERVING for ``""`` and every name in ``wait_models``
    (bounded by ``timeout``); on exit sends SIGTERM, then SIGKILL after 15 s.
    The process's stdout+stderr go to a temp file, whose path is ``process.log_path``.
    """
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    full_env.update(env or {})
    for attempt in range(1 if port else 3):  # a free port can be taken before we bind it
        chosen = port or free_port()
        process, log_path = _spawn(args, chosen, full_env)
        try:
            _wait_serving(process, chosen, wait_models, timeout, log_path)
        except RuntimeError:
            stop_process(process)
            raced = "cannot listen" in log_path.read_text()
            log_path.unlink(missing_ok=True)
            if raced and attempt < 2 and not port:
                continue
            raise
        except BaseException:
            stop_process(process)
            log_path.unlink(missing_ok=True)
            raise
        break
    try:
        yield process, chosen
    finally:
        stop_process(process)
        log_path.unlink(missing_ok=True)


def _spawn(
    args: Sequence[str], port: int, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], Path]:
    command = [
        *(sys.executable, "-m", "gateway", "modelserver", "--host", "127.0.0.1"),
        *args,
        *("--port", str(port)),
    ]
    with tempfile.NamedTemporaryFile(prefix="modelserver-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    process.log_path = log_path  # type: ignore[attr-defined]
    return process, log_path


@contextlib.contextmanager
def start_modelserver(
    args: Sequence[str],
    *,
    wait_models: Sequence[str] = (),
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
) -> Iterator[int]:
    """Like ``modelserver_process`` but yields only the gRPC port."""
    with modelserver_process(args, wait_models=wait_models, timeout=timeout, env=env) as (_, port):
        yield port


class ThreadedModelServer:
    """An in-process ``ModelServer`` on its own event loop thread (for sync test code).

    ``port`` is the bound gRPC port; ``call(coro_fn)`` runs ``coro_fn(server)`` on the
    server's loop and returns its result (bounded by ``timeout``).
    """

    def __init__(self, options: object) -> None:
        import asyncio
        import threading

        self.options = options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: object | None = None
        self.port = 0

    def call(self, coro_fn: object, timeout: float = 60.0) -> object:
        import asyncio

        future = asyncio.run_coroutine_threadsafe(coro_fn(self.server), self.loop)  # type: ignore[operator]
        return future.result(timeout)

    def start(self, *, wait: bool, timeout: float) -> None:
        from gateway.modelserver import ModelServer

        self.thread.start()
        self.server = ModelServer(self.options)  # type: ignore[arg-type]
        self.port = self.call(lambda s: s.start(), timeout)  # type: ignore[assignment]
        if wait:
            self.call(lambda s: s.wait_until_available(timeout), timeout + 5)

    def stop(self, grace: float = 2.0) -> None:
        try:
            if self.server is not None:
                self.call(lambda s: s.stop(grace), grace + 30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            if not self.thread.is_alive():
                self.loop.close()


@contextlib.contextmanager
def modelserver_in_thread(
    *, wait: bool = True, timeout: float = 60.0, **options: object
) -> Iterator[ThreadedModelServer]:
    """Run ``ModelServer(ModelServerOptions(host="127.0.0.1", port=0, **options))`` in a
    background thread; waits until every model is AVAILABLE unless ``wait=False``."""
    from gateway.modelserver import ModelServerOptions

    settings = {"host": "127.0.0.1", "port": 0, **options}
    threaded = ThreadedModelServer(ModelServerOptions(**settings))  # type: ignore[arg-type]
    try:
        threaded.start(wait=wait, timeout=timeout)
        yield threaded
    finally:
        threaded.stop()


@pytest.fixture(scope="session")
def inprocess_modelserver(models_config: Path) -> Iterator[ThreadedModelServer]:
    """The ``models_config`` models served in-process (thread); ``.port`` is the gRPC port."""
    with modelserver_in_thread(model_config_file=str(models_config)) as threaded:
        yield threaded
