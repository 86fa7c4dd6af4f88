"""Which of the versions on disk a ``model_version_policy`` wants served.

What is on disk is ``gateway.repository.layout.version_dirs``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["aspired_versions"]


def aspired_versions(policy: Any, available: set[int]) -> set[int]:
    """Apply a ``ModelVersionPolicy`` (latest N (default 1) / all / specific) to disk versions."""
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(available)
    if choice == "specific":
        return set(policy.specific.versions) & available
    count = max(policy.latest.num_versions, 1) if choice == "latest" else 1
    return set(sorted(available, reverse=True)[:count])
