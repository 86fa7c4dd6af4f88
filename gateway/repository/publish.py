"""The model repository: publish SavedModels as numbered versions of a TF Serving base path.

``publish`` validates an export, copies it into ``BASE/NAME/.tmp-<pid>-<hex>`` (fsyncing
every file and directory), then, holding an ``fcntl`` lock on ``BASE/NAME/.publish.lock``,
renames the finished copy onto the next free number. A polling server therefore sees a
version directory only when it is complete; a publisher killed at any moment leaves at
most a ``.tmp-*`` directory (ignored by numbering, removed once its owner is gone) and
its lock is released by the kernel. Labels live in ``BASE/models.config`` (TF Serving's
ModelServerConfig text format, replaced atomically), the file a ``--model_config_file``
server reads.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import Code, GatewayError, InvalidInput
from gateway.names import validate_label, validate_model_name
from gateway.pb import model_server_config_pb2
from gateway.repository.layout import (
    CONFIG_FILE,
    fsync_dir,
    is_savedmodel,
    read_model_config,
    version_dirs,
    write_model_config,
)
from gateway.repository.savedmodel import InvalidSavedModel, read_savedmodel
from gateway.signatures import Signature

__all__ = [
    "PublishError",
    "PublishResult",
    "VersionInfo",
    "publish",
    "versions",
]

LOCK_FILE = ".publish.lock"
TMP_PREFIX = ".tmp-"
STALE_SECONDS = 24 * 3600
_CHUNK = 1 << 20
_PROGRESS_MIN_BYTES = 8 << 20
_MAX_VERSION = 2**63 - 1


class PublishError(GatewayError):
    """Publishing refused: bad arguments, unsafe export, or an existing version."""

    code = Code.INVALID_ARGUMENT


@dataclass(frozen=True)
class PublishResult:
    version: int
    path: Path


@dataclass(frozen=True)
class VersionInfo:
    """One version directory as ``tfgw versions`` lists it."""

    number: int
    path: Path
    size: int
    labels: list[str] = field(default_factory=list)
    signatures: dict[str, str] = field(default_factory=dict)
    error: str | None = None


# --- filesystem helpers ------------------------------------------------------------------


def _numeric_versions(model_base: Path) -> list[int]:
    """The version numbers under a model base path, oldest first."""
    return sorted(version_dirs(model_base))


def _source_files(src: Path) -> list[tuple[Path, int]]:
    """Relative paths and sizes of every file to copy.

    Symlinks to files inside the export are copied as files; a symlink leaving the
    export, a symlinked directory or a special file is refused.
    """
    root = src.resolve()
    files: list[tuple[Path, int]] = []
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = path.relative_to(src)
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root) or not target.exists():
                    raise PublishError(f"refusing {rel}: symlink points outside the export")
                if target.is_dir():
                    raise PublishError(f"refusing {rel}: symlinked directory")
            mode = path.stat().st_mode
            if stat.S_ISREG(mode):
                files.append((rel, path.stat().st_size))
            elif not stat.S_ISDIR(mode):
                raise PublishError(f"refusing {rel}: not a regular file or directory")
    return files


def _copy_file(src: Path, dst: Path, advance: Callable[[int], None]) -> None:
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(_CHUNK):
            fout.write(chunk)
            advance(len(chunk))
        fout.flush()
        os.fsync(fout.fileno())


@contextlib.contextmanager
def _progress(total: int, enabled: bool, label: str) -> Iterator[Callable[[int], None]]:
    if not enabled or total < _PROGRESS_MIN_BYTES:
        yield lambda n: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _copy_tree(src: Path, dst: Path, *, progress: bool) -> None:
    files = _source_files(src)
    dirs = {dst}
    with _progress(sum(s for _, s in files), progress, f"copying {src.name}") as advance:
        for rel, _ in files:
            target = dst / rel
            for parent in reversed(target.relative_to(dst).parents):
                d = dst / parent
                if d not in dirs:
                    d.mkdir(exist_ok=True)
                    dirs.add(d)
            _copy_file(src / rel, target, advance)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(d)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(base: Path) -> None:
    """Delete ``.tmp-<pid>-*`` dirs whose publisher is gone (or that are a day old)."""
    for entry in base.iterdir():
        if not entry.name.startswith(TMP_PREFIX):
            continue
        pid_text = entry.name[len(TMP_PREFIX):].split("-", 1)[0]
        try:
            age = time.time() - entry.lstat().st_mtime
        except FileNotFoundError:
            continue
        alive = pid_text.isdigit() and _pid_alive(int(pid_text))
        if not alive or age > STALE_SECONDS:
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock; the kernel does it on SIGKILL too


def _remove_dir_atomically(path: Path) -> None:
    """Rename out of sight first, so readers never see a half-deleted version."""
    trash = path.parent / f"{TMP_PREFIX}{os.getpid()}-del-{uuid.uuid4().hex}"
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


# --- models.config -----------------------------------------------------------------------


def _model_entry(config: model_server_config_pb2.ModelServerConfig, name: str,
                 base_path: Path) -> model_server_config_pb2.ModelConfig:
    for entry in config.model_config_list.config:
        if entry.name == name:
            return entry
    entry = config.model_config_list.config.add()
    entry.name, entry.base_path, entry.model_platform = name, str(base_path), "tensorflow"
    return entry


def _sync_config(model_base: Path, label: str | None, version: int) -> set[int]:
    """Record ``label -> version`` and serve labelled + newest versions; labelled set back.

    TF Serving refuses a label on a version it does not serve, so an entry with labels
    gets a ``specific`` policy listing the labelled versions and the newest one. Without
    a label and without an existing entry nothing is written.
    """
    base, name = model_base.parent, model_base.name
    with _locked(base / f".{CONFIG_FILE}.lock"):
        config = read_model_config(base / CONFIG_FILE, missing_ok=True, resolve=False)
        known = any(e.name == name for e in config.model_config_list.config)
        if label is None and not known:
            return set()
        entry = _model_entry(config, name, model_base.resolve())
        if label is not None:
            entry.version_labels[label] = version
        labelled = set(entry.version_labels.values())
        if labelled:
            newest = max(_numeric_versions(model_base), default=version)
            policy = entry.model_version_policy.specific
            del policy.versions[:]
            policy.versions.extend(sorted(labelled | {newest}))
        write_model_config(base / CONFIG_FILE, config)
        return labelled


# --- publish -----------------------------------------------------------------------------


def _validate_with_tensorflow(src: Path) -> None:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(src))
    except Exception as exc:  # TF raises many types for a broken export
        raise InvalidSavedModel(f"{src}: TensorFlow cannot load it: {exc}") from None
    if not loaded.signatures:
        raise InvalidSavedModel(f"{src}: the SavedModel has no serving signatures")


def _check_source(src: Path, validate: bool) -> dict[str, Signature]:
    info = read_savedmodel(src)
    callable_sigs = {k: v for k, v in info.signatures.items() if not k.startswith("__")}
    if not callable_sigs:
        raise InvalidSavedModel(f"{src}: the SavedModel has no serving signatures")
    if validate:
        _validate_with_tensorflow(src)
    return callable_sigs


def _model_base(raw: str | os.PathLike[str]) -> Path:
    """``BASE/NAME`` as a Path, NAME validated on the text given (``Path`` drops a ``.``)."""
    text = os.fspath(raw)
    validate_model_name(text.rstrip("/").rsplit("/", 1)[-1])
    if is_savedmodel(text):
        raise PublishError(f"{text} is a SavedModel, not a model base path "
                           "(BASE/NAME, which holds numbered versions)")
    return Path(text)


def _check_args(version: int | None, label: str | None, keep: int | None) -> None:
    if label is not None:
        validate_label(label)
    if version is not None and not 1 <= version <= _MAX_VERSION:
        raise PublishError(f"version must be a positive integer, got {version}")
    if keep is not None and keep < 1:
        raise PublishError(f"keep must be at least 1, got {keep}")


def _claim_number(model_base: Path, staging: Path, version: int | None) -> Path:
    """Rename the finished copy onto its number (under the publish lock)."""
    with _locked(model_base / LOCK_FILE):
        existing = _numeric_versions(model_base)
        number = version if version is not None else (max(existing, default=0) + 1)
        final = model_base / str(number)
        if final.exists():
            raise PublishError(f"version {number} already exists at {final}",
                               code=Code.ALREADY_EXISTS)
        staging.rename(final)
        fsync_dir(model_base)
    return final


def _prune(model_base: Path, keep: int, protected: set[int]) -> list[int]:
    """Remove all but the ``keep`` highest versions and the ``protected`` ones."""
    with _locked(model_base / LOCK_FILE):
        numbers = _numeric_versions(model_base)
        kept = set(numbers[-keep:]) | protected
        doomed = [n for n in numbers if n not in kept]
        for number in doomed:
            _remove_dir_atomically(model_base / str(number))
    return doomed


def publish(
    savedmodel_dir: str | Path,
    base_model_path: str | Path,
    *,
    version: int | None = None,
    label: str | None = None,
    keep: int | None = None,
    warmup: str | Path | None = None,
    progress: bool = True,
    validate: bool = True,
) -> PublishResult:
    """Publish the SavedModel at ``savedmodel_dir`` as a new version of ``BASE/NAME``.

    ``validate=False`` skips loading with TensorFlow (the structural check of
    ``saved_model.pb`` still runs). Raises :class:`PublishError`/``InvalidSavedModel``.
    """
    src, model_base = Path(savedmodel_dir), _model_base(base_model_path)
    _check_args(version, label, keep)
    if not src.is_dir():
        raise InvalidSavedModel(f"{src}: no such directory")
    signatures = _check_source(src, validate)
    _source_files(src)  # refuse unsafe symlinks before touching the base path
    records = None
    if warmup is not None:
        from gateway.repository.warmup import load_warmup_bodies, prediction_logs

        records = prediction_logs(load_warmup_bodies(warmup), signatures, model_base.name)
    if not model_base.is_dir():
        model_base.mkdir(parents=True, exist_ok=True)
        fsync_dir(model_base.parent)
    _remove_stale_temps(model_base)
    staging = model_base / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        _copy_tree(src, staging, progress=progress)
        if records is not None:
            from gateway.repository.warmup import write_warmup

            warm = write_warmup(staging, records)
            with open(warm, "rb") as handle:
                os.fsync(handle.fileno())
            fsync_dir(warm.parent)
        final = _claim_number(model_base, staging, version)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    number = int(final.name)
    labelled = _sync_config(model_base, label, number)
    if keep is not None:
        _prune(model_base, keep, labelled | {number})
    return PublishResult(number, final)


# --- listing -----------------------------------------------------------------------------


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _signature_summary(path: Path) -> tuple[dict[str, str], str | None]:
    try:
        info = read_savedmodel(path)
    except InvalidInput as exc:
        return {}, exc.message
    summary = {}
    for name, sig in info.signatures.items():
        if name.startswith("__"):
            continue
        ins = ", ".join(f"{a}:{s.dtype_name}{list(s.shape or [])}" for a, s in sig.inputs.items())
        outs = ", ".join(f"{a}:{s.dtype_name}{list(s.shape or [])}"
                         for a, s in sig.outputs.items())
        summary[name] = f"({ins}) -> ({outs})"
    return summary, None


def versions(base_model_path: str | Path) -> list[VersionInfo]:
    """Every numeric version under ``BASE/NAME``, oldest first, with labels from config."""
    model_base = Path(base_model_path)
    if not model_base.is_dir():
        raise PublishError(f"{model_base}: no such model base path", code=Code.NOT_FOUND)
    labels: dict[int, list[str]] = {}
    config = read_model_config(model_base.parent / CONFIG_FILE, missing_ok=True)
    for entry in config.model_config_list.config:
        if entry.name == model_base.name:
            for label, number in sorted(entry.version_labels.items()):
                labels.setdefault(number, []).append(label)
    result = []
    for number in _numeric_versions(model_base):
        path = model_base / str(number)
        summary, error = _signature_summary(path)
        result.append(VersionInfo(number, path, _dir_size(path), labels.get(number, []),
                                  summary, error))
    return result
