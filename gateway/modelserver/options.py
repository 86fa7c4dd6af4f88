"""Model server settings and the ``ModelServerConfig`` they describe.

Either one model (``model_name`` + ``model_base_path``, as ``tensorflow_model_server``'s
flags) or a ``models.config`` file in TF Serving's ModelServerConfig text format, parsed
with the official ``tensorflow_serving.config`` protos and protobuf's ``text_format``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import InvalidInput
from gateway.names import validate_model_name

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "ModelServerOptions",
    "build_server_config",
    "parse_config_text",
    "validate_server_config",
]

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


@dataclass
class ModelServerOptions:
    """How to run the embedded model server (``port=0`` picks a free port)."""

    model_name: str | None = None
    model_base_path: str | None = None
    model_config_file: str | None = None
    host: str = "0.0.0.0"
    port: int = 8500
    file_system_poll_wait_seconds: float = 1.0
    model_config_file_poll_wait_seconds: float = 0.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    predict_workers: int = 4
    load_workers: int = 2
    tf_intra_op_threads: int = 2
    tf_inter_op_threads: int = 2


def parse_config_text(text: str, source: str = "<config>") -> Any:
    """Parse ModelServerConfig text format; a syntax error becomes ``InvalidInput``."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise InvalidInput(f"{source}: invalid ModelServerConfig: {exc}") from None
    return validate_server_config(config, base_dir=Path(source).parent)


def validate_server_config(config: Any, base_dir: Path | None = None) -> Any:
    """Check names, base paths and policies; resolve relative base paths; return ``config``."""
    if config.WhichOneof("config") == "custom_model_config":
        raise InvalidInput("custom_model_config is not supported; use model_config_list")
    seen: set[str] = set()
    for model in config.model_config_list.config:
        validate_model_name(model.name)
        if model.name in seen:
            raise InvalidInput(f"model {model.name!r} is configured twice")
        seen.add(model.name)
        if not model.base_path:
            raise InvalidInput(f"model {model.name!r} has no base_path")
        if base_dir is not None and not os.path.isabs(model.base_path):
            model.base_path = str(base_dir / model.base_path)
        platform = model.model_platform or "tensorflow"
        if platform != "tensorflow":
            raise InvalidInput(f"model {model.name!r}: unsupported model_platform {platform!r}")
        _validate_policy(model)
    return config


def _validate_policy(model: Any) -> None:
    policy = model.model_version_policy
    if policy.WhichOneof("policy_choice") == "latest" and policy.latest.num_versions < 0:
        raise InvalidInput(f"model {model.name!r}: latest.num_versions must be positive")
    for label, version in model.version_labels.items():
        if version <= 0:
            raise InvalidInput(f"model {model.name!r}: label {label!r} needs a positive version")


def build_server_config(options: ModelServerOptions) -> Any:
    """The ModelServerConfig for ``options`` (from the file, or one model from the flags)."""
    from tensorflow_serving.config import model_server_config_pb2

    if options.model_config_file:
        if options.model_base_path:
            raise InvalidInput("use either --model-config-file or --model-base-path, not both")
        path = Path(options.model_config_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise InvalidInput(f"cannot read model config file {path}: {exc.strerror}") from None
        return parse_config_text(text, str(path))
    if not options.model_base_path:
        raise InvalidInput("either --model-config-file or --model-base-path is required")
    base = os.path.abspath(options.model_base_path)
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = options.model_name or "default"
    model.base_path = base
    model.model_platform = "tensorflow"
    return validate_server_config(config)
