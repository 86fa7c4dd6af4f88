"""Soak: a real gateway process under mixed valid/invalid load; RSS and fd figures.

Also the process harness the reliability tests share (``tests/test_reliability_*.py``,
``tests/test_security*.py``, ``tests/test_fuzz*.py``): :class:`GatewayProcess` runs
``tfgw gateway`` as a subprocess and reports its RSS and open fds; :func:`raw_http` sends
exact bytes (malformed requests included) and parses the answer; :func:`run_load` drives
``connections`` keep-alive connections with a valid/invalid request mix.

    python benchmarks/soak.py                  # 200 000 requests, 256 connections
    python benchmarks/soak.py --smoke          # 10 000 requests (run by the test suite)
    python benchmarks/soak.py --backend 127.0.0.1:8500 --model half_plus_two --smoke

Without ``--backend`` it builds a ``half_plus_two`` SavedModel (TensorFlow) and starts
``tfgw modelserver`` itself. Prints one JSON object (the figures) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

__all__ = [
    "GatewayProcess",
    "HttpAnswer",
    "LoadResult",
    "ModelServerProcess",
    "build_request",
    "free_port",
    "http_json",
    "raw_http",
    "run_load",
    "soak",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


# --- load -------------------------------------------------------------------------------


@dataclass
class LoadResult:
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    seconds: float = 0.0
    max_latency: float = 0.0


def mixed_requests(model: str, rng: random.Random) -> tuple[str, str, bytes, int]:
    """One (method, path, body, expected status) of the soak mix (about 60 % valid)."""
    x = [round(rng.uniform(-100, 100), 3) for _ in range(rng.randint(1, 8))]
    choices = [
        ("POST", f"/v1/models/{model}:predict", json.dumps({"instances": x}).encode(), 200),
        ("POST", f"/v1/models/{model}:predict", json.dumps({"inputs": {"x": x}}).encode(), 200),
        ("POST", f"/v1/projects/p/models/{model}:predict",
         json.dumps({"instances": [{"x": v} for v in x]}).encode(), 200),
        ("GET", f"/v1/models/{model}", b"", 200),
        ("POST", f"/v1/models/{model}:predict", b'{"instances": [1, [2]]}', 400),
        ("POST", f"/v1/models/{model}:predict", b'{"instances": ["a"]}', 400),
        ("POST", f"/v1/models/{model}:predict", b'{"instances": [1,', 400),
        ("POST", "/v1/models/no_such_model:predict", b'{"instances": [1]}', 404),
        ("GET", f"/v1/models/{model}:predict", b"", 405),
        ("POST", f"/v1/models/{model}/labels/..:predict", b'{"instances": [1]}', 400),
    ]
    weights = [3, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    return rng.choices(choices, weights)[0]


async def run_load(url: str, model: str, *, requests: int | None = None,
                   seconds: float | None = None, connections: int = 256,
                   seed: int = 0, timeout: float = 60.0) -> LoadResult:
    """``connections`` workers on their own keep-alive connection until ``requests`` were
    sent or ``seconds`` passed (at least one bound is required)."""
    import aiohttp

    assert requests is not None or seconds is not None
    result = LoadResult()
    rng = random.Random(seed)
    started = time.monotonic()
    stop_at = started + seconds if seconds is not None else float("inf")

    def more() -> bool:
        return (requests is None or result.sent < requests) and time.monotonic() < stop_at

    async def worker(session: aiohttp.ClientSession) -> None:
        while more():
            result.sent += 1
            method, path, body, expected = mixed_requests(model, rng)
            begun = time.monotonic()
            try:
                async with session.request(method, url + path, data=body or None,
                                           headers={"Content-Type": "application/json"}) as r:
                    payload = await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.errors[type(exc).__name__] += 1
                continue
            result.max_latency = max(result.max_latency, time.monotonic() - begun)
            result.statuses[status] += 1
            if status != expected and len(result.unexpected) < 20:
                result.unexpected.append(f"{method} {path} → {status} {payload[:200]!r}")

    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    result.seconds = time.monotonic() - started
    return result


# --- soak -------------------------------------------------------------------------------


def soak(gateway: GatewayProcess, model: str, *, requests: int, connections: int,
         rounds: int = 2) -> dict[str, Any]:
    """Warm up, then ``rounds`` × ``requests``; RSS and fds before/after each round."""
    asyncio.run(run_load(gateway.url, model, requests=min(2000, requests),
                         connections=connections, seed=99))
    time.sleep(0.5)
    figures: dict[str, Any] = {
        "requests_per_round": requests, "connections": connections,
        "rss_baseline": gateway.rss(), "fds_baseline": gateway.fds(), "rounds": [],
    }
    for index in range(rounds):
        load = asyncio.run(run_load(gateway.url, model, requests=requests,
                                    connections=connections, seed=index))
        time.sleep(0.5)  # let closed connections' fds go
        figures["rounds"].append({
            "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
            "client_errors": dict(load.errors), "unexpected": load.unexpected,
            "seconds": round(load.seconds, 2), "rps": round(load.sent / load.seconds, 1),
            "max_latency_s": round(load.max_latency, 3),
            "rss": gateway.rss(), "fds": gateway.fds(),
        })
    last = figures["rounds"][-1]
    figures["rss_growth"] = last["rss"] - figures["rss_baseline"]
    figures["rss_growth_last_round"] = (
        last["rss"] - figures["rounds"][-2]["rss"] if rounds > 1 else figures["rss_growth"])
    figures["fds_after"] = last["fds"]
    figures["gateway_alive"] = gateway.alive()
    return figures


def _build_half_plus_two(target: Path) -> None:
    import tensorflow as tf

    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(x: Any) -> dict[str, Any]:
        return {"y": x / 2.0 + 2.0}

    module.serve = serve
    tf.saved_model.save(module, str(target), signatures={"serving_default": serve})


@contextlib.contextmanager
def _own_backend() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="tfgw-soak-") as tmp:
        base = Path(tmp) / "half_plus_two"
        _build_half_plus_two(base / "1")
        server = ModelServerProcess(["--model-name", "half_plus_two",
                                     "--model-base-path", str(base)])
        with server:
            yield server.target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="10 000 requests per round")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backend", default=None, help="existing backend HOST:PORT")
    parser.add_argument("--model", default="half_plus_two")
    args = parser.parse_args(argv)
    requests = args.requests or (5_000 if args.smoke else 100_000)
    with contextlib.ExitStack() as stack:
        target = args.backend or stack.enter_context(_own_backend())
        gateway = stack.enter_context(
            GatewayProcess(target, [args.model], env={"TFGW_ACCESS_LOG": "0"}))
        figures = soak(gateway, args.model, requests=requests,
                       connections=args.connections, rounds=args.rounds)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
