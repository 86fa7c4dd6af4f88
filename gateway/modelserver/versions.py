"""Which versions exist on disk and which of them a ``model_version_policy`` wants served.

A base path holds numeric version directories (anything else, e.g. ``.tmp-*`` left by a
publisher mid-copy, is ignored). A base path that is itself a SavedModel is version 1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gateway.modelserver.loader import SAVED_MODEL_FILE

__all__ = ["aspired_versions", "disk_versions"]


def disk_versions(base: Path) -> dict[int, Path]:
    """Version number → directory for every numeric child of ``base`` (none if missing)."""
    if (base / SAVED_MODEL_FILE).is_file():
        return {1: base}
    try:
        entries = list(os.scandir(base))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return {}
    found: dict[int, Path] = {}
    for entry in entries:
        if entry.name.isdigit() and entry.is_dir():
            found[int(entry.name)] = Path(entry.path)
    return found


def aspired_versions(policy: Any, available: set[int]) -> set[int]:
    """Apply a ``ModelVersionPolicy`` (latest N (default 1) / all / specific) to disk versions."""
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(available)
    if choice == "specific":
        return set(policy.specific.versions) & available
    count = max(policy.latest.num_versions, 1) if choice == "latest" else 1
    return set(sorted(available, reverse=True)[:count])
