"""Predict throughput of ``tfgw modelserver`` with the official stub (not a test; prints a table).

    .venv/bin/python benchmarks/modelserver.py            # 8 s per batch size
    .venv/bin/python benchmarks/modelserver.py --smoke    # 1.5 s per batch size

Builds the MNIST-shaped Keras model (``image`` [-1, 784] → ``prediction`` [-1, 10],
``benchmarks/models.py``), starts ``python -m gateway modelserver`` as its own process,
and drives it with ``concurrency`` closed-loop grpc.aio workers using the official
``PredictionServiceStub`` at batch 1/32/256. Reports requests/s, rows/s, latency
percentiles and the server's CPU time per request (``psutil``), next to two references:
the gRPC-only floor (``Health/Check`` on the same server, row ``hc``) and the model's own
ceiling (the same signature called in-process by as many threads; no gRPC at all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODEL = "mnist"
MAX_MESSAGE = 256 * 1024 * 1024
START_TIMEOUT = 180.0


def start_server(base: Path, port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "gateway",
        "modelserver",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--model_name",
        MODEL,
        "--model_base_path",
        str(base / MODEL),
    ]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


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


def wait_serving(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while health_status(port, MODEL) != "SERVING":
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("model server did not become SERVING")
        time.sleep(0.1)


def predict_request(batch: int) -> Any:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    images = np.random.default_rng(batch).random((batch, 784), dtype=np.float32)
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(images))
    return request


async def drive(port: int, batch: int, concurrency: int, seconds: float) -> dict[str, float]:
    """Closed loop: ``concurrency`` workers send back to back for ``seconds`` (after warm-up).

    ``batch=0`` calls ``grpc.health.v1.Health/Check`` instead: the gRPC-only floor.
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    options = [
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.max_receive_message_length", MAX_MESSAGE),
    ]
    latencies: list[float] = []
    failures = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        if batch:
            call, request = (
                prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict,
                (predict_request(batch)),
            )
        else:
            call = health_pb2_grpc.HealthStub(channel).Check
            request = health_pb2.HealthCheckRequest(service=MODEL)
        for _ in range(5):
            await call(request, timeout=60)

        async def worker(stop_at: float) -> None:
            nonlocal failures
            for _ in range(1_000_000):
                if time.perf_counter() >= stop_at:
                    return
                started = time.perf_counter()
                try:
                    await call(request, timeout=60)
                except grpc.RpcError:
                    failures += 1
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "failures": failures,
        "elapsed": elapsed,
        "rps": len(latencies) / elapsed,
        "rows_per_s": len(latencies) * batch / elapsed,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


def model_ceiling(base: Path, batch: int, threads: int, seconds: float) -> float:
    """Signature calls/s in-process with ``threads`` threads (no gRPC, no protos)."""
    import tensorflow as tf

    function = tf.saved_model.load(str(base / MODEL / "1")).signatures["serving_default"]
    images = tf.constant(np.random.default_rng(0).random((batch, 784), dtype=np.float32))
    function(image=images)
    counts = [0] * threads
    stop_at = time.perf_counter() + seconds

    def loop(index: int) -> None:
        while time.perf_counter() < stop_at:
            function(image=images)
            counts[index] += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - started)


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    import psutil

    from benchmarks.harness import free_port
    from benchmarks.models import build_mnist_model

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-modelserver-") as tmp:
        base = Path(tmp)
        build_mnist_model(base / MODEL / "1")
        port = free_port()
        process = start_server(base, port)
        try:
            wait_serving(process, port)
            server = psutil.Process(process.pid)
            for batch in [0, *args.batches]:
                cpu_before = sum(server.cpu_times()[:2])
                result = asyncio.run(drive(port, batch, args.concurrency, args.seconds))
                cpu = sum(server.cpu_times()[:2]) - cpu_before
                result["server_cpu_ms_per_req"] = 1000 * cpu / max(result["requests"], 1)
                result["ceiling_rps"] = (
                    model_ceiling(base, batch, args.concurrency, min(args.seconds, 3.0))
                    if batch
                    else float("nan")
                )
                rows.append({"batch": batch, "concurrency": args.concurrency, **result})
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'batch':>5} {'conc':>4} {'req/s':>8} {'rows/s':>10} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'srv cpu ms/req':>14} {'model-only req/s':>16} {'fail':>4}"
    )
    for row in rows:
        label = row["batch"] or "hc"
        print(
            f"{label:>5} {row['concurrency']:>4} {row['rps']:>8.0f} "
            f"{row['rows_per_s']:>10.0f} {row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} "
            f"{row['server_cpu_ms_per_req']:>14.3f} {row['ceiling_rps']:>16.0f} "
            f"{row['failures']:>4}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="short run (1.5 s per batch)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per batch")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--batches", type=lambda s: [int(b) for b in s.split(",")], default=[1, 32, 256]
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds = 1.5
    rows = measure(args)
    print_table(rows)
    print("hc = grpc.health.v1.Health/Check on the same server: the gRPC-only floor")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(row["failures"] == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
