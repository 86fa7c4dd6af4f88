"""Load and soak (bounded): ``benchmarks/soak.py --smoke`` drives 256 keep-alive
connections with a mixed valid/invalid request mix through a real ``tfgw gateway`` in
front of the shared ``tfgw modelserver``: 2 000 warm-up + 2 × 5 000 measured requests.

Every request must get exactly the status its kind calls for (no 5xx, no client errors),
the gateway's RSS may grow at most ``RSS_BOUND`` over the 10 000 measured requests, and its
open file descriptors must come back to the baseline (no leak).
"""

from __future__ import annotations

import json
import subprocess
import sys

from support.paths import REPO_ROOT

RSS_BOUND = 24 << 20
FD_SLACK = 4


def test_soak_smoke(modelserver_port: int) -> None:
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "soak.py"), "--smoke",
         "--backend", f"127.0.0.1:{modelserver_port}", "--model", "half_plus_two"],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"\nsoak smoke: {json.dumps(figures, indent=1)}")
    total = 0
    for round_ in figures["rounds"]:
        assert round_["unexpected"] == [] and round_["client_errors"] == {}
        statuses = {int(k): v for k, v in round_["statuses"].items()}
        assert max(statuses) < 500 and {200, 400, 404, 405} <= set(statuses)
        total += sum(statuses.values())
    assert total == 2 * figures["requests_per_round"] >= 10_000
    assert figures["connections"] == 256 and figures["gateway_alive"]
    assert figures["rss_growth"] < RSS_BOUND
    assert figures["fds_after"] <= figures["fds_baseline"] + FD_SLACK
