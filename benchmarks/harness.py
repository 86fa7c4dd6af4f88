"""Shared benchmark machinery: the model, the servers, interleaved measurement, results.

:class:`Stack` builds the MNIST-shaped SavedModel (``benchmarks/models.py``), starts
``tfgw modelserver`` and each gateway as its own process (one at a time, timing start-up to
the first correct answer), and stops them all on exit; ``tfgw gateway`` runs as shipped,
metrics and access log on (its lines go to its log file in the work directory).
:func:`measure` runs every (batch, concurrency) cell against every target, rotating the
target order per cell and round so slow drift on a shared machine spreads over all
targets; the load generator runs in a separate process (``benchmarks/loadgen.py``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import loadgen  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # inherited by the load generators

__all__ = [
    "ALIASES", "TARGETS", "Settings", "Stack", "Target", "build_model", "client_pool",
    "exit_status", "free_port", "measure", "spawn", "stop_processes", "target_names",
    "wait_ready", "write_csv",
]

MODEL = "mnist"
PREDICT_PATH = f"/v1/models/{MODEL}:predict"
START_TIMEOUT = 180.0
TARGETS = ("grpc", "tutorial", "floor", "gateway", "gateway-batched")
ALIASES = {"naive": "tutorial"}  # the tutorial gateway's name before issue 17
SCRIPTS = {"tutorial": "naive_gateway.py", "floor": "floor_gateway.py"}
LABELS = {
    "grpc": "direct gRPC (official stub)",
    "tutorial": "tutorial gateway (aiohttp+json+np+tf)",
    "gateway": "tfgw gateway",
    "gateway-batched": "tfgw gateway, batching",
    "floor": "floor gateway (aiohttp+orjson+grpc.aio, no checks)",
    "gateway-eager0": "tfgw gateway, timer-only batching",
    "gateway-eager2": "tfgw gateway, batching, 2 eager batches",
}


@dataclass
class Target:
    """One way to reach the backend; ``process`` is the gateway's (``None`` for gRPC)."""

    name: str
    kind: str
    address: str
    process: subprocess.Popen[bytes] | None = None
    startup_s: float | None = None

    def spec(self) -> dict[str, Any]:
        if self.kind == "grpc":
            return {"kind": "grpc", "target": self.address, "model": MODEL}
        return {"kind": "http", "url": f"http://{self.address}{PREDICT_PATH}"}


def target_names(spec: str) -> list[str]:
    """Target names from a comma-separated list, old names mapped, duplicates dropped."""
    return list(dict.fromkeys(ALIASES.get(t, t) for t in spec.split(",") if t))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """Model server + gateways for one benchmark run (a context manager)."""

    workdir: Path
    targets: Sequence[str] = TARGETS
    model_dir: Path | None = None
    batch_max_size: int = 256
    batch_timeout_ms: float = 2.0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    by_name: dict[str, Target] = field(default_factory=dict)
    start_memory: dict[str, dict[str, float]] = field(default_factory=dict)
    backend_port: int = 0

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def backend_pid(self) -> int:
        return self.processes["modelserver"].pid

    def _start(self) -> None:
        base = self._model_base()
        self.backend_port = free_port()
        started = time.monotonic()
        self._spawn("modelserver", ["-m", "gateway", "modelserver", "--model-name", MODEL,
                                    "--model-base-path", str(base / MODEL),
                                    "--host", "127.0.0.1", "--port", str(self.backend_port)])
        self._wait("modelserver", lambda: _grpc_probe(self.backend_port), started)
        self.start_memory["modelserver"] = _memory_mb(self.backend_pid)
        backend = f"127.0.0.1:{self.backend_port}"
        for name in self.targets:
            self.by_name[name] = self._start_target(name, backend)

    def _start_target(self, name: str, backend: str) -> Target:
        if name == "grpc":
            return Target(name, "grpc", backend)
        port = free_port()
        if name in SCRIPTS:
            script = REPO_ROOT / "benchmarks" / SCRIPTS[name]
            argv = [str(script), "--backend", backend, "--port", str(port)]
        else:  # tfgw gateway as shipped: metrics and access log on
            flags = ["--backend", backend, "--host", "127.0.0.1", "--port", str(port),
                     "--model", MODEL, "--access-log"]
            if name.startswith("gateway-eager"):  # gateway-eager0, gateway-eager2, ...
                argv = [str(REPO_ROOT / "benchmarks" / "variant_gateway.py"), *flags,
                        "--eager-inflight", name.removeprefix("gateway-eager")]
            else:
                argv = ["-m", "gateway", "--log-level", "INFO", "gateway", *flags]
            if name != "gateway":
                argv += ["--batch-max-size", str(self.batch_max_size),
                         "--batch-timeout-ms", str(self.batch_timeout_ms)]
        started = time.monotonic()
        process = self._spawn(name, argv)
        startup = self._wait(name, lambda: _http_probe(port), started)
        self.start_memory[name] = _memory_mb(process.pid)
        return Target(name, "http", f"127.0.0.1:{port}", process, startup)

    def _model_base(self) -> Path:
        base = self.workdir / "models"
        version = base / MODEL / "1"
        if version.exists():
            return base
        version.parent.mkdir(parents=True, exist_ok=True)
        if self.model_dir is not None:
            version.symlink_to(Path(self.model_dir).resolve(), target_is_directory=True)
            return base
        build_model(version)
        return base

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        process = spawn(argv, self.workdir / f"{name}.log")
        self.processes[name] = process
        return process

    def _wait(self, name: str, probe: Any, started: float) -> float:
        """Seconds from spawn to the first good answer (bounded by START_TIMEOUT)."""
        wait_ready(self.processes[name], probe, self.workdir / f"{name}.log", name)
        return time.monotonic() - started

    def memory(self) -> dict[str, dict[str, float]]:
        """RSS after start-up (first answer), RSS now and peak RSS (MB) of every server
        process, from ``/proc/<pid>/status``."""
        memory = {}
        for name, process in self.processes.items():
            if process.poll() is None:
                start = self.start_memory.get(name, {}).get("rss_mb", float("nan"))
                memory[name] = {"start_rss_mb": start, **_memory_mb(process.pid)}
        return memory

    def access_log_lines(self, name: str) -> int:
        """Access-log lines ``name`` has written so far (0 for a target without one)."""
        log = self.workdir / f"{name}.log"
        if name not in self.processes or not log.exists():
            return 0
        with log.open("rb") as handle:
            return sum(b" gateway.access: " in line for line in handle)

    def stop(self) -> None:
        stop_processes(self.processes.values())


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """``python ARGV`` from the repository root, stdout and stderr into ``log``."""
    with open(log, "wb") as handle:
        return subprocess.Popen([sys.executable, *argv], cwd=REPO_ROOT, env=_env(),
                                stdout=handle, stderr=subprocess.STDOUT)


def wait_ready(process: subprocess.Popen[bytes], probe: Any, log: Path, name: str) -> None:
    """Poll ``probe`` until true; raise with the log's tail if ``process`` exits first or
    nothing answers within ``START_TIMEOUT``."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
        if probe():
            return
        time.sleep(0.01)
    raise TimeoutError(f"{name} gave no answer within {START_TIMEOUT:.0f}s")


def stop_processes(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every live process, then wait for each (SIGKILL after 15 s)."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def build_model(path: Path) -> Path:
    """Write the MNIST-shaped SavedModel to ``path`` with ``benchmarks/models.py`` (in a
    subprocess: TensorFlow stays out of this process)."""
    subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "models.py"), str(path)],
                   check=True, env=_env(), stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=300)
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _memory_mb(pid: int) -> dict[str, float]:
    values = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = int(rest.split()[0]) / 1024
    return values


def _http_probe(port: int) -> bool:
    """One batch-1 predict through a gateway; true when it answers 10 probabilities."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{PREDICT_PATH}", data=loadgen.request_body(1),
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            predictions = json.loads(response.read())["predictions"]
    except (OSError, ValueError, KeyError):
        return False
    return np.asarray(predictions).shape == (1, 10)


def _grpc_probe(port: int) -> bool:
    """One Predict straight to the backend (project protos: wire-identical, no TF here)."""
    import grpc

    from gateway.pb import predict_pb2, types_pb2
    from gateway.tensors import fill_tensor_proto

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    fill_tensor_proto(request.inputs["image"], loadgen.instances(1), types_pb2.DT_FLOAT)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=predict_pb2.PredictRequest.SerializeToString,
            response_deserializer=predict_pb2.PredictResponse.FromString)
        try:
            response = call(request, timeout=5)
        except grpc.RpcError:
            return False
    return "prediction" in response.outputs


def client_pool(clients: int = 1) -> Any:
    """Load-generator processes (spawned, so they share nothing with this one)."""
    return multiprocessing.get_context("spawn").Pool(clients)


@dataclass
class Settings:
    rounds: int
    duration: float
    warmup: float
    max_requests: int
    clients: int = 1


def measure(stack: Stack, cells: Iterable[tuple[int, int]], settings: Settings,
            pool: Any, log: Any = print) -> list[dict[str, Any]]:
    """Every cell × target, interleaved; one aggregated row per (target, batch, conc)."""
    cells = list(cells)
    names = list(stack.by_name)
    runs: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for round_no in range(settings.rounds):
        for index, (batch, concurrency) in enumerate(cells):
            shift = (round_no + index) % len(names)
            for name in names[shift:] + names[:shift]:
                result = _run_one(stack, stack.by_name[name], batch, concurrency, settings, pool)
                runs.setdefault((name, batch, concurrency), []).append(result)
                log(f"  round {round_no + 1} batch {batch:>3} conc {concurrency:>2} "
                    f"{name:<16} {len(result['latencies']) / result['elapsed']:8.1f} req/s"
                    f"{'  ERRORS: ' + result['first_error'] if result['errors'] else ''}")
    return [_aggregate(name, batch, conc, results)
            for (name, batch, conc), results in runs.items()]


def _run_one(stack: Stack, target: Target, batch: int, concurrency: int, settings: Settings,
             pool: Any) -> dict[str, Any]:
    pids = {"backend": stack.backend_pid}
    if target.process is not None:
        pids["gateway"] = target.process.pid
    clients = max(1, min(settings.clients, concurrency))
    specs = []
    for client in range(clients):
        share = concurrency // clients + (1 if client < concurrency % clients else 0)
        specs.append({**target.spec(), "batch": batch, "concurrency": share,
                      "warmup": settings.warmup, "duration": settings.duration,
                      "max_requests": max(1, settings.max_requests // clients),
                      "pids": pids if client == 0 else {}})
    results = pool.map(loadgen.run_cell, specs)
    merged = results[0]
    for extra in results[1:]:
        merged["latencies"] += extra["latencies"]
        merged["errors"] += extra["errors"]
        merged["first_error"] = merged["first_error"] or extra["first_error"]
        merged["cpu"]["client"] += extra["cpu"]["client"]
        merged["elapsed"] = max(merged["elapsed"], extra["elapsed"])
    return merged


def _aggregate(name: str, batch: int, concurrency: int,
               results: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = np.concatenate([np.asarray(r["latencies"], float) for r in results]) * 1e3
    count = int(latencies.size)
    elapsed = sum(r["elapsed"] for r in results)
    cpu = {key: sum(r["cpu"].get(key, 0.0) for r in results)
           for key in ("gateway", "backend", "client")}
    per_request = {key: (value * 1e3 / count if count else float("nan"))
                   for key, value in cpu.items()}
    has_gateway = any("gateway" in r["cpu"] for r in results)
    quantile = (lambda q: float(np.percentile(latencies, q))) if count else (
        lambda q: float("nan"))
    return {
        "target": name,
        "batch": batch,
        "concurrency": concurrency,
        "requests": count,
        "errors": sum(r["errors"] for r in results),
        "seconds": round(elapsed, 3),
        "rps": count / elapsed if elapsed else 0.0,
        "instances_per_s": count * batch / elapsed if elapsed else 0.0,
        "p50_ms": quantile(50),
        "p99_ms": quantile(99),
        "mean_ms": float(latencies.mean()) if count else float("nan"),
        "gateway_cpu_ms": per_request["gateway"] if has_gateway else float("nan"),
        "backend_cpu_ms": per_request["backend"],
        "client_cpu_ms": per_request["client"],
        "first_error": next((r["first_error"] for r in results if r["first_error"]), ""),
    }


def exit_status(rows: list[dict[str, Any]]) -> int:
    """1 (and a line on stderr) if any request failed, else 0."""
    errors = sum(row["errors"] for row in rows)
    if errors:
        print(f"{errors} requests failed", file=sys.stderr)
    return 1 if errors else 0


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v)
                             for k, v in row.items()})


def machine_note() -> str:
    """One line describing where the numbers came from (they are machine-specific)."""
    load = os.getloadavg()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (f"{os.cpu_count()} CPUs, load average {load[0]:.2f} at the end, "
            f"Python {sys.version.split()[0]}, {stamp}")


def add_run_arguments(parser: argparse.ArgumentParser, *, rounds: int) -> None:
    """Flags every gateway benchmark shares: output, run length, load, model."""
    parser.add_argument("--smoke", action="store_true", help="tiny counts (seconds)")
    parser.add_argument("--out", type=Path, help="output directory (default "
                        "benchmarks/results; for --smoke a temporary directory)")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--max-requests", type=int, default=100_000, help="cap per run")
    parser.add_argument("--clients", type=int, default=1, help="load-generator processes")
    parser.add_argument("--model-dir", type=Path, help="reuse this MNIST-shaped SavedModel")


def default_out(smoke: bool) -> Path:
    """Where results go: the repo's ``benchmarks/results``, never for smoke runs."""
    if smoke:
        return Path(tempfile.gettempdir()) / "tfgw-bench-smoke"
    return REPO_ROOT / "benchmarks" / "results"


def temp_workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="tfgw-bench-")
