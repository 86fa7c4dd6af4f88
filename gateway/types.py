"""Value types shared by the core and its edges: which servable a request means, and what
the gateway knows of a loaded model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.signatures import Signature

__all__ = ["ModelEntry", "ModelRef"]


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Which servable: a model name plus an optional version number or label."""

    name: str
    version: int | None = None
    label: str | None = None

    def fill(self, spec: object, signature_name: str | None = None) -> None:
        """Write this reference (and ``signature_name``) into a ``ModelSpec`` message."""
        spec.name = self.name  # type: ignore[attr-defined]
        if self.version is not None:
            spec.version.value = self.version  # type: ignore[attr-defined]
        elif self.label is not None:
            spec.version_label = self.label  # type: ignore[attr-defined]
        if signature_name:
            spec.signature_name = signature_name  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ModelEntry:
    """One loaded model: its name, the version served by default and its signatures."""

    name: str
    version: int | None
    signatures: Mapping[str, Signature]
