"""tfserving-gateway: serve a TensorFlow SavedModel to gRPC and REST/JSON clients.

Map (more in docs/architecture.md):

- ``codec/``       JSON ↔ tensors: TF Serving / CloudML bodies (``predict``), responses
- ``service``      the transport-free core: decode → backend (``backend``, ``wire``) → encode
- ``http/``        the aiohttp edge: routes, middlewares, docs page, OpenAPI
- ``repository/``  files on disk: version dirs and models.config (``layout``), publish, export
- ``modelserver/`` the embedded TF-Serving-compatible gRPC server
- ``runtime``      where processes start and stop; ``commands/`` and ``cli`` parse flags

Importing ``gateway`` is light: ``export_savedmodel`` and ``publish`` load their modules
(and TensorFlow) only when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "export_savedmodel", "publish"]

_LAZY = {
    "export_savedmodel": "gateway.repository.export",
    "publish": "gateway.repository.publish",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gateway' has no attribute {name!r}")
