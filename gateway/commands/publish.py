"""``tfgw publish SAVEDMODEL_DIR BASE/NAME``: add a SavedModel as the next version."""

from __future__ import annotations

import argparse
import sys

from gateway.errors import UsageError


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("savedmodel_dir", metavar="SAVEDMODEL_DIR", help="exported SavedModel")
    parser.add_argument("base_path", metavar="BASE/NAME", help="model base path to publish into")
    parser.add_argument("--version", type=_positive, help="version number (default: next free)")
    parser.add_argument("--label", help="version label to point at the new version")
    parser.add_argument("--keep", type=_positive, metavar="K",
                        help="keep the K newest versions (labelled ones are always kept)")
    parser.add_argument("--warmup", metavar="FILE.json",
                        help="write TF Serving warmup records from these example requests")
    parser.add_argument("--no-validate", action="store_true",
                        help="skip loading with TensorFlow (saved_model.pb is still checked)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from gateway.errors import GatewayError
    from gateway.repository.publish import publish

    try:
        result = publish(
            args.savedmodel_dir, args.base_path, version=args.version, label=args.label,
            keep=args.keep, warmup=args.warmup, progress=not args.quiet,
            validate=not args.no_validate,
        )
    except GatewayError as exc:
        raise UsageError(exc.message) from None
    label = f" (label {args.label})" if args.label else ""
    sys.stdout.write(f"published version {result.version}{label}: {result.path}\n")
    return 0
