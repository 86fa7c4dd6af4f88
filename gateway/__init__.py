"""tfserving-gateway: serve a TensorFlow SavedModel to gRPC and REST/JSON clients.

Importing ``gateway`` is light: ``export_savedmodel`` and ``publish`` load TensorFlow only
when called.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "export_savedmodel", "publish"]

_LAZY = {
    "export_savedmodel": "gateway.export",
    "publish": "gateway.repository",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gateway' has no attribute {name!r}")
