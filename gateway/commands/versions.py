"""``tfgw versions BASE/NAME``: versions, sizes, labels and signatures of a model."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from gateway.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base_path", metavar="BASE/NAME", help="model base path")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def run(args: argparse.Namespace) -> int:
    import orjson

    from gateway.errors import GatewayError
    from gateway.repository.publish import versions

    try:
        infos = versions(args.base_path)
    except GatewayError as exc:
        raise UsageError(exc.message) from None
    if args.json:
        rows = [{**dataclasses.asdict(i), "path": str(i.path)} for i in infos]
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not infos:
        sys.stdout.write(f"{args.base_path}: no versions\n")
    for info in infos:
        labels = f"  labels: {', '.join(info.labels)}" if info.labels else ""
        sys.stdout.write(f"{info.number}  {_size(info.size)}{labels}  {info.path}\n")
        if info.error:
            sys.stdout.write(f"    error: {info.error}\n")
        for name, summary in info.signatures.items():
            sys.stdout.write(f"    {name}: {summary}\n")
    return 0
