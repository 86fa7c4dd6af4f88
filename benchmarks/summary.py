"""Markdown tables and target checks from benchmark rows (pure functions, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.harness import LABELS

__all__ = [
    "batching_targets",
    "gateway_targets",
    "memory_table",
    "results_table",
    "targets_table",
]

Row = Mapping[str, Any]

# Issue 17: (batch, concurrency or any, largest CPU/request ratio, as written in the goal)
TUTORIAL_CPU_TARGETS: tuple[tuple[int, int | None, float, str], ...] = (
    (1, 4, 0.85, "0.85×"),
    (32, None, 1 / 3, "1/3 of"),
    (256, None, 1 / 4, "1/4 of"),
)


def _fmt(value: float, digits: int = 1) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def results_table(rows: Sequence[Row]) -> str:
    """One line per target × cell, grouped by cell."""
    lines = [
        "| batch | concurrency | target | req/s | instances/s | p50 ms | p99 ms "
        "| gateway CPU ms/req | backend CPU ms/req |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(rows, key=lambda r: (r["batch"], r["concurrency"], _order(r))):
        lines.append(
            f"| {row['batch']} | {row['concurrency']} | {LABELS.get(row['target'], row['target'])}"
            f" | {_fmt(row['rps'])} | {_fmt(row['instances_per_s'], 0)}"
            f" | {_fmt(row['p50_ms'], 2)} | {_fmt(row['p99_ms'], 2)}"
            f" | {_fmt(row['gateway_cpu_ms'], 2)} | {_fmt(row['backend_cpu_ms'], 2)} |")
    return "\n".join(lines)


def memory_table(startup: Mapping[str, float | None],
                 memory: Mapping[str, Mapping[str, float]]) -> str:
    lines = ["| process | start-up to first answer s | RSS after start-up MB "
             "| RSS after the run MB | peak RSS MB |",
             "|---|---:|---:|---:|---:|"]
    for name, mem in memory.items():
        first = startup.get(name)
        lines.append(f"| {LABELS.get(name, name)} | {_fmt(first, 2) if first else '–'}"
                     f" | {_fmt(mem.get('start_rss_mb', math.nan))}"
                     f" | {_fmt(mem.get('rss_mb', math.nan))}"
                     f" | {_fmt(mem.get('peak_rss_mb', math.nan))} |")
    return "\n".join(lines)


def targets_table(checks: Sequence[tuple[str, str, bool | None]]) -> str:
    lines = ["| target | measured | met? |", "|---|---|---|"]
    for goal, measured, met in checks:
        verdict = "n/a" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {goal} | {measured} | {verdict} |")
    return "\n".join(lines)


def _order(row: Row) -> int:
    names = list(LABELS)
    return names.index(row["target"]) if row["target"] in names else len(names)


def _find(rows: Sequence[Row], target: str, batch: int, conc: int | None = None) -> Row | None:
    for row in rows:
        if row["target"] == target and row["batch"] == batch and (
                conc is None or row["concurrency"] == conc):
            return row
    return None


def _ratio(a: Row | None, b: Row | None, key: str) -> float | None:
    if a is None or b is None or not b[key] or math.isnan(a[key]) or math.isnan(b[key]):
        return None
    return a[key] / b[key]


def _check(goal: str, value: float | None, limit: float, *, at_least: bool,
           unit: str = "×") -> tuple[str, str, bool | None]:
    if value is None:
        return goal, "not measured", None
    met = value >= limit if at_least else value <= limit
    shown = f"{value:.2f}{unit}" if unit == "×" else f"{value:.2f} {unit}"
    return goal, shown, met


def gateway_targets(rows: Sequence[Row], startup: Mapping[str, float | None],
                    memory: Mapping[str, Mapping[str, float]], gateway: str = "gateway",
                    access_log: bool | None = None) -> list[tuple[str, str, bool | None]]:
    """The project gateway (unbatched) against the tutorial gateway (issue 17), direct
    gRPC and the floor (issue 5); ``access_log`` says whether its access log was on."""
    checks = []
    for batch, conc, limit, text in TUTORIAL_CPU_TARGETS:
        mine = _find(rows, gateway, batch, conc)
        tutorial = _find(rows, "tutorial", batch, mine["concurrency"]) if mine else None
        goal = f"CPU/request ≤ {text} the tutorial gateway's at batch {batch}"
        if conc is not None:
            goal += f", concurrency {conc}, metrics and access log on"
        check = _check(goal, _ratio(mine, tutorial, "gateway_cpu_ms"), limit, at_least=False)
        if conc is not None and check[2] is not None and not access_log:
            check = (goal, f"{check[1]} (access log not on)", None)
        checks.append(check)
    for row in rows:
        if row["target"] == gateway and row["batch"] == 1:
            direct = _find(rows, "grpc", 1, row["concurrency"])
            checks.append(_check(
                f"throughput ≥ 0.9× direct gRPC at batch 1, concurrency {row['concurrency']}",
                _ratio(row, direct, "rps"), 0.9, at_least=True))
    for row in rows:  # how much of the gap is the project's code, not the transport
        floor = _find(rows, "floor", row["batch"], row["concurrency"])
        if row["target"] == gateway and row["batch"] == 1 and floor is not None:
            checks.append(_check(
                f"throughput ≥ 0.9× the floor gateway at batch 1, concurrency "
                f"{row['concurrency']}", _ratio(row, floor, "rps"), 0.9, at_least=True))
    mem = memory.get(gateway, {})
    checks.append(_check("gateway RSS ≤ 80 MB (after start-up)", mem.get("start_rss_mb"), 80,
                         at_least=False, unit="MB"))
    checks.append(_check("gateway RSS ≤ 80 MB (after the run)", mem.get("rss_mb"), 80,
                         at_least=False, unit="MB"))
    checks.append(_check("start-up to first answer ≤ 1 s", startup.get(gateway), 1.0,
                         at_least=False, unit="s"))
    return checks


def batching_targets(rows: Sequence[Row], timeout_ms: float,
                     concurrency: int = 32) -> list[tuple[str, str, bool | None]]:
    """Issue 9's targets: batched vs unbatched gateway at batch 1."""
    batched = _find(rows, "gateway-batched", 1, concurrency)
    plain = _find(rows, "gateway", 1, concurrency)
    checks = [
        _check(f"batched throughput ≥ 2× unbatched at concurrency {concurrency}",
               _ratio(batched, plain, "rps"), 2.0, at_least=True),
        _check(f"batched p99 ≤ 1.5× unbatched at concurrency {concurrency}",
               _ratio(batched, plain, "p99_ms"), 1.5, at_least=False),
    ]
    lone, lone_plain = _find(rows, "gateway-batched", 1, 1), _find(rows, "gateway", 1, 1)
    if lone is None or lone_plain is None:
        checks.append(("p50 at concurrency 1 ≤ unbatched p50 + timeout", "not measured", None))
    else:
        limit = lone_plain["p50_ms"] + timeout_ms
        checks.append((f"p50 at concurrency 1 ≤ unbatched p50 + {timeout_ms:g} ms "
                       f"({limit:.2f} ms)", f"{lone['p50_ms']:.2f} ms",
                       lone["p50_ms"] <= limit))
    return checks
