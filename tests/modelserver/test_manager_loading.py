"""While a model's first version is still loading, "latest" requests get UNAVAILABLE
(503 through the gateway), not NOT_FOUND: TF Serving's clients see UNAVAILABLE then too,
because it accepts no connection before its models load."""

from __future__ import annotations

import pytest

from gateway.errors import Code, GatewayError, NotFound
from gateway.modelserver.manager import ModelManager, ModelSlot, State, VersionSlot

tf = pytest.importorskip("tensorflow")
from tensorflow_serving.apis import model_pb2  # noqa: E402
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402


def _manager_with(slot: ModelSlot) -> ModelManager:
    manager = ModelManager(load_executor=None, on_change=lambda: None)  # type: ignore[arg-type]
    manager._models[slot.name] = slot
    return manager


def _slot(*states: State, reconciled: bool = True) -> ModelSlot:
    slot = ModelSlot(config=model_server_config_pb2.ModelConfig(name="m", base_path="/x"))
    for version, state in enumerate(states, start=1):
        slot.versions[version] = VersionSlot(version=version, path=None, state=state)  # type: ignore[arg-type]
    slot.reconciled = reconciled
    return slot


def _resolve(manager: ModelManager, version: int | None = None) -> None:
    spec = model_pb2.ModelSpec(name="m")
    if version is not None:
        spec.version.value = version
    manager.resolve(spec)


@pytest.mark.parametrize("slot", [_slot(reconciled=False), _slot(State.LOADING),
                                  _slot(State.START, reconciled=False)])
def test_latest_while_loading_is_unavailable(slot: ModelSlot) -> None:
    with pytest.raises(GatewayError) as caught:
        _resolve(_manager_with(slot))
    assert caught.value.code == Code.UNAVAILABLE
    assert "still loading" in caught.value.message


@pytest.mark.parametrize("slot", [_slot(), _slot(State.END)])
def test_nothing_to_load_or_failed_is_not_found(slot: ModelSlot) -> None:
    with pytest.raises(NotFound, match=r"Servable not found for request: Latest\(m\)"):
        _resolve(_manager_with(slot))


def test_a_specific_version_still_loading_is_not_found_as_in_tf_serving() -> None:
    with pytest.raises(NotFound, match=r"Specific\(m, 1\)"):
        _resolve(_manager_with(_slot(State.LOADING)), version=1)


def test_unknown_model_is_not_found() -> None:
    manager = ModelManager(load_executor=None, on_change=lambda: None)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        manager.resolve(model_pb2.ModelSpec(name="nope"))
