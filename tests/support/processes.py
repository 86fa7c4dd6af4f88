"""Processes the end-to-end suites run: ``tfgw gateway``/``tfgw modelserver`` subprocesses
with their RSS and open fds, and raw HTTP for requests no client library would send.

:class:`GatewayProcess` runs ``tfgw gateway`` on a free loopback port and is ready once
``/healthz`` answers; :class:`ModelServerProcess` runs ``tfgw modelserver`` and is ready
once gRPC health says SERVING; :func:`raw_http` sends exact bytes (malformed requests
included) and parses the one answer; :func:`http_json` is a normal urllib request whose
error statuses are answers, not exceptions.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.net import free_port
from support.paths import REPO_ROOT

__all__ = [
    "GatewayProcess",
    "HttpAnswer",
    "ModelServerProcess",
    "build_request",
    "http_json",
    "raw_http",
]


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TFGW_", "AIP_"))}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
                "PYTHONPATH": str(REPO_ROOT)})
    env.update(extra or {})
    return env


# --- raw HTTP ---------------------------------------------------------------------------


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def build_request(method: str, path: str | bytes, *, body: bytes = b"",
                  headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
                  content_length: bool = True) -> bytes:
    """Exact request bytes (``Connection: close``; ``Content-Length`` unless in headers)."""
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    names = {k.lower() for k, _ in items}
    raw_path = path if isinstance(path, bytes) else path.encode("latin-1")
    lines = [method.encode("latin-1") + b" " + raw_path + b" HTTP/1.1", b"Host: 127.0.0.1"]
    if "connection" not in names:
        lines.append(b"Connection: close")
    if content_length and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines += [k.encode("latin-1") + b": " + v.encode("latin-1") for k, v in items]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def raw_http(port: int, request: bytes, timeout: float = 30.0) -> HttpAnswer:
    """Send ``request`` to 127.0.0.1:``port`` and read one response (bounded by timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        return HttpAnswer(response.status, dict(response.getheaders()), body)


def http_json(url: str, body: Any = None, *, method: str | None = None,
              headers: Mapping[str, str] | None = None, timeout: float = 30.0) -> HttpAnswer:
    """A normal request with urllib (JSON body if given); errors are answers, not raises."""
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpAnswer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return HttpAnswer(exc.code, dict(exc.headers), exc.read())


# --- processes --------------------------------------------------------------------------


class _Process:
    """A ``python -m gateway ...`` subprocess with its output in a temp file."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.args = [sys.executable, "-m", "gateway", *args]
        self.env = _env(env)
        self.process: subprocess.Popen[bytes] | None = None
        handle, name = tempfile.mkstemp(prefix="tfgw-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)

    def launch(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.args, cwd=REPO_ROOT, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss(self) -> int:
        """Resident set size in bytes (from /proc)."""
        with open(f"/proc/{self.pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait (SIGKILL after ``timeout``); returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def close(self) -> None:
        if self.process is not None:
            self.stop(signal.SIGTERM, 15.0)
        self.log_path.unlink(missing_ok=True)

    def __exit__(self, *exc: object) -> None:
        self.close()


class GatewayProcess(_Process):
    """``tfgw gateway --backend B --model M...`` on 127.0.0.1:free port, ready on /healthz."""

    def __init__(self, backend: str, models: Sequence[str] = (), *,
                 default_model: str | None = None, args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        argv = ["gateway", "--backend", backend, "--host", "127.0.0.1", "--port", str(self.port)]
        for name in models:
            argv += ["--model", name]
        if default_model:
            argv += ["--default-model", default_model]
        super().__init__([*argv, *args], env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            return http_json(self.url + "/healthz", timeout=2.0).status == 200
        except OSError:
            return False

    def __enter__(self) -> GatewayProcess:
        self.launch()
        try:
            _wait(lambda: self.healthy(), self, 60.0)
        except BaseException:
            self.close()
            raise
        return self


class ModelServerProcess(_Process):
    """``tfgw modelserver ARGS --port P`` on 127.0.0.1, ready when gRPC health SERVING."""

    def __init__(self, args: Sequence[str], *, port: int | None = None,
                 env: Mapping[str, str] | None = None, wait_ready: bool = True) -> None:
        self.port = port or free_port()
        self.wait_ready = wait_ready
        super().__init__(["modelserver", "--host", "127.0.0.1", *args, "--port", str(self.port)],
                         env)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def serving(self) -> bool:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(self.target) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1.0)
            except grpc.RpcError:
                return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def __enter__(self) -> ModelServerProcess:
        self.launch()
        try:
            if self.wait_ready:
                _wait(self.serving, self, 180.0)
        except BaseException:
            self.close()
            raise
        return self


def _wait(ready: Any, proc: _Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if not proc.alive():
            raise RuntimeError(f"{proc.args[3]} exited: {proc.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc.args[3]} not ready in {timeout}s: {proc.log()[-3000:]}")
        time.sleep(0.05)
