"""``tfgw gateway`` with a differently tuned batcher, to measure the batching policy.

The shipped batcher sends a batch at once while no batch for its key is in flight
(``eager_inflight=1``); ``--eager-inflight 0`` always holds a batch's first request for
``--batch-timeout-ms`` (timer/size only), ``2`` lets two batches overlap. Otherwise the
same flags as ``tfgw gateway`` (and the same logging, so ``--access-log`` writes its
lines); the report's ``--variants 0`` runs it as target ``gateway-eager0``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.batching import Batcher, Send
from gateway.cli import build_parser
from gateway.config import GatewayConfig
from gateway.metrics import Metrics
from gateway.runtime import StopSignals, start_gateway


async def _main(config: GatewayConfig, eager_inflight: int) -> int:
    def batcher(send: Send, metrics: Metrics) -> Batcher:
        return Batcher(send, max_size=config.batch_max_size,
                       timeout_ms=config.batch_timeout_ms, metrics=metrics,
                       eager_inflight=eager_inflight)

    with StopSignals() as signals:
        server = await start_gateway(config, batcher=batcher)
        try:
            await signals.wait()
        finally:
            await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    eager = 0
    if "--eager-inflight" in argv:
        at = argv.index("--eager-inflight")
        eager = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2:]
    args = build_parser().parse_args(["gateway", *argv])
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(_main(GatewayConfig.from_args(args), eager))


if __name__ == "__main__":
    raise SystemExit(main())
