"""Performance plumbing that must not change behaviour: the memory trimmer and the cached
metric label children."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.gateway_app import FakeBackend, fake_backend, make_gateway  # noqa: F401

from gateway.http import memory
from gateway.http.memory import LARGE_BODY_BYTES, Trimmer
from gateway.metrics import Metrics


async def _wait_for_trims(trimmer: Trimmer, count: int, limit: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + limit
    while trimmer.trims < count and loop.time() < until:
        await asyncio.sleep(0.01)


def test_malloc_trim_is_safe_to_call() -> None:
    assert memory.malloc_trim() in (True, False)


def _answer(trimmer: Trimmer, *sizes: int) -> None:
    """Requests with these body sizes start together, then finish in order."""
    for _ in sizes:
        trimmer.started()
    for size in sizes:
        trimmer.finished(size)


async def test_small_bodies_never_trim() -> None:
    trimmer = Trimmer(interval=0.0)
    _answer(trimmer, 0, 1, LARGE_BODY_BYTES - 1)
    await asyncio.sleep(0.05)
    assert trimmer.trims == 0


async def test_trims_as_soon_as_the_gateway_is_idle() -> None:
    trimmer = Trimmer(interval=60.0)
    _answer(trimmer, LARGE_BODY_BYTES)
    await _wait_for_trims(trimmer, 1, limit=1.0)
    trimmer.started()
    trimmer.started()
    trimmer.finished(LARGE_BODY_BYTES)  # one still in flight: the interval rules
    await asyncio.sleep(0.05)
    assert trimmer.trims == 1
    trimmer.finished(10)  # now idle, and a large body is owed a trim: at once
    await _wait_for_trims(trimmer, 2, limit=1.0)
    assert trimmer.trims == 2
    _answer(trimmer, 10)  # nothing owed any more
    await asyncio.sleep(0.05)
    assert trimmer.trims == 2
    trimmer.close()


async def test_busy_gateway_trims_once_per_interval() -> None:
    trimmer = Trimmer(interval=60.0)
    trimmer.started()  # a request that stays in flight: never idle
    for _ in range(5):
        _answer(trimmer, LARGE_BODY_BYTES, 10)
        trimmer.started()
        trimmer.finished(LARGE_BODY_BYTES)
    await _wait_for_trims(trimmer, 1, limit=1.0)
    assert trimmer.trims == 1  # the first one, at once (none before it)
    trimmer.started()
    trimmer.finished(LARGE_BODY_BYTES)  # within the interval: scheduled, not run yet
    await asyncio.sleep(0.05)
    assert trimmer.trims == 1
    trimmer.close()  # cancels the pending one
    await asyncio.sleep(0.05)
    assert trimmer.trims == 1


async def test_trims_again_after_the_interval() -> None:
    trimmer = Trimmer(interval=0.05)
    _answer(trimmer, LARGE_BODY_BYTES)
    await _wait_for_trims(trimmer, 1)
    _answer(trimmer, LARGE_BODY_BYTES)
    await _wait_for_trims(trimmer, 2)
    assert trimmer.trims == 2


async def test_gateway_trims_after_a_large_request(
    fake_backend: FakeBackend, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    made: list[Trimmer] = []

    class Recording(Trimmer):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr("gateway.http.app.Trimmer", Recording)
    client = await aiohttp_client(make_gateway(fake_backend.target))
    (trimmer,) = made
    resp = await client.post("/v1/models/half:predict", data=b'{"instances": [1.0]}')
    assert resp.status == 200
    small = json.loads(await resp.read())
    await asyncio.sleep(0.05)
    assert trimmer.trims == 0
    padded = b'{"instances": [1.0]' + b" " * LARGE_BODY_BYTES + b"}"
    resp = await client.post("/v1/models/half:predict", data=padded)
    assert resp.status == 200 and json.loads(await resp.read()) == small
    await _wait_for_trims(trimmer, 1)
    assert trimmer.trims == 1


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.render()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_cached_label_children_count_like_labels() -> None:
    cached, reference = Metrics(), Metrics()
    calls = [("m", "predict", 200, 0.01, 100, 20), ("m", "predict", 200, 0.2, 0, 5),
             ("_unknown", "predict", 404, 0.003, 7, 30), ("", "healthz", 200, 0.001, 0, 15),
             ("m", "predict", 200, 0.02, 300, 40)]
    for model, route, code, seconds, in_bytes, out_bytes in calls:
        cached.observe_request(model=model, route=route, code=code, seconds=seconds,
                               in_bytes=in_bytes, out_bytes=out_bytes)
        reference.requests.labels(model, route, str(code)).inc()
        reference.latency.labels(model, route).observe(seconds)
        if in_bytes:
            reference.request_bytes.labels(route).observe(in_bytes)
        reference.response_bytes.labels(route).observe(out_bytes)
    for method, seconds in (("Predict", 0.01), ("Predict", 0.3), ("GetModelStatus", 0.002)):
        cached.backend_call(method).observe(seconds)
        reference.backend_latency.labels(method).observe(seconds)
    cached_samples = {k: v for k, v in _samples(cached).items() if "_created" not in k[0]}
    reference_samples = {k: v for k, v in _samples(reference).items()
                         if "_created" not in k[0]}
    assert cached_samples == reference_samples
    assert ("tfgw_request_bytes_count", (("route", "healthz"),)) not in cached_samples


def test_limit_arenas_applies_on_glibc() -> None:
    default = 8 * (os.cpu_count() or 1)  # glibc's own cap on 64-bit: this process keeps it
    assert memory.limit_arenas(default) is (memory._glibc() is not None)
