"""Soak: a real gateway process under mixed valid/invalid load; RSS and fd figures.

:func:`run_load` drives ``connections`` keep-alive connections with a valid/invalid
request mix; :func:`soak` runs rounds of it and reads the gateway's RSS and open fds.

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
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import free_port, spawn, stop_processes, wait_ready

__all__ = ["Gateway", "LoadResult", "run_load", "soak"]


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (from /proc)."""
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _ready(url: str) -> bool:
    """``/readyz`` 200: the gateway listens, the backend answers, the model is AVAILABLE."""
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2.0) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class Gateway:
    """The ``tfgw gateway`` process under soak."""

    url: str
    process: subprocess.Popen[bytes]

    def rss(self) -> int:
        return rss_bytes(self.process.pid)

    def fds(self) -> int:
        return open_fds(self.process.pid)

    def alive(self) -> bool:
        return self.process.poll() is None


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


def soak(gateway: Gateway, model: str, *, requests: int, connections: int,
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
def _gateway(backend: str | None, model: str) -> Iterator[Gateway]:
    """``tfgw gateway`` (access log off) in front of ``backend``, or of its own
    ``tfgw modelserver`` serving a freshly built ``half_plus_two``; ready on /readyz."""
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="tfgw-soak-") as tmp:
        workdir = Path(tmp)
        try:
            if backend is None:
                base = workdir / model
                _build_half_plus_two(base / "1")
                port = free_port()
                processes.append(spawn(
                    ["-m", "gateway", "modelserver", "--host", "127.0.0.1", "--model-name",
                     model, "--model-base-path", str(base), "--port", str(port)],
                    workdir / "modelserver.log"))
                backend = f"127.0.0.1:{port}"
            port = free_port()
            gateway = spawn(["-m", "gateway", "gateway", "--backend", backend, "--host",
                             "127.0.0.1", "--port", str(port), "--model", model,
                             "--no-access-log"], workdir / "gateway.log")
            processes.append(gateway)
            url = f"http://127.0.0.1:{port}"
            wait_ready(gateway, lambda: _ready(url), workdir / "gateway.log", "gateway")
            yield Gateway(url, gateway)
        finally:
            stop_processes(processes)


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
        gateway = stack.enter_context(_gateway(args.backend, args.model))
        figures = soak(gateway, args.model, requests=requests,
                       connections=args.connections, rounds=args.rounds)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
