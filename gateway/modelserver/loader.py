"""Loading one SavedModel version with TensorFlow and running its signatures.

Everything here is synchronous and meant to run on executor threads (TF releases the GIL
while it computes). TensorFlow is imported lazily; ``configure_tensorflow`` keeps its
thread pools modest before the runtime starts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gateway.errors import Code, GatewayError, InvalidInput
from gateway.repository.layout import SAVED_MODEL_FILE, WARMUP_FILE

__all__ = [
    "LoadedVersion",
    "configure_tensorflow",
    "load_version",
    "read_warmup_records",
]

log = logging.getLogger(__name__)

MAX_WARMUP_RECORDS = 1000
_configured = threading.Lock()
_done: list[bool] = []


def configure_tensorflow(intra_op: int = 2, inter_op: int = 2) -> None:
    """Import TF once and cap its thread pools (must run before the first TF op)."""
    with _configured:
        if _done:
            return
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
        except RuntimeError:
            log.debug("TensorFlow runtime already initialised; thread pools unchanged")
        _done.append(True)


@dataclass
class LoadedVersion:
    """A loaded SavedModel: its stored SignatureDefs (all, as in ``saved_model.pb``, for
    metadata) and the callable signatures (``functions``; what requests may name)."""

    path: Path
    signature_defs: Mapping[str, Any]
    functions: Mapping[str, Any]
    _keepalive: Any = field(default=None, repr=False)

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Call a signature with numpy inputs keyed by alias; outputs keyed by alias."""
        import tensorflow as tf

        function = self.functions[signature_name]
        spec = self.signature_defs[signature_name]
        try:
            tensors = {
                alias: tf.convert_to_tensor(value, dtype=tf.as_dtype(spec.inputs[alias].dtype))
                for alias, value in inputs.items()
            }
            outputs = function(**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise _invalid(exc) from None
        except tf.errors.OpError as exc:
            raise GatewayError(_op_message(exc), code=Code(exc.error_code)) from None
        return {alias: value.numpy() for alias, value in outputs.items()}


def _op_message(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return message.split("\n\n")[0].strip()


def _invalid(exc: Exception) -> GatewayError:
    return InvalidInput(_op_message(exc))


def read_signature_defs(path: Path) -> dict[str, Any]:
    """SignatureDefs of the ``serve`` MetaGraph exactly as stored in ``saved_model.pb``."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((path / SAVED_MODEL_FILE).read_bytes())
    for meta_graph in saved.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise GatewayError(f"SavedModel at {path} has no MetaGraph tagged 'serve'")


def load_version(path: Path) -> LoadedVersion:
    """Load the SavedModel at ``path`` (tag ``serve``); raises on any failure."""
    import tensorflow as tf

    if not (path / SAVED_MODEL_FILE).is_file():
        raise GatewayError(
            f"Could not find SavedModel .pb at supplied export directory path: {path}",
            code=Code.NOT_FOUND,
        )
    signature_defs = read_signature_defs(path)
    loaded = tf.saved_model.load(str(path), tags=["serve"])
    return LoadedVersion(
        path=path,
        signature_defs=signature_defs,
        functions=dict(loaded.signatures),
        _keepalive=loaded,
    )


def read_warmup_records(path: Path) -> list[Any]:
    """PredictionLog records from ``assets.extra/tf_serving_warmup_requests`` (or none)."""
    warmup = path / WARMUP_FILE
    if not warmup.is_file():
        return []
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    records = []
    for raw in tf.data.TFRecordDataset(str(warmup)).take(MAX_WARMUP_RECORDS + 1):
        records.append(prediction_log_pb2.PredictionLog.FromString(raw.numpy()))
    if len(records) > MAX_WARMUP_RECORDS:
        raise GatewayError(f"too many warmup records (max {MAX_WARMUP_RECORDS}) in {warmup}")
    return records
