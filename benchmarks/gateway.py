"""Gateway benchmark (issues 5, 17): tfgw gateway vs direct gRPC, tutorial and floor gateways.

Throughput and p50/p99 at batch 1/32/256 of 784-float instances, concurrency 4 by
default, the four targets interleaved against one ``tfgw modelserver`` with the
MNIST-shaped model; plus each gateway's CPU time per request (its process CPU clock), RSS
and start-up time to first answer. Client, gateways and backend share the machine's
cores, so the numbers are relative, not absolute.

    .venv/bin/python benchmarks/gateway.py            # a couple of minutes
    .venv/bin/python benchmarks/gateway.py --smoke    # seconds; used by the test suite
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness, summary

TARGETS = ("grpc", "tutorial", "floor", "gateway")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_run_arguments(parser, rounds=3)
    parser.add_argument("--batches", default="1,32,256", help="comma-separated batch sizes")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    if args.smoke:
        args.batches, args.concurrency, args.rounds = "1,32", 2, 1
        args.duration, args.warmup, args.max_requests = 0.5, 0.2, 200
    args.out = args.out or harness.default_out(args.smoke)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cells = [(int(b), args.concurrency) for b in args.batches.split(",")]
    settings = harness.Settings(args.rounds, args.duration, args.warmup, args.max_requests,
                                args.clients)
    with (harness.temp_workdir() as tmp, harness.client_pool(args.clients) as pool,
          harness.Stack(Path(tmp), TARGETS, model_dir=args.model_dir) as stack):
        rows = harness.measure(stack, cells, settings, pool)
        memory = stack.memory()
        startup = {name: t.startup_s for name, t in stack.by_name.items()}
        access_log = stack.access_log_lines("gateway") > 0
    checks = summary.gateway_targets(rows, startup, memory, access_log=access_log)
    report = "\n\n".join([
        summary.results_table(rows), summary.memory_table(startup, memory),
        summary.targets_table(checks), f"_{harness.machine_note()}_",
    ])
    args.out.mkdir(parents=True, exist_ok=True)
    harness.write_csv(rows, args.out / "gateway.csv")
    (args.out / "gateway.md").write_text(report + "\n")
    print(report)
    return harness.exit_status(rows)


if __name__ == "__main__":
    raise SystemExit(main())
