"""TF Serving warmup records from example requests.

TF Serving replays ``assets.extra/tf_serving_warmup_requests`` (a TFRecord file of
``PredictionLog`` protos) when it loads a version, so the first real request does not pay
for graph initialisation. The records are built from a JSON file holding one predict
body (``{"instances": [...]}`` or ``{"inputs": ...}``, optional ``signature_name``) or a
list of them. TensorFlow and the official ``tensorflow_serving.apis`` protos are imported
lazily (publishing already requires the ``server`` extra).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from gateway.errors import InvalidInput
from gateway.signatures import DEFAULT_SIGNATURE, Signature, TensorSpec

__all__ = ["WARMUP_FILE", "load_warmup_bodies", "prediction_logs", "write_warmup"]

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_RECORDS = 1000  # TF Serving reads at most this many warmup records


def load_warmup_bodies(path: str | Path) -> list[dict[str, Any]]:
    """The predict bodies in a warmup JSON file (an object or a list of objects)."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise InvalidInput(f"warmup file {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"warmup file {path}: invalid JSON: {exc}") from None
    bodies = data if isinstance(data, list) else [data]
    if not bodies or len(bodies) > MAX_RECORDS:
        raise InvalidInput(f"warmup file {path}: need 1..{MAX_RECORDS} request bodies")
    for body in bodies:
        if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
            raise InvalidInput(
                f"warmup file {path}: each body needs exactly one of 'instances' or 'inputs'"
            )
    return bodies


def _leaf(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list):
        return [_leaf(v) for v in value]
    return value


def _array(values: Any, spec: TensorSpec) -> Any:
    import numpy as np
    import tensorflow as tf

    dtype = tf.dtypes.as_dtype(spec.dtype)
    try:
        if dtype == tf.string:
            return np.array(_leaf(values), dtype=object)
        return np.asarray(values, dtype=dtype.as_numpy_dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"warmup input {spec.alias!r}: {exc}") from None


def _columns(body: Mapping[str, Any], sig: Signature) -> dict[str, Any]:
    """Input alias -> values (row format: batched over the instances)."""
    aliases = list(sig.inputs)
    if "inputs" in body:
        data = body["inputs"]
        return dict(data) if isinstance(data, dict) else {aliases[0]: data}
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("warmup 'instances' must be a non-empty list")
    keyed = all(isinstance(i, dict) and set(i) != {"b64"} for i in instances)
    if len(aliases) == 1 and not keyed:
        return {aliases[0]: instances}
    if not keyed:
        raise InvalidInput(f"warmup instances must be objects keyed by {aliases}")
    keys = set().union(*instances)
    return {a: [i.get(a) for i in instances] for a in keys}


def prediction_logs(
    bodies: Sequence[Mapping[str, Any]], signatures: Mapping[str, Signature], model_name: str
) -> list[bytes]:
    """Serialized official ``PredictionLog``s, one per body, validated against signatures."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    records = []
    for body in bodies:
        name = body.get("signature_name") or DEFAULT_SIGNATURE
        if name not in signatures:
            raise InvalidInput(f"warmup: no signature {name!r} (have {sorted(signatures)})")
        sig = signatures[name]
        columns = _columns(body, sig)
        unknown = set(columns) - set(sig.inputs)
        missing = set(sig.inputs) - set(columns)
        if unknown or missing:
            raise InvalidInput(f"warmup: unknown inputs {sorted(unknown)}, "
                               f"missing inputs {sorted(missing)}")
        log = prediction_log_pb2.PredictionLog()
        request = log.predict_log.request
        request.model_spec.name = model_name
        request.model_spec.signature_name = name
        for alias, values in columns.items():
            array = _array(values, sig.inputs[alias])
            request.inputs[alias].CopyFrom(tf.make_tensor_proto(array))
        records.append(log.SerializeToString())
    return records


def write_warmup(directory: Path, records: Sequence[bytes]) -> Path:
    """Write ``records`` as ``assets.extra/tf_serving_warmup_requests`` under ``directory``."""
    import tensorflow as tf

    target = directory / WARMUP_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(target)) as writer:
        for record in records:
            writer.write(record)
    return target
