"""Gateway settings: one dataclass, filled from flags, ``TFGW_*`` env and Vertex AI env.

Precedence: command-line flag > ``TFGW_*`` variable > default. Vertex AI custom containers
set ``AIP_HTTP_PORT``/``AIP_PREDICT_ROUTE``/``AIP_HEALTH_ROUTE``; when present they win over
the defaults (the platform decides the port and probe paths). Tokens are kept out of
``repr`` so a logged config never leaks them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gateway.repository.layout import ModelConfigError, model_labels, read_model_config
from gateway.wire import MAX_MESSAGE_BYTES

__all__ = [
    "MIB",
    "GatewayConfig",
    "add_arguments",
    "display_host",
    "parse_duration",
]

MIB = 1024 * 1024


@dataclass(frozen=True)
class GatewayConfig:
    """Everything ``create_app``/``Backend``/``Service`` need; no globals anywhere."""

    backends: tuple[str, ...] = ("127.0.0.1:8500",)
    host: str = "0.0.0.0"
    port: int = 8501
    default_model: str | None = None
    models: tuple[str, ...] = ()
    model_labels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    model_config_file: str | None = None
    request_timeout: float = 30.0
    max_request_timeout: float = 300.0
    max_body_bytes: int = 32 * MIB
    max_decompressed_bytes: int = 64 * MIB
    max_instances: int | None = 65536
    cors_origins: tuple[str, ...] = ()
    tokens: tuple[str, ...] = field(default=(), repr=False)
    backend_tls: bool = False
    backend_ca_file: str | None = None
    backend_cert_file: str | None = None
    backend_key_file: str | None = None
    backend_server_name: str | None = None
    max_message_bytes: int = MAX_MESSAGE_BYTES
    metadata_ttl: float = 30.0
    gzip_min_bytes: int = 1024
    batch_max_size: int = 0
    batch_timeout_ms: float = 2.0
    batch_models: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    predict_route: str | None = None
    health_route: str | None = None
    shutdown_grace: float = 10.0
    access_log: bool = True

    @property
    def batching(self) -> bool:
        """Whether any model is batched (globally or by a per-model setting)."""
        return self.batch_max_size > 1 or any(m > 1 for m, _ in self.batch_models.values())

    def batch_setting(self, model: str) -> tuple[int, float]:
        """``(max_size, timeout_ms)`` for ``model``: its own setting, else the global one."""
        return self.batch_models.get(model, (self.batch_max_size, self.batch_timeout_ms))

    def known_models(self) -> tuple[str, ...]:
        names = list(self.models)
        names += [n for n in self.model_labels if n not in names]
        return tuple(names)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> GatewayConfig:
        """Defaults, then ``TFGW_*``/``AIP_*`` from ``env``, then ``overrides``."""
        env = os.environ if env is None else env
        values = _env_values(env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**values)
        if config.model_config_file:
            config = config.with_model_config(config.model_config_file)
        return config

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, env: Mapping[str, str] | None = None
    ) -> GatewayConfig:
        """Flags added by :func:`add_arguments` (``None`` = not given) over env."""
        names = {f.name for f in fields(cls)}
        overrides = {k: v for k, v in vars(args).items() if k in names and v is not None}
        for key in ("backends", "models", "cors_origins"):
            if key in overrides:
                overrides[key] = _split_list(overrides[key])
        if "batch_models" in overrides:
            overrides["batch_models"] = parse_batch_models(overrides["batch_models"])
        token_file = getattr(args, "token_file", None)
        if token_file:
            overrides["tokens"] = read_tokens(token_file)
        return cls.from_env(env, **overrides)

    def with_model_config(self, path: str) -> GatewayConfig:
        """Add the model names and labels a ``models.config`` file lists."""
        try:
            labels = model_labels(read_model_config(path))
        except ModelConfigError as exc:
            raise ValueError(exc.message) from None
        models = tuple(dict.fromkeys([*self.models, *labels]))
        merged = {**labels, **self.model_labels}
        return replace(self, models=models, model_labels=merged, model_config_file=path)


def display_host(host: str) -> str:
    """The address to show a user for a listening ``host`` (wildcards → 127.0.0.1)."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def read_tokens(path: str | Path) -> tuple[str, ...]:
    """Bearer tokens, one per line (blank lines and ``#`` comments ignored)."""
    lines = Path(path).read_text().splitlines()
    return tuple(t.strip() for t in lines if t.strip() and not t.strip().startswith("#"))


def parse_duration(text: str) -> float:
    """Seconds from ``"2.5"`` or a gRPC ``grpc-timeout`` value such as ``"100m"``/``"5S"``."""
    text = text.strip()
    units = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
    scale = units.get(text[-1:]) if text else None
    number = text[:-1] if scale is not None else text
    value = float(number) * (scale or 1.0)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"invalid timeout {text!r}")
    return value


def parse_batch_models(value: str | Sequence[str]) -> dict[str, tuple[int, float]]:
    """``NAME=MAX[:TIMEOUT_MS]`` items (comma list or repeated) → per-model batch settings.

    ``MAX`` of 0 or 1 turns batching off for that model; the timeout defaults to 2 ms.
    """
    settings: dict[str, tuple[int, float]] = {}
    for item in _split_list(value):
        name, sep, spec = item.partition("=")
        size, _, timeout = spec.partition(":")
        try:
            if not sep or not name:
                raise ValueError
            settings[name] = (int(size), float(timeout) if timeout else 2.0)
        except ValueError:
            raise ValueError(
                f"bad per-model batch setting {item!r}: use NAME=MAX_SIZE[:TIMEOUT_MS]"
            ) from None
        if settings[name][0] < 0 or settings[name][1] < 0:
            raise ValueError(f"bad per-model batch setting {item!r}: negative value")
    return settings


def _split_list(value: str | Sequence[str]) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value)
    return tuple(p.strip() for item in items for p in item.split(",") if p.strip())


def _flag(value: str) -> bool:
    return value.lower() in {"1", "true", "yes", "on"}


_ENV: dict[str, tuple[str, Any]] = {
    "TFGW_BACKEND": ("backends", _split_list),
    "TFGW_HOST": ("host", str),
    "TFGW_PORT": ("port", int),
    "TFGW_DEFAULT_MODEL": ("default_model", str),
    "TFGW_MODELS": ("models", _split_list),
    "TFGW_MODEL_CONFIG_FILE": ("model_config_file", str),
    "TFGW_REQUEST_TIMEOUT": ("request_timeout", float),
    "TFGW_MAX_REQUEST_TIMEOUT": ("max_request_timeout", float),
    "TFGW_MAX_BODY_BYTES": ("max_body_bytes", int),
    "TFGW_MAX_DECOMPRESSED_BYTES": ("max_decompressed_bytes", int),
    "TFGW_MAX_INSTANCES": ("max_instances", int),
    "TFGW_CORS_ORIGINS": ("cors_origins", _split_list),
    "TFGW_TOKENS": ("tokens", _split_list),
    "TFGW_BACKEND_TLS": ("backend_tls", _flag),
    "TFGW_BACKEND_CA_FILE": ("backend_ca_file", str),
    "TFGW_BACKEND_CERT_FILE": ("backend_cert_file", str),
    "TFGW_BACKEND_KEY_FILE": ("backend_key_file", str),
    "TFGW_BACKEND_SERVER_NAME": ("backend_server_name", str),
    "TFGW_MAX_MESSAGE_BYTES": ("max_message_bytes", int),
    "TFGW_METADATA_TTL": ("metadata_ttl", float),
    "TFGW_BATCH_MAX_SIZE": ("batch_max_size", int),
    "TFGW_BATCH_TIMEOUT_MS": ("batch_timeout_ms", float),
    "TFGW_BATCH_MODELS": ("batch_models", parse_batch_models),
    "TFGW_ACCESS_LOG": ("access_log", _flag),
    "AIP_HTTP_PORT": ("port", int),
    "AIP_PREDICT_ROUTE": ("predict_route", str),
    "AIP_HEALTH_ROUTE": ("health_route", str),
}


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for var, (name, convert) in _ENV.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        try:
            values[name] = convert(raw)
        except ValueError as exc:
            raise ValueError(f"bad value for {var}: {exc}") from None
    token_file = env.get("TFGW_TOKEN_FILE")
    if token_file and "tokens" not in values:
        values["tokens"] = read_tokens(token_file)
    return values


def add_arguments(parser: argparse.ArgumentParser, *, serve: bool = False) -> None:
    """Gateway flags shared by ``tfgw gateway`` and ``tfgw serve`` (defaults via config)."""
    if not serve:
        parser.add_argument(
            "--backend", dest="backends", action="append", metavar="TARGET",
            help="gRPC backend: HOST:PORT, dns:///svc:8500, or several (repeat / comma list)",
        )
        parser.add_argument("--host", default=None, help="listen address (default 0.0.0.0)")
        parser.add_argument("--port", type=int, default=None, help="REST port (default 8501)")
        parser.add_argument(
            "--model", dest="models", action="append", metavar="NAME",
            help="a model name the backend serves (repeatable)",
        )
        parser.add_argument("--model-config-file", "--model_config_file", default=None,
                            help="TF Serving models.config: model names and version labels")
    parser.add_argument("--default-model", default=None,
                        help="model answering /{signature}/predict (default: the only one)")
    parser.add_argument("--request-timeout", type=float, default=None,
                        help="default per-request deadline in seconds (default 30)")
    parser.add_argument("--max-body-bytes", type=int, default=None,
                        help="largest request body accepted (default 32 MiB)")
    parser.add_argument("--max-instances", type=int, default=None,
                        help="most instances per predict request (default 65536)")
    parser.add_argument("--cors-origin", dest="cors_origins", action="append", default=None,
                        help="allowed CORS origin (repeatable; '*' for any; default off)")
    parser.add_argument("--token-file", default=None,
                        help="file of bearer tokens, one per line (or env TFGW_TOKENS)")
    parser.add_argument("--batch-max-size", type=int, default=None,
                        help="batch concurrent predict requests up to this many (default off)")
    parser.add_argument("--batch-timeout-ms", type=float, default=None,
                        help="longest wait to fill a batch (default 2 ms)")
    parser.add_argument("--batch-model", dest="batch_models", action="append", default=None,
                        metavar="NAME=MAX[:MS]",
                        help="per-model batching, overriding --batch-max-size/--batch-timeout-ms"
                        " (repeatable; MAX 0 turns it off for that model)")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=None,
                        help="one JSON line per request on the gateway.access logger at INFO "
                        "(default on; off saves ~20-40 µs of CPU per request)")
    if not serve:
        parser.add_argument("--backend-tls", action="store_true", default=None,
                            help="use TLS to the backend")
        parser.add_argument("--backend-ca-file", default=None, help="CA bundle for backend TLS")
        parser.add_argument("--backend-cert-file", default=None,
                            help="client certificate (PEM) for mutual TLS")
        parser.add_argument("--backend-key-file", default=None,
                            help="client private key (PEM) for mutual TLS")
        parser.add_argument("--backend-server-name", default=None,
                            help="TLS server name to verify, if not the target host")
        parser.add_argument("--max-message-bytes", type=int, default=None,
                            help="gRPC message size limit (default 256 MiB)")
