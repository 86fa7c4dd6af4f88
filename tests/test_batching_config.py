"""Per-model batching settings (``--batch-model NAME=MAX[:MS]`` / ``TFGW_BATCH_MODELS``)."""

from __future__ import annotations

import argparse

import pytest

from gateway.backend import Backend
from gateway.config import GatewayConfig, add_arguments, parse_batch_models
from gateway.service import ModelRef, Service


def test_parse_batch_models() -> None:
    assert parse_batch_models("digits=64:5, other=0") == {"digits": (64, 5.0), "other": (0, 2.0)}
    assert parse_batch_models(["a=8", "b=16:0.5"]) == {"a": (8, 2.0), "b": (16, 0.5)}


@pytest.mark.parametrize("bad", ["digits", "=4", "digits=x", "digits=4:y", "digits=-1"])
def test_bad_batch_model_settings_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="per-model batch setting"):
        parse_batch_models(bad)


def _config(argv: list[str], env: dict[str, str] | None = None) -> GatewayConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return GatewayConfig.from_args(parser.parse_args(argv), env or {})


def test_flag_and_env_reach_the_config() -> None:
    config = _config(["--batch-model", "digits=32:4"])
    assert config.batching and config.batch_setting("digits") == (32, 4.0)
    assert config.batch_setting("other") == (0, 2.0)
    from_env = _config([], {"TFGW_BATCH_MODELS": "digits=8", "TFGW_BATCH_MAX_SIZE": "64"})
    assert from_env.batch_setting("digits") == (8, 2.0)
    assert from_env.batch_setting("other") == (64, 2.0)
    off = _config(["--batch-max-size", "64", "--batch-model", "big=0"])
    assert off.batch_setting("big") == (0, 2.0)


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
