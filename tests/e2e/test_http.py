"""End to end: real HTTP against the gateway, real gRPC to a ``tfgw modelserver`` process
serving real SavedModels (``support.servers``)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support.gateway_app import make_gateway
from support.servers import MODEL_NAMES, SLOW_SECONDS


@pytest.fixture
async def client(modelserver_port: int, aiohttp_client: Any) -> TestClient:
    app = make_gateway(f"127.0.0.1:{modelserver_port}", models=MODEL_NAMES,
                       default_model="mnist")
    return await aiohttp_client(app)


async def post(client: TestClient, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
    resp = await client.post(path, data=json.dumps(body), **kw)
    assert resp.content_type == "application/json"
    return resp.status, json.loads(await resp.read())


async def test_mnist_tfserving_bare_vs_cloudml_keyed(client: TestClient) -> None:
    body = {"instances": [[0.0] * 784, [1.0] * 784]}
    status, bare = await post(client, "/v1/models/mnist:predict", body)
    assert status == 200
    assert len(bare["predictions"]) == 2 and len(bare["predictions"][0]) == 10
    assert sum(bare["predictions"][0]) == pytest.approx(1.0, abs=1e-5)
    status, keyed = await post(client, "/v1/projects/any/models/mnist:predict", body)
    assert status == 200
    assert [p["prediction"] for p in keyed["predictions"]] == bare["predictions"]
    status, tfdeploy = await post(client, "/serving_default/predict", body)
    assert (status, tfdeploy) == (200, keyed)


async def test_multi_io_strings_and_second_signature(client: TestClient) -> None:
    binary = {"b64": base64.b64encode(b"\xff").decode()}
    body = {"instances": [{"a": [1, 2, 3], "b": 2, "c": "hi"},
                          {"a": [0, 0, 0.5], "b": -1, "c": binary}]}
    status, data = await post(client, "/v1/models/multi:predict", body)
    assert status == 200
    first, second = data["predictions"]
    echo = {"b64": base64.b64encode(b"hi!").decode()}
    assert first == {"total": 6.0, "doubled": 4, "echo_bytes": echo, "flag": True}
    assert second["flag"] is False and second["doubled"] == -2
    assert base64.b64decode(second["echo_bytes"]["b64"]) == b"\xff!"
    status, data = await post(client, "/v1/models/multi:predict",
                              {"signature_name": "scale", "inputs": [1.0, 2.0]})
    assert (status, data) == (200, {"outputs": [3.0, 6.0]})


async def test_integer_model_and_input_errors(client: TestClient) -> None:
    assert await post(client, "/v1/models/half_plus_two_int:predict", {"instances": [4, 7]}) == (
        200, {"predictions": [4, 5]}
    )
    status, data = await post(client, "/v1/models/half_plus_two_int:predict",
                              {"instances": [2.5]})
    assert status == 400 and data["error"]
    status, data = await post(client, "/v1/models/mnist:predict", {"instances": [[0.0] * 3]})
    assert status == 400 and data["error"]


async def test_classify_and_regress(client: TestClient) -> None:
    status, data = await post(client, "/v1/models/classify_regress:regress",
                              {"signature_name": "regress_x_to_y",
                               "examples": [{"x": 2.0}, {"x": 4.0, "bias": 1.0}]})
    assert (status, data) == (200, {"results": [3.0, 5.0]})
    status, data = await post(client, "/v1/models/classify_regress:classify",
                              {"signature_name": "classify_x_to_y", "examples": [{"x": 0.0}]})
    assert status == 200
    assert data["results"][0][0][0] == "neg" and data["results"][0][1][0] == "pos"
    assert data["results"][0][0][1] == pytest.approx(0.5)


async def test_status_metadata_and_routing_errors(client: TestClient) -> None:
    resp = await client.get("/v1/models/mnist")
    data = json.loads(await resp.read())
    assert resp.status == 200
    assert data == {"model_version_status": [{
        "version": "1", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }]}  # exactly TF Serving's body
    resp = await client.get("/v1/models/mnist/versions/1/metadata")
    data = json.loads(await resp.read())
    sig = data["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["image"]["dtype"] == "DT_FLOAT"
    body = {"instances": [[0.0] * 784]}
    assert (await post(client, "/v1/models/mnist/versions/9:predict", body))[0] == 404
    assert (await post(client, "/v1/models/nosuch:predict", body))[0] == 404
    assert (await post(client, "/v1/models/mnist/versions/x:predict", body))[0] == 400
    assert (await post(client, "/v1/models/mnist/labels/nope:predict", body))[0] == 400


async def test_slow_model_deadline_504(client: TestClient) -> None:
    assert SLOW_SECONDS >= 1.0
    status, data = await post(client, "/v1/models/slow:predict", {"instances": [1.0]},
                              headers={"Request-Timeout": "0.4"})
    assert status == 504 and "deadline" in data["error"].lower()


async def test_docs_and_readiness(client: TestClient) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    spec = json.loads(await resp.read())
    assert any("mnist" in path for path in spec["paths"])
    resp = await client.get("/docs")
    assert resp.status == 200 and "mnist" in await resp.text()
