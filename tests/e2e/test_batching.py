"""Micro-batching end to end: real HTTP into the gateway, real gRPC to ``tfgw modelserver``.

Each batched answer must equal what the same request gets from an unbatched gateway on the
same backend. The batcher is tuned per test (``eager_inflight=0``, long timeout, exact
``max_size``) so the number of merged backend calls is deterministic, and is read from the
gateway's own Prometheus histograms — counts, never timings.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient
from support.gateway_app import make_gateway
from support.servers import MODEL_NAMES

from gateway.batching import Batcher, Send
from gateway.http.keys import SERVICE_KEY
from gateway.metrics import Metrics

pytestmark = pytest.mark.timeout(300)


async def gateway_client(port: int, aiohttp_client: Any, **overrides: Any) -> TestClient:
    app = make_gateway(f"127.0.0.1:{port}", models=MODEL_NAMES, **overrides)
    return await aiohttp_client(app)


@pytest.fixture
async def plain(modelserver_port: int, aiohttp_client: Any) -> TestClient:
    return await gateway_client(modelserver_port, aiohttp_client)


@pytest.fixture
async def batched(modelserver_port: int, aiohttp_client: Any) -> TestClient:
    return await gateway_client(modelserver_port, aiohttp_client, batch_max_size=64)


@pytest.fixture
def tuned(modelserver_port: int, aiohttp_client: Any) -> Callable[..., Awaitable[TestClient]]:
    """A batching gateway that flushes deterministically: only on ``max_size`` rows or
    ``timeout_ms`` (``eager_inflight=0``)."""

    async def make(*, max_size: int, timeout_ms: float) -> TestClient:
        def batcher(send: Send, metrics: Metrics) -> Batcher:
            return Batcher(send, max_size=max_size, timeout_ms=timeout_ms, metrics=metrics,
                           eager_inflight=0)

        return await gateway_client(modelserver_port, aiohttp_client, batch_max_size=max_size,
                                    batcher=batcher)

    return make


def batches(client: TestClient, model: str) -> tuple[float, float]:
    """(backend calls, requests carried) so far from ``tfgw_batch_requests``."""
    registry = client.app[SERVICE_KEY].metrics.registry
    count = registry.get_sample_value("tfgw_batch_requests_count", {"model": model}) or 0.0
    total = registry.get_sample_value("tfgw_batch_requests_sum", {"model": model}) or 0.0
    return count, total


async def predict(client: TestClient, model: str, body: dict[str, Any]) -> Any:
    response = await client.post(f"/v1/models/{model}:predict", data=json.dumps(body))
    payload = json.loads(await response.read())
    assert response.status == 200, payload
    return payload


async def test_mnist_rows_merge_into_one_call_and_match_unbatched(
    plain: TestClient, tuned: Callable[..., Awaitable[TestClient]]
) -> None:
    batched = await tuned(max_size=8, timeout_ms=60_000)
    rng = np.random.default_rng(7)
    bodies = [{"instances": np.round(rng.random((1, 784)), 3).tolist()} for _ in range(8)]
    got = await asyncio.wait_for(
        asyncio.gather(*(predict(batched, "mnist", b) for b in bodies)), 60)
    assert batches(batched, "mnist") == (1.0, 8.0)
    for body, answer in zip(bodies, got, strict=True):
        expected = await predict(plain, "mnist", body)
        np.testing.assert_allclose(answer["predictions"], expected["predictions"],
                                   rtol=1e-5, atol=1e-7)


async def test_multi_dtype_requests_of_several_rows_split_back_in_order(
    plain: TestClient, tuned: Callable[..., Awaitable[TestClient]]
) -> None:
    batched = await tuned(max_size=6, timeout_ms=60_000)
    bodies = [
        {"instances": [{"a": [1.5, 2, 3], "b": 4, "c": "one"}]},
        {"instances": [{"a": [0, 0, 0.25], "b": -1, "c": "two"},
                       {"a": [9, 9, 9], "b": 0, "c": {"b64": "/w=="}}]},
        {"instances": [{"a": [1, 1, 1], "b": 7, "c": "x"}, {"a": [2, 2, 2], "b": 8, "c": "y"},
                       {"a": [3, 3, 3], "b": 9, "c": "z"}]},
    ]
    got = await asyncio.wait_for(
        asyncio.gather(*(predict(batched, "multi", b) for b in bodies)), 60)
    assert batches(batched, "multi") == (1.0, 3.0)
    for body, answer in zip(bodies, got, strict=True):
        assert answer == await predict(plain, "multi", body)
        assert len(answer["predictions"]) == len(body["instances"])


async def test_other_signatures_and_columnar_requests_are_not_merged(
    plain: TestClient, tuned: Callable[..., Awaitable[TestClient]]
) -> None:
    batched = await tuned(max_size=2, timeout_ms=200)
    row = {"instances": [{"a": [1, 2, 3], "b": 1, "c": "s"}]}
    scale = {"signature_name": "scale", "instances": [2.0]}
    got = await asyncio.wait_for(asyncio.gather(
        predict(batched, "multi", row), predict(batched, "multi", scale)), 60)
    assert batches(batched, "multi") == (2.0, 2.0)  # two calls of one request each
    assert got == [await predict(plain, "multi", row), await predict(plain, "multi", scale)]
    columnar = {"inputs": {"a": [[1, 2, 3]], "b": [1], "c": ["s"]}}
    assert await predict(batched, "multi", columnar) == await predict(plain, "multi", columnar)
    assert batches(batched, "multi") == (2.0, 2.0)  # columnar went straight to the backend


async def test_shipped_default_batcher_answers_a_burst(
    plain: TestClient, batched: TestClient
) -> None:
    bodies = [{"instances": [[float(i % 3)] * 784]} for i in range(24)]
    got = await asyncio.wait_for(
        asyncio.gather(*(predict(batched, "mnist", b) for b in bodies)), 60)
    calls, carried = batches(batched, "mnist")
    assert carried == 24 and 1 <= calls <= 24
    expected = [await predict(plain, "mnist", {"instances": [[float(i)] * 784]})
                for i in range(3)]
    for i, answer in enumerate(got):
        np.testing.assert_allclose(answer["predictions"], expected[i % 3]["predictions"],
                                   rtol=1e-5, atol=1e-7)
