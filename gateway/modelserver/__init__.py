"""Embedded TF-Serving-compatible gRPC model server (``tfgw modelserver``).

TensorFlow is imported lazily: importing this package is cheap; ``ModelServer.start()``
loads TensorFlow and the official ``tensorflow_serving`` protos.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ModelServer", "ModelServerOptions"]


def __getattr__(name: str) -> Any:
    if name == "ModelServer":
        from gateway.modelserver.server import ModelServer

        return ModelServer
    if name == "ModelServerOptions":
        from gateway.modelserver.options import ModelServerOptions

        return ModelServerOptions
    raise AttributeError(f"module 'gateway.modelserver' has no attribute {name!r}")
