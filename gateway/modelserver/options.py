"""Model server settings and the ``ModelServerConfig`` they describe.

Either one model (``model_name`` + ``model_base_path``, as ``tensorflow_model_server``'s
flags) or a ``models.config`` file in TF Serving's ModelServerConfig text format, read by
``gateway.repository.layout`` (the project's wire-identical protos).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.repository.layout import (
    ModelConfigError,
    ModelServerConfig,
    read_model_config,
    single_model_config,
)
from gateway.wire import MAX_MESSAGE_BYTES

__all__ = ["ModelServerOptions", "build_server_config"]


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
    max_message_bytes: int = MAX_MESSAGE_BYTES
    predict_workers: int = 4
    load_workers: int = 2
    tf_intra_op_threads: int = 2
    tf_inter_op_threads: int = 2


def build_server_config(options: ModelServerOptions) -> ModelServerConfig:
    """The ModelServerConfig for ``options`` (from the file, or one model from the flags);
    any problem is a ``ModelConfigError``."""
    if options.model_config_file:
        if options.model_base_path:
            raise ModelConfigError(
                "use either --model-config-file or --model-base-path, not both")
        return read_model_config(options.model_config_file)
    if not options.model_base_path:
        raise ModelConfigError("either --model-config-file or --model-base-path is required")
    return single_model_config(options.model_name or "default", options.model_base_path)
