"""``gateway.backend``: method paths, load balancing, TLS, deadlines and error mapping."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest
from support.gateway_app import FakeBackend
from support.net import free_port

from gateway.backend import Backend, BackendOptions, channel_targets
from gateway.errors import BackendUnavailable, Code, DeadlineExceeded, GatewayError
from gateway.pb import get_model_status_pb2, predict_pb2
from gateway.wire import METHODS


def _status_request(name: str = "half") -> get_model_status_pb2.GetModelStatusRequest:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    return request


def test_method_paths_are_tf_servings() -> None:
    paths = {name: path for name, (path, _, _) in METHODS.items()}
    assert paths["Predict"] == "/tensorflow.serving.PredictionService/Predict"
    assert paths["GetModelMetadata"] == "/tensorflow.serving.PredictionService/GetModelMetadata"
    assert paths["Classify"] == "/tensorflow.serving.PredictionService/Classify"
    assert paths["Regress"] == "/tensorflow.serving.PredictionService/Regress"
    assert paths["MultiInference"] == "/tensorflow.serving.PredictionService/MultiInference"
    assert paths["GetModelStatus"] == "/tensorflow.serving.ModelService/GetModelStatus"


def test_channel_targets() -> None:
    assert channel_targets(["127.0.0.1:1", "10.0.0.2:2"]) == ["ipv4:127.0.0.1:1,10.0.0.2:2"]
    assert channel_targets(["dns:///svc.ns:8500"]) == ["dns:///svc.ns:8500"]
    assert channel_targets(["a:1", "b:2"]) == ["a:1", "b:2"]
    with pytest.raises(ValueError):
        channel_targets([])


@pytest.mark.parametrize("form", ["ipv4", "names"])
async def test_round_robin_over_targets(form: str) -> None:
    one, two = FakeBackend(), FakeBackend()
    await one.start()
    await two.start()
    host = "127.0.0.1" if form == "ipv4" else "localhost"
    backend = Backend([f"{host}:{one.port}", f"{host}:{two.port}"])
    try:
        for _ in range(20):
            await backend.get_model_status(_status_request(), timeout=5)
    finally:
        await backend.close()
        await one.stop()
        await two.stop()
    assert one.calls["GetModelStatus"] > 0 and two.calls["GetModelStatus"] > 0
    assert one.calls["GetModelStatus"] + two.calls["GetModelStatus"] == 20


async def test_dns_target() -> None:
    fake = FakeBackend()
    await fake.start()
    backend = Backend([f"dns:///localhost:{fake.port}"])
    try:
        response = await backend.get_model_status(_status_request(), timeout=5)
    finally:
        await backend.close()
        await fake.stop()
    assert [s.version for s in response.model_version_status] == [1, 2]


async def test_errors_keep_code_and_backend_message() -> None:
    fake = FakeBackend()
    await fake.start()
    backend = Backend([fake.target])
    try:
        with pytest.raises(GatewayError) as info:
            await backend.get_model_status(_status_request("nosuch"), timeout=5)
        assert info.value.code == Code.NOT_FOUND
        assert info.value.message == "Servable not found for request: Latest(nosuch)"
        fake.delay = 2.0
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half"
        with pytest.raises(DeadlineExceeded):
            await backend.predict(request, timeout=0.2)
        with pytest.raises(DeadlineExceeded):
            await backend.predict(request, timeout=0)
    finally:
        await backend.close()
        await fake.stop()


async def test_nothing_listening_is_unavailable() -> None:
    backend = Backend([f"127.0.0.1:{free_port()}"])
    try:
        with pytest.raises(BackendUnavailable) as info:
            await backend.get_model_status(_status_request(), timeout=5)
    finally:
        await backend.close()
    assert info.value.code == Code.UNAVAILABLE and info.value.http_status == 503


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return key, cert


async def test_tls_backend(tmp_path: Path) -> None:
    key, cert = _self_signed(tmp_path)
    fake = FakeBackend()
    creds = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    await fake.start(credentials=creds)
    secure = Backend([f"localhost:{fake.port}"], BackendOptions(tls=True, ca_file=str(cert)))
    plain = Backend([f"localhost:{fake.port}"])
    try:
        response = await secure.get_model_status(_status_request(), timeout=5)
        assert len(response.model_version_status) == 2
        with pytest.raises(GatewayError):
            await plain.get_model_status(_status_request(), timeout=2)
    finally:
        await secure.close()
        await plain.close()
        await fake.stop()
