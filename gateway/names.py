"""Validation of user-supplied names (models, labels, signatures) before they reach gRPC or disk.

A name may never escape a model base path: no separators, no ``.``/``..``, no NUL, no
absolute paths. The same rule guards the gateway's routes and ``tfgw publish``.
"""

from __future__ import annotations

import re

from gateway.errors import InvalidInput

__all__ = ["validate_label", "validate_model_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}")


def _validate(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value in {".", ".."}:
        raise InvalidInput(
            f"invalid {kind} {value!r}: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit"
        )
    return value


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a safe model name, else raise ``InvalidInput``."""
    return _validate("model name", name)


def validate_label(label: str) -> str:
    """Return ``label`` if it is a safe version label (TF Serving labels are identifiers)."""
    return _validate("version label", label)
