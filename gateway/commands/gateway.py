"""``tfgw gateway --backend HOST:PORT``: the REST/JSON gateway in front of a gRPC backend.

TensorFlow-free: it imports only the codec, backend, service and HTTP modules. Runs until
SIGTERM/SIGINT, then stops accepting, drains in-flight requests and closes the channel.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from gateway.config import GatewayConfig, add_arguments
from gateway.errors import UsageError

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if not args.backends and not os.environ.get("TFGW_BACKEND"):
        raise UsageError("--backend HOST:PORT is required (or set TFGW_BACKEND)")
    try:
        config = GatewayConfig.from_args(args)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    from gateway.http.memory import limit_arenas

    limit_arenas()  # before gRPC starts its threads: flatter RSS (gateway.http.memory)
    try:
        return asyncio.run(_main(config))
    except OSError as exc:
        sys.stderr.write(f"tfgw gateway: error: cannot listen on {config.host}:{config.port}: "
                         f"{exc.strerror or exc}\n")
        return 1


async def _main(config: GatewayConfig) -> int:
    from gateway.runtime import StopSignals, describe_urls, start_gateway

    with StopSignals() as signals:
        server = await start_gateway(config)
        print(f"tfgw gateway: backend {', '.join(config.backends)}", flush=True)
        print(describe_urls(server.url, config.known_models()), flush=True)
        try:
            await signals.wait()
        finally:
            await server.stop()
    print("tfgw gateway: stopped", flush=True)
    return 0
