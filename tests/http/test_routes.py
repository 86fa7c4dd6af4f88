"""The HTTP edge against a real gRPC fake backend: routes, status codes, bodies, limits."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support.gateway_app import FakeBackend, fake_backend, make_gateway  # noqa: F401

from gateway.http.keys import SERVICE_KEY

Make = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def gw(fake_backend: FakeBackend, aiohttp_client: Any) -> Make:  # noqa: F811
    async def make(**overrides: Any) -> TestClient:
        return await aiohttp_client(make_gateway(fake_backend.target, **overrides))

    return make


async def _json(resp: Any) -> Any:
    assert resp.content_type == "application/json", await resp.text()
    return json.loads(await resp.read())


async def post(client: TestClient, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await client.post(path, data=data, **kw)
    return resp.status, await _json(resp)


# -- TF Serving REST ---------------------------------------------------------------------

async def test_predict_row_and_columnar_bare_single_output(gw: Make) -> None:
    client = await gw()
    assert await post(client, "/v1/models/half:predict", {"instances": [1.0, 2.0]}) == (
        200, {"predictions": [3.5, 4.0]}
    )
    assert await post(client, "/v1/models/half:predict", {"inputs": [4.0]}) == (
        200, {"outputs": [5.0]}
    )


async def test_predict_several_outputs_keyed(gw: Make) -> None:
    client = await gw()
    body = {"instances": [{"a": [1.0, 2.0], "b": 3}, {"a": [0.5, 0.5], "b": -1}]}
    status, data = await post(client, "/v1/models/multi:predict", body)
    assert status == 200
    assert data == {"predictions": [{"sum": 3.0, "twice": 6}, {"sum": 1.0, "twice": -2}]}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/models/half/versions/1:predict", 2.5),
        ("/v1/models/half/versions/2:predict", 3.5),
        ("/v1/models/half/labels/stable:predict", 2.5),
        ("/v1/models/half/labels/canary:predict", 3.5),
        ("/v1/models/half:predict", 3.5),
    ],
)
async def test_version_and_label_routing(gw: Make, path: str, expected: float) -> None:
    client = await gw()
    assert await post(client, path, {"instances": [1.0]}) == (200, {"predictions": [expected]})


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/v1/models/half/versions/abc:predict", 400, "not a number"),
        ("/v1/models/half/labels/nope:predict", 400, "label"),
        ("/v1/models/half/versions/9:predict", 404, "not found"),
        ("/v1/models/nosuch:predict", 404, "not found"),
        ("/v1/models/half:explode", 404, "unknown method"),
        ("/v1/models/bad%20name:predict", 400, "invalid model name"),
    ],
)
async def test_routing_errors(gw: Make, path: str, status: int, fragment: str) -> None:
    client = await gw()
    got, data = await post(client, path, {"instances": [1.0]})
    assert got == status
    assert fragment in data["error"].lower()


async def test_bad_bodies_are_400_json(gw: Make) -> None:
    client = await gw()
    for body in (b"", b"{", b'{"instances": [1.0]} x', b'{"instances": ["a"]}',
                 b'{"instances": [1], "inputs": [1]}'):
        status, data = await post(client, "/v1/models/half:predict", body)
        assert status == 400, body
        assert data["error"]
    status, data = await post(
        client, "/v1/models/half:predict", {"signature_name": "nope", "instances": [1.0]}
    )
    assert status == 400 and "nope" in data["error"]


async def test_classify_and_regress(gw: Make) -> None:
    client = await gw()
    body = {"examples": [{"x": 2.0}, {"x": 4.0}]}
    status, data = await post(client, "/v1/models/half:regress", body)
    assert (status, data) == (200, {"results": [3.0, 4.0]})
    status, data = await post(client, "/v1/models/half:classify", body)
    assert status == 200
    assert data == {"results": [[["neg", 0.25], ["pos", 0.75]]] * 2}


async def test_status_and_metadata(gw: Make) -> None:
    client = await gw()
    resp = await client.get("/v1/models/half")
    data = await _json(resp)
    assert resp.status == 200
    assert [v["version"] for v in data["model_version_status"]] == ["1", "2"]
    assert all(v["state"] == "AVAILABLE" for v in data["model_version_status"])
    resp = await client.get("/v1/models/half/versions/1")
    assert [v["version"] for v in (await _json(resp))["model_version_status"]] == ["1"]
    resp = await client.get("/v1/models/half/versions/1/metadata")
    data = await _json(resp)
    assert resp.status == 200
    assert data["model_spec"]["version"] == "1"
    sig = data["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["x"]["dtype"] == "DT_FLOAT"
    resp = await client.get("/v1/models/nosuch/metadata")
    assert resp.status == 404 and "nosuch" in (await _json(resp))["error"]


# -- CloudML and tfdeploy -------------------------------------------------------------

async def test_cloudml_outputs_always_keyed(gw: Make) -> None:
    client = await gw()
    assert await post(client, "/v1/projects/p1/models/half:predict", {"instances": [1.0]}) == (
        200, {"predictions": [{"y": 3.5}]}
    )
    assert await post(
        client, "/v1/projects/p1/models/half/versions/1:predict", {"instances": [1.0]}
    ) == (200, {"predictions": [{"y": 2.5}]})
    status, _ = await post(client, "/v1/projects/p1/models/half:classify", {"instances": [1]})
    assert status == 404


async def test_tfdeploy_predict_on_default_model(gw: Make) -> None:
    client = await gw(default_model="half")
    assert await post(client, "/serving_default/predict", {"instances": [2.0]}) == (
        200, {"predictions": [{"y": 4.0}]}
    )
    status, data = await post(client, "/other/predict", {"instances": [2.0]})
    assert status == 400 and "other" in data["error"]
    body = {"signature_name": "serving_default", "instances": [2.0]}
    assert (await post(client, "/other/predict", body))[0] == 200


async def test_tfdeploy_without_default_model_is_404(gw: Make) -> None:
    client = await gw()
    status, data = await post(client, "/serving_default/predict", {"instances": [2.0]})
    assert status == 404 and "--default-model" in data["error"]
    single = await gw(models=("half",))
    assert (await post(single, "/serving_default/predict", {"instances": [2.0]}))[0] == 200


# -- gateway-made errors are JSON --------------------------------------------------------

async def test_unknown_route_and_wrong_method_are_json(gw: Make) -> None:
    client = await gw()
    resp = await client.get("/nowhere/at/all")
    assert resp.status == 404 and "no route" in (await _json(resp))["error"]
    resp = await client.get("/v1/models/half:predict")
    assert resp.status == 405 and (await _json(resp))["error"]
    resp = await client.post("/v1/models/half", data=b"{}")
    assert resp.status == 405 and (await _json(resp))["error"]
    resp = await client.get("/serving_default/predict")
    assert resp.status == 405 and (await _json(resp))["error"]


async def test_unexpected_exception_is_generic_500(gw: Make, caplog: Any) -> None:
    client = await gw()
    service = client.app[SERVICE_KEY]

    async def boom(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("secret internals")

    service.model_status = boom
    resp = await client.get("/v1/models/half")
    assert resp.status == 500
    assert await _json(resp) == {"error": "internal error"}
    assert "secret internals" in caplog.text  # logged with traceback, not sent


# -- limits: body size, gzip -------------------------------------------------------------

async def test_body_limit_content_length_and_chunked(gw: Make) -> None:
    client = await gw(max_body_bytes=1000)
    big = json.dumps({"instances": [1.0] * 500}).encode()
    status, data = await post(client, "/v1/models/half:predict", big)
    assert status == 413 and "1000" in data["error"]

    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 200

    resp = await client.post("/v1/models/half:predict", data=chunks())
    assert resp.status == 413 and (await _json(resp))["error"]


async def test_default_limit_fits_batch_256_of_784_floats(gw: Make) -> None:
    from gateway.config import GatewayConfig

    body = json.dumps({"instances": [[0.123456789] * 784] * 256}).encode()
    assert len(body) < GatewayConfig().max_body_bytes
    assert GatewayConfig().max_body_bytes >= 8 * 1024 * 1024


async def test_gzip_request_and_response(gw: Make) -> None:
    client = await gw(gzip_min_bytes=10)
    body = gzip.compress(json.dumps({"instances": [1.0] * 50}).encode())
    resp = await client.post(
        "/v1/models/half:predict", data=body,
        headers={"Content-Encoding": "gzip", "Accept-Encoding": "gzip"},
    )
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == "gzip"  # aiohttp inflates for us below
    assert (await resp.json())["predictions"] == [3.5] * 50
    resp = await client.post("/v1/models/half:predict", data=json.dumps({"instances": [1.0]}),
                             headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in resp.headers


async def test_bad_gzip_bomb_and_unknown_encoding(gw: Make) -> None:
    client = await gw(max_decompressed_bytes=100_000)
    headers = {"Content-Encoding": "gzip"}
    status, data = await post(client, "/v1/models/half:predict", b"not gzip", headers=headers)
    assert status == 400 and "gzip" in data["error"]
    bomb = gzip.compress(b" " * 10_000_000)
    assert len(bomb) < 100_000
    status, data = await post(client, "/v1/models/half:predict", bomb, headers=headers)
    assert status == 413 and "decompressed" in data["error"]
    status, data = await post(client, "/v1/models/half:predict", b"{}",
                              headers={"Content-Encoding": "br"})
    assert status == 415 and "br" in data["error"]


async def test_max_instances(gw: Make) -> None:
    client = await gw(max_instances=3)
    status, data = await post(client, "/v1/models/half:predict", {"instances": [1.0] * 4})
    assert status == 400 and data["error"]
    assert (await post(client, "/v1/models/half:predict", {"instances": [1.0] * 3}))[0] == 200


# -- auth and CORS -----------------------------------------------------------------------

async def test_bearer_auth(gw: Make) -> None:
    client = await gw(tokens=("s3cret", "other"))
    body = json.dumps({"instances": [1.0]})
    resp = await client.post("/v1/models/half:predict", data=body)
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
    assert "bearer" in (await _json(resp))["error"].lower()
    resp = await client.post("/v1/models/half:predict", data=body,
                             headers={"Authorization": "Bearer wrong"})
    assert resp.status == 403 and (await _json(resp))["error"]
    resp = await client.post("/v1/models/half:predict", data=body,
                             headers={"Authorization": "Bearer other"})
    assert resp.status == 200
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_cors_off_by_default(gw: Make) -> None:
    client = await gw()
    resp = await client.options("/v1/models/half:predict", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert resp.status == 405
    resp = await client.get("/healthz", headers={"Origin": "https://app.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_cors_allow_list(gw: Make) -> None:
    client = await gw(cors_origins=("https://app.example",), tokens=("t",))
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    resp = await client.options("/v1/models/half:predict", headers=preflight)
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    resp = await client.options("/v1/models/half:predict",
                                headers={**preflight, "Origin": "https://evil.example"})
    assert resp.status == 403 and (await _json(resp))["error"]
    resp = await client.post("/v1/models/half:predict", data=json.dumps({"instances": [1.0]}),
                             headers={"Origin": "https://app.example",
                                      "Authorization": "Bearer t"})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    resp = await client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


# -- deadlines, disconnects, outages -------------------------------------------------------

async def _wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_deadline_504_cancels_backend_call(gw: Make, fake_backend: FakeBackend) -> None:  # noqa: F811
    client = await gw()
    await post(client, "/v1/models/half:predict", {"instances": [1.0]})  # warm the cache
    fake_backend.delay = 3.0
    for header in ({"Request-Timeout": "0.3"}, {"grpc-timeout": "300m"}):
        status, data = await post(client, "/v1/models/half:predict", {"instances": [1.0]},
                                  headers=header)
        assert status == 504 and "deadline" in data["error"].lower()
    await _wait_until(lambda: fake_backend.cancelled >= 2)
    status, data = await post(client, "/v1/models/half:predict", {"instances": [1.0]},
                              headers={"Request-Timeout": "soon"})
    assert status == 400 and "Request-Timeout" in data["error"]


async def test_default_deadline_from_config(gw: Make, fake_backend: FakeBackend) -> None:  # noqa: F811
    client = await gw(request_timeout=0.3)
    fake_backend.delay = 3.0
    status, _ = await post(client, "/v1/models/half:predict", {"instances": [1.0]})
    assert status == 504


async def test_client_disconnect_cancels_backend_call(
    gw: Make, fake_backend: FakeBackend  # noqa: F811
) -> None:
    client = await gw()
    await post(client, "/v1/models/half:predict", {"instances": [1.0]})
    fake_backend.delay = 5.0
    request = asyncio.ensure_future(
        client.post("/v1/models/half:predict", data=json.dumps({"instances": [1.0]}))
    )
    await _wait_until(lambda: fake_backend.calls["Predict"] >= 2)
    request.cancel()  # closes the connection
    await _wait_until(lambda: fake_backend.cancelled >= 1)


async def test_backend_down_503_then_recovers(gw: Make, fake_backend: FakeBackend) -> None:  # noqa: F811
    client = await gw()
    port = fake_backend.port
    assert (await post(client, "/v1/models/half:predict", {"instances": [1.0]}))[0] == 200
    await fake_backend.stop()
    status, data = await post(client, "/v1/models/half:predict", {"instances": [1.0]})
    assert status == 503 and "unavailable" in data["error"].lower()
    resp = await client.get("/readyz")
    assert resp.status == 503 and (await _json(resp))["error"]
    assert (await client.get("/healthz")).status == 200
    await fake_backend.start(port)
    for _ in range(100):  # reconnect backoff is capped at 2 s
        status, data = await post(client, "/v1/models/half:predict", {"instances": [1.0]})
        if status == 200:
            break
        await asyncio.sleep(0.1)
    assert (status, data) == (200, {"predictions": [3.5]})
    assert (await client.get("/readyz")).status == 200


# -- operations ---------------------------------------------------------------------------

def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_move(gw: Make) -> None:
    client = await gw()
    for _ in range(3):
        await post(client, "/v1/models/half:predict", {"instances": [1.0]})
    await post(client, "/v1/models/nosuch:predict", {"instances": [1.0]})
    text = await (await client.get("/metrics")).text()
    assert _sample(text, "tfgw_requests_total", model="half", route="predict", code="200") == 3
    assert _sample(text, "tfgw_requests_total", model="_unknown", route="predict",
                   code="404") == 1
    assert _sample(text, "tfgw_request_duration_seconds_count", model="half",
                   route="predict") == 3
    assert _sample(text, "tfgw_request_bytes_count", route="predict") == 4
    assert _sample(text, "tfgw_backend_errors_total", method="GetModelMetadata",
                   code="NOT_FOUND") == 1
    assert "tfgw_requests_in_flight" in text


async def test_health_and_readiness(gw: Make) -> None:
    client = await gw()
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await _json(resp))["status"] == "ok"
    resp = await client.get("/readyz")
    assert resp.status == 200 and (await _json(resp))["status"] == "ready"
    nobody = await gw(models=())
    resp = await nobody.get("/readyz")
    assert resp.status == 503 and "--model" in (await _json(resp))["error"]


async def test_metadata_cached_and_refreshed_on_version_change(
    gw: Make, fake_backend: FakeBackend  # noqa: F811
) -> None:
    client = await gw()
    for _ in range(5):
        assert (await post(client, "/v1/models/half:predict", {"instances": [1.0]}))[0] == 200
    assert fake_backend.calls["GetModelMetadata"] == 1
    fake_backend.models["half"].versions[3] = lambda a: {"y": a["x"] * 0 + 30}
    assert await post(client, "/v1/models/half:predict", {"instances": [1.0]}) == (
        200, {"predictions": [30.0]}
    )
    for _ in range(3):
        await post(client, "/v1/models/half:predict", {"instances": [1.0]})
    assert fake_backend.calls["GetModelMetadata"] == 2


async def test_vertex_ai_routes(fake_backend: FakeBackend, aiohttp_client: Any) -> None:  # noqa: F811
    from gateway.backend import Backend
    from gateway.config import GatewayConfig
    from gateway.http import create_app
    from gateway.service import Service

    env = {"AIP_HTTP_PORT": "8080", "AIP_PREDICT_ROUTE": "/v1/endpoints/e/deployedModels/d",
           "AIP_HEALTH_ROUTE": "/health", "TFGW_MODELS": "half",
           "TFGW_BACKEND": fake_backend.target, "TFGW_TOKENS": "tok"}
    config = GatewayConfig.from_env(env)
    assert config.port == 8080 and config.backends == (fake_backend.target,)
    client = await aiohttp_client(create_app(config, Service(Backend(config.backends), config)))
    assert (await client.get("/health")).status == 200  # probe needs no token
    status, data = await post(client, "/v1/endpoints/e/deployedModels/d", {"instances": [1.0]},
                              headers={"Authorization": "Bearer tok"})
    assert (status, data) == (200, {"predictions": [3.5]})


async def test_batching_wired_in(gw: Make, fake_backend: FakeBackend) -> None:  # noqa: F811
    client = await gw(batch_max_size=16, batch_timeout_ms=50)
    service = client.app[SERVICE_KEY]
    assert service.batcher is not None
    await post(client, "/v1/models/half:predict", {"instances": [0.0]})
    before = fake_backend.calls["Predict"]
    results = await asyncio.gather(*(
        post(client, "/v1/models/half:predict", {"instances": [float(i)]}) for i in range(8)
    ))
    assert [r for r in results] == [(200, {"predictions": [i / 2 + 3]}) for i in range(8)]
    assert fake_backend.calls["Predict"] - before < 8


async def test_access_log_is_structured_and_never_has_tokens(gw: Make, caplog: Any) -> None:
    client = await gw(tokens=("hunter2",))
    with caplog.at_level("INFO", logger="gateway.access"):
        await client.post("/v1/models/half:predict", data=json.dumps({"instances": [1.0]}),
                          headers={"Authorization": "Bearer hunter2"})
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.access"]
    assert records[-1]["status"] == 200 and records[-1]["route"] == "predict"
    assert records[-1]["model"] == "half" and records[-1]["in"] > 0
    assert "hunter2" not in caplog.text


async def test_access_log_off_writes_no_lines(gw: Make, caplog: Any) -> None:
    client = await gw(access_log=False)
    with caplog.at_level("INFO", logger="gateway.access"):
        resp = await client.post("/v1/models/half:predict", data=b'{"instances": [1.0]}')
    assert resp.status == 200
    assert not [r for r in caplog.records if r.name == "gateway.access"]


async def test_graceful_stop_drains_in_flight(fake_backend: FakeBackend) -> None:  # noqa: F811
    import aiohttp
    from support.net import free_port, port_open

    from gateway.backend import Backend
    from gateway.config import GatewayConfig
    from gateway.http import GatewayServer
    from gateway.service import Service

    config = GatewayConfig.from_env({}, backends=(fake_backend.target,), models=("half",),
                                    host="127.0.0.1", port=free_port())
    server = GatewayServer(config, Service(Backend(config.backends), config))
    port = await server.start()
    url = f"http://127.0.0.1:{port}/v1/models/half:predict"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=b'{"instances": [1.0]}') as resp:
            assert resp.status == 200
        fake_backend.delay = 1.0
        in_flight = asyncio.ensure_future(session.post(url, data=b'{"instances": [1.0]}'))
        await _wait_until(lambda: fake_backend.calls["Predict"] >= 2)
        await server.stop()
        resp = await in_flight
        assert resp.status == 200 and await resp.json() == {"predictions": [3.5]}
    assert not port_open(port)
    assert fake_backend.cancelled == 0


async def test_docs_pages_mounted(gw: Make) -> None:
    client = await gw(default_model="half")
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    paths = (await resp.json())["paths"]
    assert any("half" in p for p in paths) and any("multi" in p for p in paths)
    for path in ("/", "/docs"):
        resp = await client.get(path)
        assert resp.status == 200 and "half" in await resp.text()
    text = await (await client.get("/metrics")).text()
    assert _sample(text, "tfgw_requests_total", route="openapi", code="200") == 1
