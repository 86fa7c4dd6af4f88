"""TF Serving warmup records from example requests.

TF Serving replays ``assets.extra/tf_serving_warmup_requests`` (a TFRecord file of
``PredictionLog`` protos) when it loads a version, so the first real request does not pay
for graph initialisation. The records are built from a JSON file holding one predict
body (``{"instances": [...]}`` or ``{"inputs": ...}``, optional ``signature_name``) or a
list of them. TensorFlow and the official ``tensorflow_serving.apis`` protos are imported
lazily (publishing already requires the ``server`` extra).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from gateway import codec
from gateway.errors import InvalidInput
from gateway.pb import predict_pb2
from gateway.repository.layout import WARMUP_FILE
from gateway.signatures import DEFAULT_SIGNATURE, Signature
from gateway.tensors import fill_tensor_proto

__all__ = ["load_warmup_bodies", "prediction_logs", "write_warmup"]

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


def prediction_logs(
    bodies: Sequence[Mapping[str, Any]], signatures: Mapping[str, Signature], model_name: str
) -> list[bytes]:
    """Serialized official ``PredictionLog``s, one per body, decoded by the gateway's codec.

    The same JSON rules as a live request apply (``gateway.codec``); the project's
    ``PredictRequest`` is wire-identical to the official one, so its bytes are the log's
    ``predict_log.request``.
    """
    from tensorflow_serving.apis import prediction_log_pb2

    records = []
    for index, body in enumerate(bodies):
        try:
            request = _predict_request(body, signatures, model_name)
        except InvalidInput as exc:
            raise InvalidInput(f"warmup request {index}: {exc.message}") from None
        log = prediction_log_pb2.PredictionLog()
        log.predict_log.request.ParseFromString(request.SerializeToString())
        records.append(log.SerializeToString())
    return records


def _predict_request(
    body: Mapping[str, Any], signatures: Mapping[str, Signature], model_name: str
) -> predict_pb2.PredictRequest:
    parsed = codec.read_predict_body(orjson.dumps(body))
    name = parsed.signature_name or DEFAULT_SIGNATURE
    if name not in signatures:
        raise InvalidInput(f"no signature {name!r} (have {sorted(signatures)})")
    sig = signatures[name]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = name
    for alias, array in codec.decode_predict_inputs(parsed, sig).items():
        fill_tensor_proto(request.inputs[alias], array, sig.inputs[alias].dtype)
    return request


def write_warmup(directory: Path, records: Sequence[bytes]) -> Path:
    """Write ``records`` as ``assets.extra/tf_serving_warmup_requests`` under ``directory``."""
    import tensorflow as tf

    target = directory / WARMUP_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(target)) as writer:
        for record in records:
            writer.write(record)
    return target
