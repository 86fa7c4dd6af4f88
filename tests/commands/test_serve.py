"""The commands as processes: ``tfgw serve PATH`` end to end, ``tfgw gateway`` TF-free."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from support import models
from support.gateway_app import FakeBackend
from support.net import free_port, port_open, wait_for
from support.paths import REPO_ROOT

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
       "PYTHONPATH": str(REPO_ROOT)}


def _post(url: str, body: object, timeout: float = 30.0) -> tuple[int, object]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def half_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``BASE/half/{1,2}`` and ``BASE/models.config`` labelling them stable/canary."""
    base = tmp_path_factory.mktemp("serve")
    models.build_half_plus_two(base / "half" / "1")
    models.build_half_plus_two(base / "half" / "2")
    (base / "models.config").write_text(textwrap.dedent("""
        model_config_list { config {
          name: "half" base_path: "half" model_platform: "tensorflow"
          model_version_policy { all {} }
          version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 }
        } }
    """))
    return base


def _stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        out, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate(timeout=10)
    return process.returncode, out


def test_serve_end_to_end(half_base: Path, tmp_path: Path) -> None:
    port, grpc_port = free_port(), free_port()
    opened = tmp_path / "opened-url"
    browser = f"{sys.executable} -c 'import sys; open(sys.argv[2], \"w\").write(sys.argv[1])'"
    env = {**ENV, "BROWSER": f"{browser} %s {opened}"}
    command = [sys.executable, "-m", "gateway", "serve", str(half_base / "half"),
               "--port", str(port), "--grpc-port", str(grpc_port), "--browse"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: port_open(port) or process.poll() is not None, timeout=120)
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        base = f"http://127.0.0.1:{port}"
        assert _post(f"{base}/v1/models/half:predict", {"instances": [4.0]}) == (
            200, {"predictions": [4.0]}
        )
        assert _post(f"{base}/serving_default/predict", {"instances": [4.0]}) == (
            200, {"predictions": [{"y": 4.0}]}
        )
        status, _ = _post(f"{base}/v1/models/half/labels/stable:predict", {"instances": [0.0]})
        assert status == 200
        status, data = _post(f"{base}/v1/models/half/labels/beta:predict", {"instances": [0.0]})
        assert status == 400 and data["error"]
        wait_for(lambda: opened.exists() and opened.read_text() != "", timeout=30)
        assert opened.read_text() == f"{base}/docs"
    finally:
        code, out = _stop(process)
    assert code == 0, out
    assert f"http://127.0.0.1:{port}/docs" in out
    curl = next(line for line in out.splitlines() if "curl -s -X POST" in line)
    assert f"http://127.0.0.1:{port}/v1/models/half:predict" in curl
    assert curl.endswith("""-d '{"instances":[{"x":0.0}]}'""")
    assert f"127.0.0.1:{grpc_port}" in out
    assert "stopped" in out


def test_serve_stops_cleanly_while_loading(half_base: Path) -> None:
    command = [sys.executable, "-m", "gateway", "serve", str(half_base / "half"),
               "--port", str(free_port()), "--grpc-port", str(free_port())]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=ENV, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "loading half" in first
    finally:
        code, out = _stop(process)
    assert code == 0, first + out
    assert "stopped" in out


def test_serve_usage_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", str(tmp_path / "missing")],
        cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no such model directory" in result.stderr
    result = subprocess.run([sys.executable, "-m", "gateway", "gateway"], cwd=REPO_ROOT,
                            env=ENV, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--backend" in result.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "gateway", "--backend", "127.0.0.1:1",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("tfgw gateway: error: cannot listen")
    assert "Traceback" not in result.stderr


_GATEWAY_SCRIPT = """
import json, os, signal, sys, threading, time, urllib.request
from gateway.cli import main

PORT = int(sys.argv[2])

def probe():
    for _ in range(300):
        try:
            req = urllib.request.Request(
                f"http://127.0.0.1:{PORT}/v1/models/half:predict",
                data=b'{"instances": [1.0]}', method="POST")
            with urllib.request.urlopen(req, timeout=5) as resp:
                print("ANSWER", resp.read().decode(), flush=True)
                break
        except OSError:
            time.sleep(0.05)
    tf = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
    print("TF_MODULES", json.dumps(tf), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=probe, daemon=True).start()
sys.exit(main(["gateway", "--backend", sys.argv[1], "--port", str(PORT), "--model", "half"]))
"""


async def test_gateway_command_never_imports_tensorflow() -> None:
    fake = FakeBackend()
    await fake.start()
    port = free_port()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _GATEWAY_SCRIPT, fake.target, str(port),
            cwd=REPO_ROOT, env=ENV, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        except TimeoutError:
            process.kill()
            raise
    finally:
        await fake.stop()
    text = out.decode()
    assert process.returncode == 0, text
    assert 'ANSWER {"predictions":[3.5]}' in text
    assert "TF_MODULES []" in text
    assert f"http://127.0.0.1:{port}/docs" in text and "stopped" in text
