"""``tfgw``: the command line. Thin by design: each command lives in ``gateway.commands``.

Every command module exposes ``configure(parser)`` (its flags) and ``run(args) -> int``.
Command modules import nothing heavy at module level (TensorFlow only inside ``run``),
so ``tfgw --help`` and ``tfgw gateway`` stay fast and TensorFlow-free.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from gateway.errors import UsageError

DESCRIPTION = "Serve TensorFlow SavedModels to gRPC and REST/JSON clients."
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("gateway.commands.serve", "model server + gateway in one process (local use)"),
    "modelserver": ("gateway.commands.modelserver", "embedded TF-Serving-compatible gRPC server"),
    "gateway": ("gateway.commands.gateway", "REST/JSON gateway in front of a gRPC backend"),
    "publish": ("gateway.commands.publish", "publish a SavedModel as a new version"),
    "versions": ("gateway.commands.versions", "list the versions in a model base path"),
    "inspect": ("gateway.commands.inspect", "show a SavedModel's signatures"),
    "demo": ("gateway.commands.demo", "train, export, publish, serve and query a digits model"),
}


class _Parser(argparse.ArgumentParser):
    """Bad arguments end with one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The command named on the command line (the first word that is one), if any."""
    return next((arg for arg in argv if arg in COMMANDS), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``tfgw`` parser; only the chosen command's module is imported and configured.

    With ``argv=None`` every command is configured (for ``--help`` listings and tests).
    """
    chosen = None if argv is None else _chosen_command(argv)
    parser = _Parser(prog="tfgw", description=DESCRIPTION)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if chosen is None or name == chosen:
            module = importlib.import_module(module_name)
            module.configure(command_parser)
            command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        sys.stderr.write(f"tfgw {args.command}: error: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
