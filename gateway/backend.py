"""The gRPC backend client: TF Serving's PredictionService/ModelService over ``grpc.aio``.

Method paths and message types come from ``gateway.wire`` (bound by hand: the project's
protos live in their own package, so generated stubs would call the wrong paths).

Load balancing: one ``dns:///name:port`` target (a Kubernetes headless service) or a list of
IP targets become one channel with the ``round_robin`` policy; a list of host names becomes
one channel per host, picked in turn. Retries: gRPC's transparent retry (on by default)
resends only calls that never left the client; read-only ModelService/metadata calls
additionally retry UNAVAILABLE through the service config. Every call carries ``timeout=``.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from gateway.config import GatewayConfig
from gateway.errors import BackendUnavailable, Code, DeadlineExceeded, GatewayError
from gateway.wire import MAX_MESSAGE_BYTES, METHODS, MODEL_SERVICE, PREDICTION_SERVICE

__all__ = ["Backend", "BackendOptions", "grpc_error"]

@dataclass(frozen=True)
class BackendOptions:
    """Channel settings; TLS files are PEM paths."""

    max_message_bytes: int = MAX_MESSAGE_BYTES
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    keepalive_ms: int = 60_000  # pings only while calls are open (no too_many_pings)

    @classmethod
    def from_config(cls, config: GatewayConfig) -> BackendOptions:
        """The channel settings a gateway's configuration asks for."""
        return cls(
            max_message_bytes=config.max_message_bytes,
            tls=config.backend_tls,
            ca_file=config.backend_ca_file,
            cert_file=config.backend_cert_file,
            key_file=config.backend_key_file,
            server_name=config.backend_server_name,
        )


def _service_config() -> str:
    retry = {
        "maxAttempts": 3,
        "initialBackoff": "0.05s",
        "maxBackoff": "0.5s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    read_only = [
        {"service": MODEL_SERVICE, "method": "GetModelStatus"},
        {"service": PREDICTION_SERVICE, "method": "GetModelMetadata"},
    ]
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [{"name": read_only, "retryPolicy": retry}],
        }
    )


def _channel_options(options: BackendOptions) -> list[tuple[str, Any]]:
    opts: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", options.max_message_bytes),
        ("grpc.max_receive_message_length", options.max_message_bytes),
        ("grpc.keepalive_time_ms", options.keepalive_ms),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", _service_config()),
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 1_000),  # back within ~1.2 s (±20 % jitter)
    ]
    if options.server_name:
        opts.append(("grpc.ssl_target_name_override", options.server_name))
    return opts


def _credentials(options: BackendOptions) -> grpc.ChannelCredentials:
    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return grpc.ssl_channel_credentials(
        root_certificates=read(options.ca_file),
        private_key=read(options.key_file),
        certificate_chain=read(options.cert_file),
    )


def _is_ip_target(target: str) -> bool:
    host, _, port = target.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return port.isdigit()


def channel_targets(targets: Sequence[str]) -> list[str]:
    """Group the configured targets into channel targets (one ``ipv4:`` list if possible)."""
    targets = [t for t in targets if t]
    if not targets:
        raise ValueError("no backend target given")
    if len(targets) > 1 and all(_is_ip_target(t) for t in targets):
        return ["ipv4:" + ",".join(targets)]
    return list(targets)


def grpc_error(exc: grpc.aio.AioRpcError) -> GatewayError:
    """The backend's status as a ``GatewayError`` with the same code and message."""
    code = Code(exc.code().value[0])
    message = exc.details() or code.name
    if code == Code.UNAVAILABLE:
        return BackendUnavailable(f"backend unavailable: {message}")
    if code == Code.DEADLINE_EXCEEDED:
        return DeadlineExceeded(f"deadline exceeded: {message}")
    return GatewayError(message, code=code)


class Backend:
    """Unary calls to one logical backend; ``call()`` raises ``GatewayError`` only."""

    def __init__(self, targets: Sequence[str], options: BackendOptions | None = None) -> None:
        self.targets = tuple(targets)
        self.options = options or BackendOptions()
        self._channels = [self._open(t) for t in channel_targets(targets)]
        self._stubs = [
            {name: method.bind(channel) for name, method in METHODS.items()}
            for channel in self._channels
        ]
        self._turn = itertools.cycle(range(len(self._stubs)))

    def _open(self, target: str) -> grpc.aio.Channel:
        opts = _channel_options(self.options)
        if self.options.tls:
            return grpc.aio.secure_channel(target, _credentials(self.options), options=opts)
        return grpc.aio.insecure_channel(target, options=opts)

    async def call(self, method: str, request: Any, timeout: float | None) -> Any:
        """Call ``method`` (a ``METHODS`` key) with ``timeout`` seconds; map gRPC errors."""
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded("deadline exceeded before the backend was called")
        stub = self._stubs[next(self._turn)][method]
        try:
            return await stub(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise grpc_error(exc) from None

    async def predict(self, request: Any, timeout: float | None) -> Any:
        return await self.call("Predict", request, timeout)

    async def get_model_metadata(self, request: Any, timeout: float | None) -> Any:
        return await self.call("GetModelMetadata", request, timeout)

    async def get_model_status(self, request: Any, timeout: float | None) -> Any:
        return await self.call("GetModelStatus", request, timeout)

    async def close(self, grace: float | None = None) -> None:
        for channel in self._channels:
            await channel.close(grace)
