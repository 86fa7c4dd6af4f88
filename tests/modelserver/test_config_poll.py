"""``--model_config_file_poll_wait_seconds``: labels written by ``tfgw publish --label``
reach a running model server without a restart (TF Serving's config-file polling)."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from support.models import build_half_plus_two
from support.servers import modelserver_in_thread

from gateway.repository.publish import publish

tf = pytest.importorskip("tensorflow")
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402


def _predict_version(port: int, label: str) -> int | None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hpt"
    request.model_spec.version_label = label
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([2.0], np.float32)))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=5)
        except grpc.RpcError:
            return None
    return response.model_spec.version.value


def test_new_label_in_models_config_is_picked_up(tmp_path: Path) -> None:
    export = build_half_plus_two(tmp_path / "export")
    base = tmp_path / "models"
    publish(export, base / "hpt", label="stable", progress=False)
    config = base / "models.config"
    with modelserver_in_thread(
        model_config_file=str(config),
        file_system_poll_wait_seconds=0.2,
        model_config_file_poll_wait_seconds=0.2,
    ) as server:
        assert _predict_version(server.port, "stable") == 1
        assert _predict_version(server.port, "canary") is None
        publish(export, base / "hpt", label="canary", progress=False)
        deadline = time.monotonic() + 30
        while _predict_version(server.port, "canary") != 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _predict_version(server.port, "canary") == 2
        assert _predict_version(server.port, "stable") == 1
