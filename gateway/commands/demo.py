"""``tfgw demo``: train a small digits model, export, publish, serve and query it three ways.

See :mod:`gateway.demo`. ``--export-only`` stops after publishing into
``WORKDIR/models/digits`` (what ``docker compose up`` serves).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from gateway.errors import UsageError

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=Path("."),
                        help="where models/digits/<version> is written (default: .)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help="gateway REST port (default 8089, or a free one if taken)")
    parser.add_argument("--grpc-port", type=int, default=None,
                        help="model server gRPC port (default 8500, or a free one if taken)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--keep-running", action="store_true",
                        help="keep serving after the comparison until Ctrl-C / SIGTERM")
    parser.add_argument("--export-only", action="store_true",
                        help="train, export and publish only (then `docker compose up`)")


def run(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    for flag in ("port", "grpc_port"):
        value = getattr(args, flag)
        if value is not None and not 0 <= value <= 65535:
            raise UsageError(f"--{flag.replace('_', '-')} must be between 0 and 65535")
    if args.keep_running and args.export_only:
        raise UsageError("--keep-running and --export-only exclude each other")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    _quiet_libraries()
    from gateway.client import ClientError
    from gateway.demo import DemoOptions, run_demo
    from gateway.errors import GatewayError

    options = DemoOptions(
        workdir=args.workdir, host=args.host, port=args.port, grpc_port=args.grpc_port,
        epochs=args.epochs, keep_running=args.keep_running, export_only=args.export_only,
    )
    try:
        return run_demo(options)
    except (GatewayError, ClientError, OSError) as exc:
        sys.stderr.write(f"tfgw demo: error: {exc}\n")
        return 1


def _quiet_libraries() -> None:
    """The demo narrates its own progress: keep TF/absl and model-server INFO lines out."""
    for name in ("tensorflow", "absl", "gateway.modelserver", "gateway.repository"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
