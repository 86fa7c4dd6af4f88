"""Closed-loop load generator, run in its own process (never on a server's event loop).

:func:`run_cell` drives ``concurrency`` asyncio workers that each send predict requests
back to back, over HTTP (aiohttp, TF Serving REST ``{"instances": ...}``) or gRPC (the
official ``tensorflow_serving.apis`` stub), for a bounded time and count. It measures only
after a warm-up, and reads the CPU time of the given server processes at the edges of the
measured window (:func:`proc_cpu_seconds`, the same reading for every gateway and the
backend), so CPU per request excludes warm-up.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import resource
import time
from typing import Any

import numpy as np

__all__ = ["instances", "proc_cpu_seconds", "request_body", "run_cell"]

FEATURES = 784
TIMEOUT_S = 60.0
MAX_MESSAGE = 256 * 1024 * 1024
_TICK = os.sysconf("SC_CLK_TCK")


def instances(batch: int, seed: int = 0) -> np.ndarray:
    """MNIST-like rows: 784 pixel intensities in [0, 1], four decimals (≈6 KB of JSON)."""
    rng = np.random.default_rng(seed)
    return np.round(rng.random((batch, FEATURES)), 4).astype(np.float32)


@functools.lru_cache(maxsize=16)
def request_body(batch: int) -> bytes:
    """The REST body every HTTP client sends: ``{"instances": [[784 floats], ...]}``."""
    rows = np.round(instances(batch).astype(np.float64), 4).tolist()
    return json.dumps({"instances": rows}, separators=(",", ":")).encode()


@functools.lru_cache(maxsize=16)
def _grpc_request(batch: int, model: str) -> Any:
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    tensor = request.inputs["image"]
    tensor.dtype = 1  # DT_FLOAT
    tensor.tensor_shape.dim.add().size = batch
    tensor.tensor_shape.dim.add().size = FEATURES
    tensor.tensor_content = instances(batch).astype("<f4").tobytes()
    return request


def proc_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far.

    Read the same way for every server process: from its Linux process CPU clock
    (nanosecond resolution), else from ``utime + stime`` in ``/proc/<pid>/stat`` (clock
    ticks, usually 10 ms). Children's time is not included; no server forks.
    """
    try:
        return time.clock_gettime(_process_clock(pid))
    except OSError:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK


def _process_clock(pid: int) -> int:
    """Linux's CPU clock id of process ``pid`` (``clock_getcpuclockid``; CPUCLOCK_SCHED)."""
    return ((~pid) << 3) | 2


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error = ""
        self.recording = False

    def record(self, seconds: float, error: str | None) -> None:
        if not self.recording:
            return
        if error is None:
            self.latencies.append(seconds)
        else:
            self.errors += 1
            self.first_error = self.first_error or error


async def _http_sender(spec: dict[str, Any]) -> tuple[Any, Any]:
    import aiohttp

    body = request_body(spec["batch"])
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=spec["concurrency"], force_close=False),
        timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
    )
    headers = {"Content-Type": "application/json"}

    async def send() -> str | None:
        async with session.post(spec["url"], data=body, headers=headers) as response:
            payload = await response.read()
            if response.status != 200:
                return f"HTTP {response.status}: {payload[:200]!r}"
        return None

    return send, session.close


async def _grpc_sender(spec: dict[str, Any]) -> tuple[Any, Any]:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.aio.insecure_channel(
        spec["target"],
        options=[("grpc.max_send_message_length", MAX_MESSAGE),
                 ("grpc.max_receive_message_length", MAX_MESSAGE)],
    )
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = _grpc_request(spec["batch"], spec["model"])

    async def send() -> str | None:
        try:
            await stub.Predict(request, timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            return f"gRPC {exc.code().name}: {exc.details()}"
        return None

    return send, channel.close


async def _worker(send: Any, stats: _Stats, stop_at: float, budget: list[int]) -> None:
    while time.monotonic() < stop_at and budget[0] > 0:
        if stats.recording:
            budget[0] -= 1
        started = time.perf_counter()
        try:
            error = await send()
        except Exception as exc:  # connection errors count, they don't stop the run
            error = f"{type(exc).__name__}: {exc}"
        stats.record(time.perf_counter() - started, error)


async def _run(spec: dict[str, Any]) -> dict[str, Any]:
    make = _grpc_sender if spec["kind"] == "grpc" else _http_sender
    send, close = await make(spec)
    stats = _Stats()
    pids: dict[str, int] = spec.get("pids", {})
    try:
        start = time.monotonic()
        stop_at = start + spec["warmup"] + spec["duration"]
        budget = [spec["max_requests"]]
        workers = [asyncio.ensure_future(_worker(send, stats, stop_at, budget))
                   for _ in range(spec["concurrency"])]
        await asyncio.sleep(spec["warmup"])
        cpu_before = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
        client_before, measured_from = _self_cpu(), time.perf_counter()
        stats.recording = True
        await asyncio.gather(*workers)
        elapsed = time.perf_counter() - measured_from
        cpu = {name: proc_cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        cpu["client"] = _self_cpu() - client_before
    finally:
        await close()
    return {"latencies": stats.latencies, "errors": stats.errors,
            "first_error": stats.first_error, "elapsed": elapsed, "cpu": cpu}


def run_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement; ``spec`` keys: kind (``http``/``grpc``), url or target (+model),
    batch, concurrency, warmup, duration (seconds), max_requests, pids (name → pid)."""
    return asyncio.run(_run(spec))
