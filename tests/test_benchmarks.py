"""The benchmark scripts run end to end in smoke mode so they cannot rot.

Each smoke run starts a real ``tfgw modelserver``, the real gateways (project, and the
tutorial and floor ones for comparison) and a load-generator process, with tiny counts.
Assertions are about the artefacts (every target × cell measured without errors, files
written), never about speed. Plus the target arithmetic of ``benchmarks/summary.py`` on
fixed rows.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest
from support.paths import REPO_ROOT

ROOT = REPO_ROOT
if str(ROOT) not in sys.path:  # ``benchmarks`` is a directory of the repo, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import gateway as gateway_bench  # noqa: E402
from benchmarks import harness, summary  # noqa: E402
from benchmarks import report as report_bench  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return harness.build_model(tmp_path_factory.mktemp("bench") / "mnist")


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def assert_measured(rows: list[dict[str, str]], targets: set[str], cells: set[tuple[int, int]]):
    assert {(r["target"], int(r["batch"]), int(r["concurrency"])) for r in rows} == {
        (t, b, c) for t in targets for b, c in cells
    }
    for row in rows:
        assert int(row["requests"]) > 0, row
        assert int(row["errors"]) == 0, row
        assert float(row["p99_ms"]) >= float(row["p50_ms"]) > 0
        if row["target"] != "grpc":
            assert float(row["gateway_cpu_ms"]) >= 0


def test_gateway_benchmark_smoke(mnist_dir: Path, tmp_path: Path, capsys) -> None:
    code = gateway_bench.main(["--smoke", "--out", str(tmp_path), "--model-dir", str(mnist_dir)])
    assert code == 0
    rows = read_rows(tmp_path / "gateway.csv")
    assert_measured(rows, {"grpc", "tutorial", "floor", "gateway"}, {(1, 2), (32, 2)})
    table = (tmp_path / "gateway.md").read_text()
    assert "start-up to first answer" in table and "tfgw gateway" in table
    assert table.strip() in capsys.readouterr().out


def test_report_smoke(mnist_dir: Path, tmp_path: Path) -> None:
    code = report_bench.main(["--smoke", "--out", str(tmp_path), "--model-dir", str(mnist_dir),
                              "--variants", "0"])
    assert code == 0
    rows = read_rows(tmp_path / "results.csv")
    targets = {*harness.TARGETS, "gateway-eager0"}
    assert_measured(rows, targets, {(1, 1), (1, 4), (8, 2)})
    for name in ("throughput.png", "p99.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "table.md").read_text()
    for target in targets:
        assert harness.LABELS[target] in table
    assert "batched throughput" in table
    goal = ("CPU/request ≤ 0.85× the tutorial gateway's at batch 1, concurrency 4, "
            "metrics and access log on")
    line = next(line for line in table.splitlines() if line.startswith(f"| {goal} |"))
    assert "not on" not in line  # the tfgw gateway wrote its access log


def test_report_targets_still_accept_the_old_name_naive() -> None:
    assert harness.target_names("grpc,naive,,tutorial,gateway") == [
        "grpc", "tutorial", "gateway"]


def test_report_puts_the_table_between_the_readme_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n{report_bench.MARK_START}\nold\n{report_bench.MARK_END}\nrest\n")
    assert report_bench.update_readme(readme, "| new |")
    assert readme.read_text() == (
        f"# Title\n{report_bench.MARK_START}\n| new |\n{report_bench.MARK_END}\nrest\n")
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert not report_bench.update_readme(plain, "| new |")
    assert plain.read_text() == "no markers\n"


def row(target: str, batch: int, conc: int, rps: float, p50: float, p99: float,
        cpu: float = math.nan) -> dict[str, object]:
    return {"target": target, "batch": batch, "concurrency": conc, "rps": rps,
            "p50_ms": p50, "p99_ms": p99, "gateway_cpu_ms": cpu}


def test_batching_targets_compare_batched_with_unbatched() -> None:
    rows = [
        row("gateway", 1, 1, 500, 2.0, 4.0), row("gateway-batched", 1, 1, 480, 2.5, 5.0),
        row("gateway", 1, 32, 600, 50.0, 80.0), row("gateway-batched", 1, 32, 1300, 24, 130),
    ]
    checks = summary.batching_targets(rows, timeout_ms=2.0, concurrency=32)
    assert [(measured, met) for _goal, measured, met in checks] == [
        ("2.17×", True), ("1.62×", False), ("2.50 ms", True),
    ]


BATCH_1_CPU = ("CPU/request ≤ 0.85× the tutorial gateway's at batch 1, concurrency 4, "
               "metrics and access log on")


def test_gateway_targets_use_cpu_and_throughput_ratios() -> None:
    rows = [
        row("tutorial", 32, 4, 100, 0, 0, cpu=6.0), row("gateway", 32, 4, 300, 0, 0, cpu=1.5),
        row("tutorial", 256, 4, 10, 0, 0, cpu=40.0), row("gateway", 256, 4, 60, 0, 0, cpu=12.0),
        row("grpc", 1, 4, 1000, 0, 0), row("gateway", 1, 4, 950, 0, 0, cpu=0.5),
        row("tutorial", 1, 4, 700, 0, 0, cpu=0.625),
        row("floor", 1, 4, 1200, 0, 0, cpu=0.4),
    ]
    checks = {goal: (measured, met) for goal, measured, met in summary.gateway_targets(
        rows, {"gateway": 1.5}, {"gateway": {"start_rss_mb": 60.0, "rss_mb": 95.0}},
        access_log=True)}
    assert checks[BATCH_1_CPU] == ("0.80×", True)
    assert checks["CPU/request ≤ 1/3 of the tutorial gateway's at batch 32"] == ("0.25×", True)
    assert checks["CPU/request ≤ 1/4 of the tutorial gateway's at batch 256"] == (
        "0.30×", False)
    assert not any("throughput ≥" in goal and "tutorial" in goal for goal in checks)
    assert checks["throughput ≥ 0.9× direct gRPC at batch 1, concurrency 4"] == ("0.95×", True)
    assert checks["throughput ≥ 0.9× the floor gateway at batch 1, concurrency 4"] == (
        "0.79×", False)
    assert checks["gateway RSS ≤ 80 MB (after start-up)"] == ("60.00 MB", True)
    assert checks["gateway RSS ≤ 80 MB (after the run)"] == ("95.00 MB", False)
    assert checks["start-up to first answer ≤ 1 s"] == ("1.50 s", False)


def test_batch_1_cpu_target_needs_the_access_log_on() -> None:
    rows = [row("gateway", 1, 4, 950, 0, 0, cpu=0.5), row("tutorial", 1, 4, 700, 0, 0, cpu=1.0)]
    checks = {goal: (measured, met) for goal, measured, met in summary.gateway_targets(
        rows, {}, {}, access_log=False)}
    assert checks[BATCH_1_CPU] == ("0.50× (access log not on)", None)
    assert checks["CPU/request ≤ 1/3 of the tutorial gateway's at batch 32"] == (
        "not measured", None)
