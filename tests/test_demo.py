"""``tfgw demo`` end to end in a subprocess (train → export → publish → serve → 3 paths)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from support.net import free_port, wait_for
from support.paths import REPO_ROOT
from support.servers import stop_process

from gateway.demo import SHADES, render_digit

AGREE_LINE = "12/12 predictions agree across REST (CloudML), REST (TF Serving) and gRPC"
pytestmark = pytest.mark.timeout(300)


def _demo(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", "demo", "--workdir", str(workdir), *args]


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONIOENCODING": "utf-8"}


def test_demo_end_to_end_keep_running(tmp_path: Path) -> None:
    port, grpc_port = free_port(), free_port()
    log = tmp_path / "demo.out"
    command = _demo(tmp_path, "--port", str(port), "--grpc-port", str(grpc_port),
                    "--keep-running")
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=_env(), stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: process.poll() is not None or "serving until" in log.read_text(),
                 timeout=240, interval=0.5)
        text = log.read_text()
        assert process.poll() is None, text[-3000:]
        assert AGREE_LINE in text.splitlines()
        assert (tmp_path / "models" / "digits" / "1" / "saved_model.pb").is_file()
        assert f"http://127.0.0.1:{port}/docs" in text
        assert f"127.0.0.1:{grpc_port}" in text
        for picture_char in SHADES[1:]:
            assert picture_char in text

        # The printed curl line works as printed (body parsed back out of it).
        curl = re.search(r"try\s+(curl .*)$", text, re.M)
        assert curl is not None
        words = shlex.split(curl.group(1))
        body = words[words.index("-d") + 1]
        url = next(w for w in words if w.startswith("http://"))
        request = urllib.request.Request(url, data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            scores = json.loads(response.read())["predictions"]
        assert np.asarray(scores).shape == (1, 10)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=30) as response:
            assert response.status == 200
    finally:
        code = stop_process(process, grace=60)
    assert code == 0, log.read_text()[-3000:]
    assert log.read_text().rstrip().endswith("stopped")


def test_demo_export_only_leaves_a_version(tmp_path: Path) -> None:
    result = subprocess.run(
        _demo(tmp_path, "--export-only", "--epochs", "2"), cwd=REPO_ROOT, env=_env(),
        capture_output=True, timeout=240,
    )
    out = result.stdout.decode()
    assert result.returncode == 0, (out + result.stderr.decode())[-3000:]
    version = tmp_path / "models" / "digits" / "1"
    assert (version / "saved_model.pb").is_file()
    assert "docker compose up" in out
    assert "predictions agree" not in out  # nothing was served


@pytest.mark.parametrize(
    "args", [["--epochs", "0"], ["--port", "70000"], ["--keep-running", "--export-only"]]
)
def test_demo_usage_errors(tmp_path: Path, args: list[str]) -> None:
    result = subprocess.run(_demo(tmp_path, *args), cwd=REPO_ROOT, env=_env(),
                            capture_output=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfgw demo: error:")
    assert not (tmp_path / "models").exists()


def test_render_digit_uses_shades_by_intensity() -> None:
    pixels = np.zeros(64)
    pixels[0], pixels[1], pixels[63] = 16, 8, 4
    lines = render_digit(pixels)
    assert len(lines) == 8 and all(len(line) == 16 for line in lines)
    assert lines[0][:4] == "██▒▒"
    assert lines[7][-2:] == "░░"
    assert lines[3] == " " * 16
