"""``benchmarks/codec.py --smoke`` runs end to end (numbers are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from support.paths import REPO_ROOT

REPO = REPO_ROOT


def test_codec_benchmark_smoke() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "codec.py"), "--smoke", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("JSON -> serialized PredictRequest")
    rows = json.loads(lines[-1])
    assert [row["batch"] for row in rows] == [1, 32, 256]
    for row in rows:
        assert set(row["request"]) == {"project", "naive", "floor", "plain", "plain32"}
        assert set(row["response"]) == {"content", "float_val"}
        assert all(value > 0 for value in row["request"].values())
