"""JSON ↔ tensors: the gateway's request and response dialects, transport-free.

One module per concern: ``predict`` (TF Serving/CloudML ``:predict`` bodies, strict path),
``fast`` (the simdjson fast path for dense numeric bodies), ``values`` (JSON parsing, b64,
numeric text), ``response`` (predictions, status, metadata, errors) and ``examples``
(``:classify``/``:regress`` bodies of tf.Examples). Numpy and the project's protos only:
no aiohttp, no grpc, no TensorFlow.
"""

from __future__ import annotations

from gateway.codec.examples import (
    encode_classify_response,
    encode_regress_response,
    read_examples_body,
)
from gateway.codec.predict import PredictBody, decode_predict_inputs, read_predict_body
from gateway.codec.response import (
    encode_error,
    encode_model_metadata,
    encode_model_status,
    encode_predict_response,
)
from gateway.codec.values import decode_b64, parse_json

__all__ = [
    "PredictBody",
    "decode_b64",
    "decode_predict_inputs",
    "encode_classify_response",
    "encode_error",
    "encode_model_metadata",
    "encode_model_status",
    "encode_predict_response",
    "encode_regress_response",
    "parse_json",
    "read_examples_body",
    "read_predict_body",
]
