"""``gateway.client`` against a real stack: ``tfgw modelserver`` + ``tfgw gateway`` processes.

The model server serves small real SavedModels (``support.models``); ``hpt`` has two
versions (1: ``y = x/2 + 2``, 2: ``y = x``) labelled ``stable``/``canary``. The gateway
requires a bearer token, so the token path is exercised by every REST call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support import models
from support.net import free_port, port_open, wait_for
from support.paths import REPO_ROOT
from support.servers import start_modelserver, stop_process

from gateway.client import ClientError, GrpcClient, RestClient

TOKEN = "client-test-token"
pytestmark = pytest.mark.timeout(300)


def _write_config(path: Path, base: Path) -> Path:
    path.write_text(f"""model_config_list {{
  config {{ name: "mnist" base_path: "{base / 'mnist'}" model_platform: "tensorflow" }}
  config {{ name: "multi" base_path: "{base / 'multi'}" model_platform: "tensorflow" }}
  config {{ name: "classify_regress" base_path: "{base / 'classify_regress'}"
           model_platform: "tensorflow" }}
  config {{
    name: "hpt" base_path: "{base / 'hpt'}" model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
}}
""")
    return path


@pytest.fixture(scope="module")
def models_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("client_models")
    models.build_mnist_model(base / "mnist" / "1")
    models.build_multi_io_model(base / "multi" / "1")
    models.build_classify_regress_model(base / "classify_regress" / "1")
    models.build_half_plus_two(base / "hpt" / "1")
    models.build_slow_model(base / "hpt" / "2", 0.0)
    return _write_config(base / "models.config", base)


@pytest.fixture(scope="module")
def grpc_target(models_config: Path) -> Iterator[str]:
    names = ("mnist", "multi", "classify_regress", "hpt")
    with start_modelserver(["--model-config-file", str(models_config)], wait_models=names) as port:
        yield f"127.0.0.1:{port}"


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def rest_url(grpc_target: str, models_config: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "TFGW_TOKENS": TOKEN}
    command = [
        sys.executable, "-m", "gateway", "gateway", "--backend", grpc_target,
        "--host", "127.0.0.1", "--port", str(port), "--model-config-file", str(models_config),
    ]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or port_open(port), timeout=60)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        wait_for(lambda: _ready(url), timeout=60)
        yield url
    finally:
        stop_process(process, grace=20)


@pytest.fixture
def rest(rest_url: str) -> RestClient:
    return RestClient(rest_url, token=TOKEN, timeout=30)


@pytest.fixture
def grpc_client(grpc_target: str) -> Iterator[GrpcClient]:
    with GrpcClient(grpc_target, timeout=30) as client:
        yield client


def _images(n: int = 3) -> np.ndarray:
    return np.random.default_rng(7).random((n, 784), dtype=np.float32)


def test_rest_row_and_columnar_match_grpc(rest: RestClient, grpc_client: GrpcClient) -> None:
    images = _images()
    row = rest.predict("mnist", instances=images)
    columnar = rest.predict("mnist", inputs=images)
    over_grpc = grpc_client.predict("mnist", instances=images)
    assert set(row) == set(columnar) == set(over_grpc) == {"prediction"}
    assert row["prediction"].shape == (3, 10)
    assert over_grpc["prediction"].dtype == np.float32
    np.testing.assert_allclose(row["prediction"], over_grpc["prediction"], rtol=1e-6)
    np.testing.assert_allclose(columnar["prediction"], over_grpc["prediction"], rtol=1e-6)
    np.testing.assert_allclose(row["prediction"].sum(axis=1), 1.0, rtol=1e-5)


def test_multi_io_rest_row_columnar_and_grpc(rest: RestClient, grpc_client: GrpcClient) -> None:
    instances = [
        {"a": np.array([1.0, 2.0, 3.5], np.float32), "b": 4, "c": "hi"},
        {"a": [0.5, 0.5, 0.5], "b": -1, "c": b"\xffraw"},
    ]
    expected = {
        "total": [6.5, 1.5], "doubled": [8, -2], "echo_bytes": [b"hi!", b"\xffraw!"],
        "flag": [True, False],
    }
    columnar = {"a": [[1.0, 2.0, 3.5], [0.5, 0.5, 0.5]], "b": [4, -1], "c": ["hi", b"\xffraw"]}
    for result in (
        rest.predict("multi", instances=instances),
        rest.predict("multi", inputs=columnar),
        grpc_client.predict("multi", instances=instances),
        grpc_client.predict("multi", inputs=columnar),
    ):
        assert set(result) == set(expected)
        assert result["total"].tolist() == expected["total"]
        assert result["doubled"].tolist() == expected["doubled"]
        assert result["echo_bytes"].tolist() == expected["echo_bytes"]
        assert result["flag"].tolist() == expected["flag"]


def test_signature_name(rest: RestClient, grpc_client: GrpcClient) -> None:
    for client in (rest, grpc_client):
        result = client.predict("multi", instances=[1.0, 2.5], signature_name="scale")
        assert result["y"].tolist() == [3.0, 7.5]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [({}, 2.0), ({"version": 1}, 3.0), ({"version": 2}, 2.0),
     ({"label": "stable"}, 3.0), ({"label": "canary"}, 2.0)],
)
def test_version_and_label(
    rest: RestClient, grpc_client: GrpcClient, selector: dict, expected: float
) -> None:
    for client in (rest, grpc_client):
        assert client.predict("hpt", instances=[2.0], **selector)["y"].tolist() == [expected]
        assert client.predict("hpt", inputs=[2.0], **selector)["y"].tolist() == [expected]


def _raw_error(url: str, path: str, body: dict) -> tuple[int, str]:
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    return info.value.code, json.loads(info.value.read())["error"]


@pytest.mark.parametrize(
    ("model", "body", "status"),
    [
        ("nosuchmodel", {"instances": [1.0]}, 404),
        ("hpt", {"instances": ["not a number"]}, 400),
        ("multi", {"instances": [{"a": [1.0, 2.0, 3.0], "b": 1.5, "c": "x"}]}, 400),
    ],
)
def test_rest_error_carries_server_text(
    rest: RestClient, rest_url: str, model: str, body: dict, status: int
) -> None:
    raw_status, raw_message = _raw_error(rest_url, f"/v1/models/{model}:predict", body)
    with pytest.raises(ClientError) as info:
        rest.predict(model, instances=body["instances"])
    assert info.value.status == raw_status == status
    assert info.value.message == raw_message
    assert raw_message  # the gateway's own text, not an empty one


def test_rest_unknown_version_and_label(rest: RestClient) -> None:
    with pytest.raises(ClientError) as info:
        rest.predict("hpt", instances=[1.0], version=7)
    assert info.value.status == 404
    with pytest.raises(ClientError) as info:
        rest.predict("hpt", instances=[1.0], label="nosuchlabel")
    assert info.value.status == 400


def test_rest_token_required(rest_url: str) -> None:
    with pytest.raises(ClientError) as info:
        RestClient(rest_url).predict("hpt", instances=[1.0])
    assert info.value.status == 401
    with pytest.raises(ClientError) as info:
        RestClient(rest_url, token="wrong").predict("hpt", instances=[1.0])
    assert info.value.status == 403
    assert "token" in info.value.message


def test_rest_unreachable() -> None:
    with pytest.raises(ClientError) as info:
        RestClient(f"http://127.0.0.1:{free_port()}", timeout=5).status("x")
    assert info.value.status == 503
    assert "cannot reach" in info.value.message


def test_grpc_errors(grpc_client: GrpcClient) -> None:
    with pytest.raises(ClientError) as info:
        grpc_client.predict("nosuchmodel", instances=[1.0])
    assert (info.value.status, info.value.code) == (404, "NOT_FOUND")
    assert "nosuchmodel" in info.value.message
    with pytest.raises(ClientError) as info:
        grpc_client.predict("hpt", instances=[1.0], label="nosuchlabel")
    assert info.value.code == "INVALID_ARGUMENT"
    assert "nosuchlabel" in info.value.message
    with pytest.raises(ClientError) as info:
        grpc_client.predict("multi", instances=[1.0, 2.0])
    assert info.value.status == 400


def test_status_and_metadata(rest: RestClient, grpc_client: GrpcClient) -> None:
    status = rest.status("hpt", version=1)
    assert status["model_version_status"][0]["version"] == "1"
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    meta = rest.metadata("mnist")
    assert meta["model_spec"]["name"] == "mnist"
    outputs = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["outputs"]
    assert set(outputs) == {"prediction"}
    signatures = grpc_client.metadata("multi")
    assert {"serving_default", "scale"} <= set(signatures)  # (+ __saved_model_init_op)
    assert set(signatures["serving_default"].inputs) == {"a", "b", "c"}


def test_classify_and_regress(rest: RestClient) -> None:
    examples = [{"x": 0.0}, {"x": 2.0}]
    classified = rest.classify("classify_regress", examples, signature_name="classify_x_to_y")
    assert [[label for label, _ in row] for row in classified] == [["neg", "pos"]] * 2
    assert classified[0][1][1] == pytest.approx(0.5)
    regressed = rest.regress("classify_regress", examples, signature_name="regress_x_to_y",
                             context={"bias": 1.0})
    assert regressed == pytest.approx([3.0, 4.0])


def test_cloudml_path_via_post(rest: RestClient) -> None:
    answer = rest.post("/v1/projects/any/models/hpt/versions/1:predict", {"instances": [2.0]})
    assert answer == {"predictions": [{"y": 3.0}]}
