"""Publish integrity against a POLLING ``tfgw modelserver`` (every 0.2 s, ``all`` policy).

While publishes are SIGKILLed at random moments and others run concurrently, a monitor
thread calls GetModelStatus every 20 ms: no version may ever report a load error (a
partial version would fail to load), and every version left complete on disk must end
up AVAILABLE. Reuses the export and helpers of ``test_publish_crash.py``.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
from support.paths import REPO_ROOT
from support.processes import ModelServerProcess
from support.publishing import manifest, publish_command, publish_env, publish_maybe_killed

KILLS = 12
PARALLEL = 6
AVAILABLE = 30


class StatusMonitor(threading.Thread):
    """Polls GetModelStatus; records every (version, state) and every load error."""

    def __init__(self, target: str, name: str) -> None:
        super().__init__(daemon=True)
        self.target, self.name = target, name
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self.states: Counter[int] = Counter()
        self.polls = 0

    def snapshot(self) -> dict[int, tuple[int, str]]:
        from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

        with grpc.insecure_channel(self.target) as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            request = get_model_status_pb2.GetModelStatusRequest(model_spec={"name": self.name})
            try:
                reply = stub.GetModelStatus(request, timeout=5)
            except grpc.RpcError:
                return {}
        return {s.version: (s.state, s.status.error_message if s.status.error_code else "")
                for s in reply.model_version_status}

    def run(self) -> None:
        deadline = time.monotonic() + 600
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            for version, (state, error) in self.snapshot().items():
                self.states[state] += 1
                if error:
                    self.errors.append(f"version {version}: {error[:300]}")
            self.polls += 1
            time.sleep(0.02)


def _write_config(path: Path, base: Path) -> Path:
    path.write_text(
        "model_config_list {\n  config {\n    name: \"scale\"\n"
        f"    base_path: \"{base}\"\n    model_platform: \"tensorflow\"\n"
        "    model_version_policy { all {} }\n  }\n}\n")
    return path


def test_polling_server_never_loads_a_partial_version(padded_export: Path,
                                                      tmp_path: Path) -> None:
    base = tmp_path / "models" / "scale"
    first = subprocess.run(publish_command(padded_export, base), env=publish_env(),
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    config = _write_config(tmp_path / "server.config", base)
    server = ModelServerProcess(["--model-config-file", str(config),
                                 "--file-system-poll-wait-seconds", "0.2"])
    rng = random.Random(8)
    outcomes: Counter[str] = Counter()
    with server:
        monitor = StatusMonitor(server.target, "scale")
        monitor.start()
        try:
            started = time.monotonic()
            timed = subprocess.run(publish_command(padded_export, base), env=publish_env(),
                                   cwd=REPO_ROOT, capture_output=True, timeout=120)
            lifetime = time.monotonic() - started
            assert timed.returncode == 0
            for _ in range(KILLS):
                killed = publish_maybe_killed(padded_export, base, rng, lifetime)
                outcomes["killed" if killed else "completed"] += 1
            procs = [subprocess.Popen(publish_command(padded_export, base), env=publish_env(),
                                      cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
                     for _ in range(PARALLEL)]
            codes = [p.wait(timeout=120) for p in procs]
            for p in procs:
                p.stderr.close()  # type: ignore[union-attr]
            assert codes == [0] * PARALLEL
            on_disk = sorted(int(n) for n in os.listdir(base) if n.isdigit())
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                states = monitor.snapshot()
                if all(states.get(v, (0, ""))[0] == AVAILABLE for v in on_disk):
                    break
                time.sleep(0.2)
        finally:
            monitor.stop_event.set()
            monitor.join(timeout=30)
        assert server.alive()
    print(f"\npolling server: {len(on_disk)} versions on disk, publishes {dict(outcomes)} "
          f"+ {PARALLEL} parallel; {monitor.polls} status polls; states seen "
          f"{dict(monitor.states)}; load errors {len(monitor.errors)}")
    assert monitor.errors == []
    assert monitor.polls > 50
    assert {v: s for v, (s, _) in states.items()} == dict.fromkeys(on_disk, AVAILABLE)
    assert on_disk == list(range(1, len(on_disk) + 1))
    for version in on_disk:
        assert manifest(base / str(version)) == manifest(padded_export)
