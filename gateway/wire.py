"""gRPC wire facts of TF Serving's API, in one place: method paths, message types, limits.

The project's protos live in package ``tfgw.tensorflow.serving`` (so they never clash with
the official ones), so generated service stubs would call the wrong paths; every client in
the project (backend, Python client, docker health check) binds these paths instead,
exactly as SPEC §7 and upstream TF Serving spell them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from gateway.pb import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)

__all__ = ["MAX_MESSAGE_BYTES", "METHODS", "MODEL_SERVICE", "PREDICTION_SERVICE", "Method"]

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
"""Default gRPC message limit both ways (gRPC's own default of 4 MiB is too small)."""

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"


class Method(NamedTuple):
    """One unary RPC: its full path and its request/response message classes."""

    path: str
    request: Any
    response: Any

    def bind(self, channel: Any) -> Any:
        """This method as a callable on a ``grpc`` or ``grpc.aio`` channel."""
        return channel.unary_unary(self.path, request_serializer=self.request.SerializeToString,
                                   response_deserializer=self.response.FromString)


def _method(service: str, name: str, request: Any, response: Any) -> Method:
    return Method(f"/{service}/{name}", request, response)


METHODS: dict[str, Method] = {
    "Predict": _method(PREDICTION_SERVICE, "Predict", predict_pb2.PredictRequest,
                       predict_pb2.PredictResponse),
    "Classify": _method(PREDICTION_SERVICE, "Classify", classification_pb2.ClassificationRequest,
                        classification_pb2.ClassificationResponse),
    "Regress": _method(PREDICTION_SERVICE, "Regress", regression_pb2.RegressionRequest,
                       regression_pb2.RegressionResponse),
    "MultiInference": _method(PREDICTION_SERVICE, "MultiInference",
                              inference_pb2.MultiInferenceRequest,
                              inference_pb2.MultiInferenceResponse),
    "GetModelMetadata": _method(PREDICTION_SERVICE, "GetModelMetadata",
                                get_model_metadata_pb2.GetModelMetadataRequest,
                                get_model_metadata_pb2.GetModelMetadataResponse),
    "GetModelStatus": _method(MODEL_SERVICE, "GetModelStatus",
                              get_model_status_pb2.GetModelStatusRequest,
                              get_model_status_pb2.GetModelStatusResponse),
}
"""Method name → path and message types, for ``channel.unary_unary``."""
