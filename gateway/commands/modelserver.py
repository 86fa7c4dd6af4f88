"""``tfgw modelserver``: the embedded TF-Serving-compatible gRPC server.

Flags as ``tensorflow_model_server`` (dash and underscore spellings). Without
``--model-base-path``/``--model-config-file`` the docker image's environment is honoured:
``MODEL_NAME`` (default ``model``) served from ``${MODEL_BASE_PATH:-/models}/${MODEL_NAME}``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.errors import UsageError
from gateway.wire import MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from gateway.modelserver.options import ModelServerOptions

__all__ = ["configure", "options_from_args", "run"]

DEFAULT_PORT = 8500


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-name",
        "--model_name",
        dest="model_name",
        help="name of the model (default 'default', or $MODEL_NAME)",
    )
    parser.add_argument(
        "--model-base-path",
        "--model_base_path",
        dest="model_base_path",
        help="base path with numeric version dirs (or one SavedModel dir)",
    )
    parser.add_argument(
        "--model-config-file",
        "--model_config_file",
        dest="model_config_file",
        help="ModelServerConfig text file (models.config) for several models",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"gRPC port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument("--host", default="0.0.0.0", help="bind address (default 0.0.0.0)")
    parser.add_argument(
        "--file-system-poll-wait-seconds",
        "--file_system_poll_wait_seconds",
        dest="file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="seconds between base path polls (default 1; 0 = poll once)",
    )
    parser.add_argument(
        "--model-config-file-poll-wait-seconds",
        "--model_config_file_poll_wait_seconds",
        dest="model_config_file_poll_wait_seconds",
        type=float,
        default=0.0,
        help="seconds between re-reads of --model-config-file (default 0 = never), "
        "so labels written by `tfgw publish --label` take effect",
    )
    parser.add_argument(
        "--max-message-bytes",
        "--max_message_bytes",
        dest="max_message_bytes",
        type=_positive_int,
        default=MAX_MESSAGE_BYTES,
        help="max gRPC message size both ways (default 256 MiB)",
    )
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=10.0,
        help="how long SIGTERM waits for in-flight calls (default 10)",
    )


def options_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ModelServerOptions:
    """``ModelServerOptions`` from parsed flags, falling back to MODEL_NAME/MODEL_BASE_PATH."""
    from gateway.modelserver.options import ModelServerOptions

    env = os.environ if environ is None else environ
    name, base = args.model_name, args.model_base_path
    if args.model_config_file and (base or name):
        raise UsageError(
            "--model-config-file cannot be combined with --model-name/--model-base-path"
        )
    if not args.model_config_file and not base:
        if "MODEL_BASE_PATH" not in env and "MODEL_NAME" not in env:
            raise UsageError("one of --model-base-path or --model-config-file is required")
        name = name or env.get("MODEL_NAME") or "model"
        base = os.path.join(env.get("MODEL_BASE_PATH") or "/models", name)
    elif not args.model_config_file:
        name = name or env.get("MODEL_NAME")
    return ModelServerOptions(
        model_name=name or ("default" if base else None),
        model_base_path=base,
        model_config_file=args.model_config_file,
        host=args.host,
        port=args.port,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
        max_message_bytes=args.max_message_bytes,
    )


def _check_config(options: ModelServerOptions) -> None:
    """Fail fast (before TensorFlow loads) on a missing or malformed config."""
    from gateway.errors import GatewayError
    from gateway.modelserver.options import build_server_config

    if options.model_config_file and not os.path.isfile(options.model_config_file):
        raise UsageError(f"model config file not found: {options.model_config_file}")
    try:
        build_server_config(options)
    except GatewayError as exc:
        raise UsageError(exc.message) from None


async def _serve(options: ModelServerOptions, grace: float) -> int:
    from gateway.config import display_host
    from gateway.errors import GatewayError
    from gateway.modelserver import ModelServer
    from gateway.runtime import StopSignals

    with StopSignals() as signals:  # a signal before the loop took over: start, then stop
        server = ModelServer(options)
        try:
            port = await server.start()
        except GatewayError as exc:
            raise UsageError(exc.message.split(";")[0]) from None
        print(f"tfgw modelserver: gRPC on grpc://{display_host(options.host)}:{port} "
              f"(bound to {options.host})", flush=True)
        await signals.wait()
        print("tfgw modelserver: shutting down (draining in-flight calls)", flush=True)
        await server.stop(grace)
    return 0


def run(args: argparse.Namespace) -> int:
    from gateway.runtime import StopSignals

    options = options_from_args(args)
    _check_config(options)
    StopSignals.early()
    code = asyncio.run(_serve(options, args.grace_seconds))
    sys.stdout.flush()
    return code
