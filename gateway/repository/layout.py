"""A TF Serving model base path on disk: version directories and ``models.config``.

The only place either is read or written. A model base path ``BASE/NAME`` holds numeric
version directories (``1``, ``2``, ...); anything else (a publisher's ``.tmp-*``, a
``latest`` symlink) is not a version. A directory that is itself a SavedModel counts as
version 1 of a base path of its own, so ``tfgw serve export/digits`` works like
``tfgw serve models/digits``. ``models.config`` is TF Serving's ModelServerConfig text
format; relative ``base_path`` values are taken from the config file's directory.
Every problem with either is a :class:`ModelConfigError` (400 / INVALID_ARGUMENT).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from google.protobuf import text_format

from gateway.errors import InvalidInput
from gateway.names import validate_label, validate_model_name
from gateway.pb import model_server_config_pb2

__all__ = [
    "CONFIG_FILE",
    "SAVED_MODEL_FILE",
    "WARMUP_FILE",
    "ModelConfigError",
    "ModelServerConfig",
    "fsync_dir",
    "is_savedmodel",
    "latest_version",
    "model_labels",
    "model_name_for",
    "read_model_config",
    "single_model_config",
    "validate_model_config",
    "version_dirs",
    "write_model_config",
]

ModelServerConfig = model_server_config_pb2.ModelServerConfig
CONFIG_FILE = "models.config"
SAVED_MODEL_FILE = "saved_model.pb"
SAVED_MODEL_TEXT_FILE = "saved_model.pbtxt"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
"""Where TF Serving looks for warmup records inside a version directory."""


class ModelConfigError(InvalidInput):
    """A ``models.config`` that cannot be read, parsed or served as written."""


# --- version directories -----------------------------------------------------------------


def is_savedmodel(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a SavedModel directory (binary or text ``saved_model``)."""
    path = Path(path)
    return (path / SAVED_MODEL_FILE).is_file() or (path / SAVED_MODEL_TEXT_FILE).is_file()


def version_dirs(base: str | os.PathLike[str]) -> dict[int, Path]:
    """Version number → directory: every numeric child directory of ``base`` (none if
    ``base`` is missing), or ``{1: base}`` when ``base`` is itself a SavedModel."""
    base = Path(base)
    if is_savedmodel(base):
        return {1: base}
    try:
        entries = list(os.scandir(base))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return {}
    return {
        int(entry.name): Path(entry.path)
        for entry in entries
        if entry.name.isdigit() and entry.name.isascii() and entry.is_dir()
    }


def latest_version(base: str | os.PathLike[str]) -> tuple[int, Path] | None:
    """The highest version and its directory (TF Serving's ``latest`` policy), if any."""
    found = version_dirs(base)
    return max(found.items()) if found else None


def model_name_for(path: str | os.PathLike[str]) -> str:
    """The model name a path implies: its basename; for a numeric version directory that
    is a SavedModel (``models/digits/3``), its parent's basename."""
    path = Path(path).resolve()
    if path.name.isdigit() and is_savedmodel(path):
        return path.parent.name
    return path.name


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a directory's entries (renames, new files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- models.config -----------------------------------------------------------------------


def read_model_config(path: str | os.PathLike[str], *, missing_ok: bool = False,
                      resolve: bool = True) -> ModelServerConfig:
    """Parse and validate ``path``; relative base paths are resolved against its directory
    (unless ``resolve=False``: for a read-modify-write that keeps them as written).

    ``missing_ok`` gives an empty config for a file that does not exist.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        if missing_ok:
            return ModelServerConfig()
        raise ModelConfigError(f"model config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelConfigError(f"cannot read model config file {path}: {exc}") from None
    config = ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ModelConfigError(f"{path}: invalid ModelServerConfig: {exc}") from None
    return validate_model_config(config, base_dir=path.parent if resolve else None,
                                 source=str(path))


def validate_model_config(config: ModelServerConfig, *, base_dir: Path | None = None,
                          source: str = "model config") -> ModelServerConfig:
    """Check names, labels, base paths and policies; resolve relative base paths against
    ``base_dir``; return ``config`` (changed in place)."""
    if config.WhichOneof("config") == "custom_model_config":
        raise ModelConfigError(f"{source}: custom_model_config is not supported; "
                               "use model_config_list")
    seen: set[str] = set()
    for model in config.model_config_list.config:
        _validate_model(model, seen, source)
        if base_dir is not None and not os.path.isabs(model.base_path):
            model.base_path = str(base_dir / model.base_path)
    return config


def _validate_model(model: model_server_config_pb2.ModelConfig, seen: set[str],
                    source: str) -> None:
    try:
        validate_model_name(model.name)
        for label in model.version_labels:
            validate_label(label)
    except InvalidInput as exc:
        raise ModelConfigError(f"{source}: {exc.message}") from None
    if model.name in seen:
        raise ModelConfigError(f"{source}: model {model.name!r} is configured twice")
    seen.add(model.name)
    if not model.base_path:
        raise ModelConfigError(f"{source}: model {model.name!r} has no base_path")
    platform = model.model_platform or "tensorflow"
    if platform != "tensorflow":
        raise ModelConfigError(
            f"{source}: model {model.name!r}: unsupported model_platform {platform!r}")
    policy = model.model_version_policy
    if policy.WhichOneof("policy_choice") == "latest" and policy.latest.num_versions < 0:
        raise ModelConfigError(
            f"{source}: model {model.name!r}: latest.num_versions must be positive")
    for label, version in model.version_labels.items():
        if version <= 0:
            raise ModelConfigError(
                f"{source}: model {model.name!r}: label {label!r} needs a positive version")


def single_model_config(name: str, base_path: str | os.PathLike[str]) -> ModelServerConfig:
    """A config serving one model from ``base_path`` (``--model_name``/``--model_base_path``)."""
    config = ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = os.path.abspath(base_path)
    model.model_platform = "tensorflow"
    return validate_model_config(config)


def model_labels(config: ModelServerConfig) -> dict[str, dict[str, int]]:
    """``{model name: {label: version}}`` of every configured model."""
    return {model.name: dict(model.version_labels) for model in config.model_config_list.config}


def write_model_config(path: str | os.PathLike[str], config: ModelServerConfig) -> None:
    """Replace ``path`` atomically (a reader sees the old file or the new one, whole)."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex}"
    try:
        with open(tmp, "w") as handle:
            handle.write(text_format.MessageToString(config))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
