"""Read a SavedModel's signatures without TensorFlow, describe them, and log the graph.

``saved_model.pb`` is a ``SavedModel`` proto: ``meta_graphs`` (field 2) of ``MetaGraphDef``
whose ``meta_info_def.tags`` (1.4) pick the ``serve`` graph and whose ``signature_def``
map (field 5) holds ``SignatureDef`` messages. We walk those few fields straight off the
wire and parse the SignatureDefs with the project's wire-identical ``meta_graph_pb2``:
importing TensorFlow's own ``saved_model_pb2`` initialises all of TensorFlow (~5 s),
which ``tfgw inspect`` and ``tfgw versions`` should not pay. Only :func:`write_graph_log`
imports TensorFlow (lazily).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.codec.samples import example_request
from gateway.errors import Code, InvalidInput
from gateway.pb import meta_graph_pb2
from gateway.repository.layout import SAVED_MODEL_FILE, is_savedmodel, latest_version
from gateway.signatures import (
    Signature,
    TensorSpec,
    signatures_from_signature_defs,
)

__all__ = [
    "InvalidSavedModel",
    "SavedModelInfo",
    "describe",
    "read_savedmodel",
    "resolve_savedmodel_dir",
    "write_graph_log",
]

SERVE_TAG = "serve"


class InvalidSavedModel(InvalidInput):
    """The directory is not a usable SavedModel (missing, unreadable, no serve graph)."""

    code = Code.FAILED_PRECONDITION


@dataclass(frozen=True)
class SavedModelInfo:
    """What ``tfgw inspect`` shows: the serve graph's signatures and the tag sets present."""

    path: Path
    tag_sets: list[list[str]]
    tensorflow_version: str
    signatures: dict[str, Signature] = field(default_factory=dict)


# --- minimal protobuf wire walking -------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(field_number, wire_type, value)``; length-delimited values are bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(buf, pos)
        elif wire_type == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire_type == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire_type == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        if pos > len(buf):
            raise ValueError("truncated message")
        yield number, wire_type, value


def _meta_graph(buf: bytes) -> tuple[list[str], str, dict[str, meta_graph_pb2.SignatureDef]]:
    tags: list[str] = []
    version = ""
    defs: dict[str, meta_graph_pb2.SignatureDef] = {}
    for number, wire_type, value in _fields(buf):
        if number == 1 and wire_type == 2:  # meta_info_def
            for sub, sub_type, sub_value in _fields(value):
                if sub == 4 and sub_type == 2:
                    tags.append(sub_value.decode())
                elif sub == 5 and sub_type == 2:
                    version = sub_value.decode()
        elif number == 5 and wire_type == 2:  # signature_def map entry
            entry = {n: v for n, t, v in _fields(value) if t == 2}
            defs[entry.get(1, b"").decode()] = meta_graph_pb2.SignatureDef.FromString(
                entry.get(2, b"")
            )
    return tags, version, defs


# --- public API --------------------------------------------------------------------------


def resolve_savedmodel_dir(path: str | Path) -> Path:
    """``path`` itself when it is a SavedModel, else its latest numeric version."""
    path = Path(path)
    if not path.is_dir():
        raise InvalidSavedModel(f"{path}: no such directory")
    latest = latest_version(path)
    if latest is None or not is_savedmodel(latest[1]):
        raise InvalidSavedModel(
            f"{path}: neither a SavedModel (no saved_model.pb) nor a base path with versions"
        )
    return latest[1]


def read_savedmodel(path: str | Path) -> SavedModelInfo:
    """Signatures of the ``serve`` meta graph of the SavedModel at ``path`` (TF-free)."""
    path = Path(path)
    try:
        data = (path / SAVED_MODEL_FILE).read_bytes()
    except OSError as exc:
        raise InvalidSavedModel(f"{path}: cannot read saved_model.pb: {exc.strerror}") from None
    tag_sets: list[list[str]] = []
    serve: tuple[str, dict[str, meta_graph_pb2.SignatureDef]] | None = None
    try:
        for number, wire_type, value in _fields(data):
            if number == 2 and wire_type == 2:
                tags, version, defs = _meta_graph(value)
                tag_sets.append(tags)
                if serve is None and SERVE_TAG in tags:
                    serve = (version, defs)
    except Exception as exc:  # malformed protobuf of any kind
        raise InvalidSavedModel(f"{path}: saved_model.pb is not a SavedModel: {exc}") from None
    if serve is None:
        raise InvalidSavedModel(f"{path}: no meta graph tagged 'serve' (tags: {tag_sets})")
    version, defs = serve
    return SavedModelInfo(path, tag_sets, version, signatures_from_signature_defs(defs))


def _shape_text(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "unknown_rank"
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _spec_lines(kind: str, specs: Mapping[str, TensorSpec]) -> list[str]:
    lines = [f"  The given SavedModel SignatureDef contains the following {kind}(s):"]
    for spec in specs.values():
        lines += [
            f"    {kind}s['{spec.alias}'] tensor_info:",
            f"        dtype: {spec.dtype_name}",
            f"        shape: {_shape_text(spec.shape)}",
            f"        name: {spec.name}",
        ]
    return lines


def describe(info: SavedModelInfo, *, examples: bool = True) -> str:
    """Text in the layout of ``saved_model_cli show --all``, plus an example request."""
    import orjson

    lines = [
        f"SavedModel {info.path} (TensorFlow {info.tensorflow_version or 'unknown'})",
        f"MetaGraphDef with tag-set: {', '.join(repr(t) for t in info.tag_sets[0])} "
        "contains the following SignatureDefs:"
        if info.tag_sets
        else "",
    ]
    for sig in info.signatures.values():
        if sig.name.startswith("__"):
            continue  # __saved_model_init_op: not callable by clients
        lines.append("")
        lines.append(f"signature_def['{sig.name}']:")
        lines += _spec_lines("input", sig.inputs)
        lines += _spec_lines("output", sig.outputs)
        lines.append(f"  Method name is: {sig.method_name}")
        if examples:
            body = orjson.dumps(example_request(sig)).decode()
            lines.append(f"  Example request body: {body}")
    return "\n".join(lines)


def write_graph_log(path: str | Path, logdir: str | Path) -> Path:
    """Write the serving signatures' graphs as a TensorBoard log (``tensorboard --logdir``).

    Returns ``logdir``. Imports TensorFlow (the seed's ``view_savedmodel()``); writing
    needs only TensorFlow, viewing needs the ``tensorboard`` package.
    """
    import tensorflow as tf

    path, logdir = resolve_savedmodel_dir(path), Path(logdir)
    loaded = tf.saved_model.load(str(path))
    logdir.mkdir(parents=True, exist_ok=True)
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for _, function in sorted(loaded.signatures.items()):
            tf.summary.graph(function.graph)
    writer.flush()
    writer.close()
    return logdir
