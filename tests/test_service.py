"""``gateway.service``: model refs, the metadata cache, model listing, default model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from support.gateway_app import FakeBackend

from gateway.backend import Backend
from gateway.config import GatewayConfig
from gateway.service import Service
from gateway.types import ModelEntry, ModelRef


@pytest.fixture
def fake(fake_backend: FakeBackend) -> FakeBackend:
    """The shared gRPC double from ``support.gateway_app`` (started and stopped there)."""
    return fake_backend


@pytest.fixture
async def make_service(fake: FakeBackend) -> AsyncIterator:
    made: list[Service] = []

    def make(**overrides: object) -> Service:
        overrides.setdefault("models", ("half", "multi"))
        config = GatewayConfig.from_env({}, backends=(fake.target,), **overrides)
        made.append(Service(Backend(config.backends), config))
        return made[-1]

    yield make
    for service in made:
        await service.close()


async def test_concurrent_cold_requests_fetch_metadata_once(
    make_service, fake: FakeBackend
) -> None:
    service = make_service()
    body = b'{"instances": [1.0]}'
    answers = await asyncio.gather(
        *(service.predict(ModelRef("half"), body, keyed=False, deadline=None) for _ in range(10))
    )
    assert set(answers) == {b'{"predictions":[3.5]}'}
    assert fake.calls["GetModelMetadata"] == 1
    assert fake.calls["Predict"] == 10


async def test_pinned_versions_cached_separately(make_service, fake: FakeBackend) -> None:
    service = make_service()
    body = b'{"instances": [1.0]}'
    for _ in range(3):
        await service.predict(ModelRef("half", version=1), body, keyed=False, deadline=None)
        await service.predict(ModelRef("half", label="canary"), body, keyed=False,
                              deadline=None)
    assert fake.calls["GetModelMetadata"] == 2


async def test_stale_entry_refreshed_in_background(make_service, fake: FakeBackend) -> None:
    service = make_service(metadata_ttl=0.0)
    body = b'{"instances": [1.0]}'
    await service.predict(ModelRef("half"), body, keyed=False, deadline=None)
    await service.predict(ModelRef("half"), body, keyed=False, deadline=None)
    for _ in range(100):
        if fake.calls["GetModelMetadata"] >= 2:
            break
        await asyncio.sleep(0.02)
    assert fake.calls["GetModelMetadata"] >= 2


async def test_list_models_and_default(make_service) -> None:
    service = make_service(models=("half", "multi", "ghost"))
    entries = await service.list_models()
    assert [(e.name, e.version) for e in entries] == [("half", 2), ("multi", 1)]
    assert all(isinstance(e, ModelEntry) for e in entries)
    assert set(entries[1].signatures["serving_default"].inputs) == {"a", "b"}
    assert service.default_model() is None
    assert make_service(models=("half",)).default_model() == "half"
    assert make_service(default_model="multi").default_model() == "multi"


async def test_names_seen_in_requests_are_learned(make_service) -> None:
    service = make_service(models=())
    assert service.known_models == ()
    await service.model_status(ModelRef("half"), deadline=None)
    assert service.known_models == ("half",)
    assert await service.ready() == (True, "model half is available")


async def test_expired_deadline_fails_before_backend(make_service, fake: FakeBackend) -> None:
    from gateway.deadlines import now
    from gateway.errors import DeadlineExceeded

    service = make_service()
    with pytest.raises(DeadlineExceeded):
        await service.model_status(ModelRef("half"), deadline=now() - 1)
    assert fake.calls["GetModelStatus"] == 0


async def test_status_showing_a_new_latest_version_drops_cached_metadata(
    make_service, fake: FakeBackend
) -> None:
    service = make_service()
    await service.predict(ModelRef("half"), b'{"instances": [1.0]}', keyed=False, deadline=None)
    assert service.cache.peek(ModelRef("half")).version == 2
    await service.ready()
    assert service.cache.peek(ModelRef("half")) is not None
    fake.models["half"].versions[3] = lambda a: {"y": a["x"]}
    await service.ready()
    assert service.cache.peek(ModelRef("half")) is None


async def test_service_batches_only_the_models_configured() -> None:
    config = GatewayConfig(batch_max_size=0, batch_models={"digits": (16, 3.0), "off": (1, 2.0)})
    service = Service(Backend(config.backends), config)
    try:
        policy = service.batcher.policy_for(ModelRef("digits"), "serving_default")
        assert (policy.max_size, policy.timeout_ms) == (16, 3.0)
        assert service.batcher.policy_for(ModelRef("off"), "serving_default") is None
        assert service.batcher.policy_for(ModelRef("other"), "serving_default") is None
    finally:
        await service.close()
