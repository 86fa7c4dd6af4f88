"""Benchmark report (issues 9, 17): gRPC, tutorial, floor and tfgw gateways in one run.

Direct gRPC, the tutorial gateway, the floor gateway and tfgw gateway with and without
micro-batching, interleaved: batch 1 at concurrency 1, 4, 8 and 32, plus batch 32 and 256
(concurrency 4), against one ``tfgw modelserver`` with the MNIST-shaped model. Writes to
``benchmarks/results/``: ``results.csv`` (one row per target × cell), ``throughput.png``
and ``p99.png`` (batch 1, vs concurrency) and ``table.md`` (the README's table: results,
start-up/RSS, targets; issue 17's compare tfgw gateway's CPU per request with the
tutorial gateway's).
Client, gateways and backend share the machine's cores: compare columns, not machines.

    .venv/bin/python benchmarks/report.py            # a few minutes
    .venv/bin/python benchmarks/report.py --smoke    # seconds; used by the test suite
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness, summary

MARK_START = "<!-- benchmark-table:start -->"
MARK_END = "<!-- benchmark-table:end -->"


def update_readme(path: Path, table: str) -> bool:
    """Replace what lies between the two marker lines of ``path``; false if no markers."""
    text = path.read_text()
    start, end = text.find(MARK_START), text.find(MARK_END)
    if start < 0 or end < start:
        return False
    head = text[: start + len(MARK_START)]
    path.write_text(f"{head}\n{table}\n{text[end:]}")
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_run_arguments(parser, rounds=2)
    parser.add_argument("--concurrency", default="1,4,8,32",
                        help="batch-1 concurrency levels")
    parser.add_argument("--big-batches", default="32,256", help="larger batch sizes")
    parser.add_argument("--big-concurrency", type=int, default=4)
    parser.add_argument("--batch-max-size", type=int, default=256)
    parser.add_argument("--batch-timeout-ms", type=float, default=2.0)
    parser.add_argument("--variants", default="", help="also measure batcher variants, "
                        "e.g. 0,2: eager_inflight values (benchmarks/variant_gateway.py)")
    parser.add_argument("--readme", type=Path, help="also put table.md into this file "
                        f"between the lines {MARK_START!r} and {MARK_END!r}")
    parser.add_argument("--targets", default=",".join(harness.TARGETS),
                        help="comma-separated subset of: " + ", ".join(harness.TARGETS)
                        + " ('naive' still means 'tutorial')")
    args = parser.parse_args(argv)
    if args.smoke:
        args.concurrency, args.big_batches, args.big_concurrency = "1,4", "8", 2
        args.rounds, args.duration, args.warmup, args.max_requests = 1, 0.5, 0.2, 200
    args.out = args.out or harness.default_out(args.smoke)
    return args


def plot(rows: Sequence[dict[str, Any]], key: str, ylabel: str, path: Path) -> None:
    """``key`` vs concurrency at batch 1, one line per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for target, label in harness.LABELS.items():
        points = sorted((r["concurrency"], r[key]) for r in rows
                        if r["target"] == target and r["batch"] == 1)
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set_xlabel("concurrent clients (batch 1, one 784-float instance per request)")
    ax.set_ylabel(ylabel)
    ax.set_xscale("log", base=2)
    ticks = sorted({r["concurrency"] for r in rows if r["batch"] == 1})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cells = [(1, int(c)) for c in args.concurrency.split(",")]
    cells += [(int(b), args.big_concurrency) for b in args.big_batches.split(",") if b]
    settings = harness.Settings(args.rounds, args.duration, args.warmup, args.max_requests,
                                args.clients)
    with harness.temp_workdir() as tmp, harness.client_pool(args.clients) as pool:
        variants = [f"gateway-eager{v}" for v in args.variants.split(",") if v]
        targets = [*harness.target_names(args.targets), *variants]
        stack = harness.Stack(Path(tmp), targets, model_dir=args.model_dir,
                              batch_max_size=args.batch_max_size,
                              batch_timeout_ms=args.batch_timeout_ms)
        with stack:
            rows = harness.measure(stack, cells, settings, pool)
            memory = stack.memory()
            startup = {name: t.startup_s for name, t in stack.by_name.items()}
            access_log = stack.access_log_lines("gateway") > 0
    top = max(int(c) for c in args.concurrency.split(","))
    checks = [*summary.batching_targets(rows, args.batch_timeout_ms, top),
              *summary.gateway_targets(rows, startup, memory, access_log=access_log)]
    table = "\n\n".join([
        summary.results_table(rows), summary.memory_table(startup, memory),
        summary.targets_table(checks),
        f"_Batching: `--batch-max-size {args.batch_max_size} --batch-timeout-ms "
        f"{args.batch_timeout_ms:g}`; {settings.rounds} interleaved rounds of "
        f"{settings.duration:g} s per cell; {harness.machine_note()}._",
    ])
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    harness.write_csv(rows, out / "results.csv")
    (out / "table.md").write_text(table + "\n")
    plot(rows, "rps", "requests / s", out / "throughput.png")
    plot(rows, "p99_ms", "p99 latency (ms)", out / "p99.png")
    print(table)
    print(f"\nwrote {out}/results.csv, table.md, throughput.png, p99.png")
    if args.readme is not None:
        if update_readme(args.readme, table):
            print(f"updated the benchmark table in {args.readme}")
        else:
            print(f"{args.readme} has no {MARK_START} / {MARK_END} lines", file=sys.stderr)
    return harness.exit_status(rows)


if __name__ == "__main__":
    raise SystemExit(main())
