"""Per-model version lifecycle: START → LOADING → AVAILABLE → UNLOADING → END.

The manager reconciles each configured model with its base path (on config changes and
every poll): it loads the versions the policy aspires to, and unloads the others only once
an aspired version is AVAILABLE (availability-preserving, as TF Serving's default), so a
new version takes over before the old one goes and a broken one (END, with its error in
the status) never takes the serving version down. Requests pin the version they resolved
(``use``) and an unload waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import Code, GatewayError, InvalidInput, NotFound
from gateway.modelserver.inference import replay_warmup
from gateway.modelserver.loader import LoadedVersion, load_version, read_warmup_records
from gateway.modelserver.versions import aspired_versions
from gateway.repository.layout import version_dirs

__all__ = ["ModelManager", "ModelSlot", "State", "VersionSlot"]

log = logging.getLogger(__name__)
UNLOAD_DRAIN_SECONDS = 30.0


class State(enum.IntEnum):
    """``ModelVersionStatus.State`` numbers."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass
class VersionSlot:
    version: int
    path: Path
    state: State = State.START
    error: GatewayError | None = None
    loaded: LoadedVersion | None = None
    in_flight: int = 0


@dataclass
class ModelSlot:
    config: Any  # tensorflow.serving.ModelConfig
    versions: dict[int, VersionSlot] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    removed: bool = False
    reconciled: bool = False  # its base path has been scanned (and loaded) at least once

    @property
    def name(self) -> str:
        return self.config.name

    def available(self) -> list[VersionSlot]:
        found = [s for s in self.versions.values() if s.state == State.AVAILABLE]
        return sorted(found, key=lambda s: s.version, reverse=True)

    def loading(self) -> bool:
        """Not scanned yet, or a version is on its way in (START/LOADING)."""
        return not self.reconciled or any(
            s.state in (State.START, State.LOADING) for s in self.versions.values()
        )


def _load_sync(path: Path, version: int) -> LoadedVersion:
    loaded = load_version(path)
    replay_warmup(loaded, read_warmup_records(path), version)
    return loaded


def _as_error(exc: BaseException) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    code = getattr(exc, "error_code", None)
    message = (getattr(exc, "message", None) or str(exc) or type(exc).__name__)[:2000]
    try:
        return GatewayError(message, code=Code(code) if code else Code.UNKNOWN)
    except ValueError:
        return GatewayError(message, code=Code.UNKNOWN)


class ModelManager:
    """Owns every model's versions; all methods run on the event loop thread."""

    def __init__(self, load_executor: Executor, on_change: Callable[[], None]) -> None:
        self._executor = load_executor
        self._on_change = on_change
        self._models: dict[str, ModelSlot] = {}

    @property
    def model_names(self) -> list[str]:
        return sorted(self._models)

    async def apply_config(self, config: Any) -> None:
        """Make the served models match ``config`` (ModelServerConfig) and reconcile them."""
        wanted = {model.name: model for model in config.model_config_list.config}
        for name in [n for n in self._models if n not in wanted]:
            await self._remove(self._models.pop(name))
        for name, model_config in wanted.items():
            slot = self._models.get(name)
            if slot is None:
                self._models[name] = ModelSlot(config=model_config)
            else:
                slot.config = model_config
        self._on_change()
        await asyncio.gather(*(self.reconcile(name) for name in wanted))

    async def reconcile_all(self, *, skip_busy: bool = True) -> None:
        """One poll: reconcile every model not already being reconciled."""
        names = [n for n, s in self._models.items() if not (skip_busy and s.lock.locked())]
        await asyncio.gather(*(self.reconcile(name) for name in names))

    async def reconcile(self, name: str) -> None:
        slot = self._models.get(name)
        if slot is None:
            return
        async with slot.lock:
            if slot.removed:
                return
            on_disk = version_dirs(slot.config.base_path)
            aspired = aspired_versions(slot.config.model_version_policy, set(on_disk))
            self._forget_vanished_failures(slot, on_disk)
            for version in sorted(aspired, reverse=True):
                await self._ensure_loaded(slot, version, on_disk[version])
            if not aspired or any(s.version in aspired for s in slot.available()):
                for version_slot in list(slot.versions.values()):
                    if version_slot.version not in aspired and version_slot.loaded is not None:
                        await self._unload(slot, version_slot)
            slot.reconciled = True

    @staticmethod
    def _forget_vanished_failures(slot: ModelSlot, on_disk: dict[int, Path]) -> None:
        for version, version_slot in list(slot.versions.items()):
            if version_slot.error is not None and version not in on_disk:
                del slot.versions[version]

    async def _ensure_loaded(self, slot: ModelSlot, version: int, path: Path) -> None:
        current = slot.versions.get(version)
        if current is not None and (current.loaded is not None or current.error is not None):
            return
        version_slot = VersionSlot(version=version, path=path)
        slot.versions[version] = version_slot
        self._set_state(slot, version_slot, State.LOADING)
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            loaded = await loop.run_in_executor(self._executor, _load_sync, path, version)
        except Exception as exc:  # any load failure is reported in the status
            version_slot.error = _as_error(exc)
            log.error("model %s version %d failed to load: %s", slot.name, version, exc)
            self._set_state(slot, version_slot, State.END)
            return
        version_slot.loaded = loaded
        log.info(
            "model %s version %d AVAILABLE (%.1fs)", slot.name, version, time.monotonic() - started
        )
        self._set_state(slot, version_slot, State.AVAILABLE)

    async def _unload(self, slot: ModelSlot, version_slot: VersionSlot) -> None:
        self._set_state(slot, version_slot, State.UNLOADING)
        deadline = time.monotonic() + UNLOAD_DRAIN_SECONDS
        while version_slot.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        version_slot.loaded = None
        log.info("model %s version %d unloaded", slot.name, version_slot.version)
        self._set_state(slot, version_slot, State.END)

    async def _remove(self, slot: ModelSlot) -> None:
        async with slot.lock:
            slot.removed = True
            for version_slot in list(slot.versions.values()):
                if version_slot.loaded is not None:
                    await self._unload(slot, version_slot)

    def _set_state(self, slot: ModelSlot, version_slot: VersionSlot, state: State) -> None:
        version_slot.state = state
        log.debug("model %s version %d → %s", slot.name, version_slot.version, state.name)
        self._on_change()

    async def close(self) -> None:
        """Unload every version (server shutdown)."""
        for name in list(self._models):
            await self._remove(self._models.pop(name))

    # --- request side -------------------------------------------------------------------

    def resolve(self, model_spec: Any) -> tuple[ModelSlot, VersionSlot]:
        """The AVAILABLE version a ModelSpec asks for (latest, number or label), or an error."""
        name = model_spec.name
        if not name:
            raise InvalidInput("ModelSpec has no name specified.")
        slot = self._models.get(name)
        choice = model_spec.WhichOneof("version_choice")
        if choice == "version_label":
            label = model_spec.version_label
            if slot is None or label not in slot.config.version_labels:
                raise InvalidInput(f"Unrecognized servable version label: {label}")
            version: int | None = slot.config.version_labels[label]
        else:
            version = model_spec.version.value if choice == "version" else None
        request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        candidates = slot.available() if slot is not None else []
        for version_slot in candidates:
            if version is None or version_slot.version == version:
                return slot, version_slot  # type: ignore[return-value]
        if version is None and slot is not None and not candidates and slot.loading():
            # TF Serving accepts no connection before its models load, so its clients see
            # UNAVAILABLE then; we listen earlier (health reports NOT_SERVING) and say so.
            raise GatewayError(
                f"Servable not available yet: {request} is still loading", Code.UNAVAILABLE
            )
        raise NotFound(f"Servable not found for request: {request}")

    @contextlib.contextmanager
    def use(self, version_slot: VersionSlot) -> Iterator[LoadedVersion]:
        """Pin a resolved version for the duration of one request."""
        loaded = version_slot.loaded
        if loaded is None:
            raise NotFound(f"Servable version {version_slot.version} is unloading")
        version_slot.in_flight += 1
        try:
            yield loaded
        finally:
            version_slot.in_flight -= 1

    def version_states(self, name: str, version: int | None = None) -> list[VersionSlot]:
        """Status rows as TF Serving's GetModelStatus (highest version first)."""
        slot = self._models.get(name)
        rows = sorted(slot.versions.values(), key=lambda s: -s.version) if slot else []
        if version is not None:
            rows = [row for row in rows if row.version == version]
            if not rows:
                raise NotFound(f"Could not find version {version} of model {name}")
        elif not rows:
            raise NotFound(f"Could not find any versions of model {name}")
        return rows

    def is_available(self, name: str) -> bool:
        slot = self._models.get(name)
        return bool(slot and slot.available())

    def all_available(self) -> bool:
        return bool(self._models) and all(self.is_available(n) for n in self._models)

    def settled(self) -> bool:
        """No version is loading or unloading and every model has been looked at once."""
        busy = (State.START, State.LOADING, State.UNLOADING)
        return all(
            not slot.lock.locked() and all(v.state not in busy for v in slot.versions.values())
            for slot in self._models.values()
        )

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {
            name: [
                {
                    "version": row.version,
                    "state": row.state.name,
                    "error": row.error.message if row.error else "",
                }
                for row in sorted(slot.versions.values(), key=lambda s: -s.version)
            ]
            for name, slot in sorted(self._models.items())
        }
