"""``gateway.config``: flags, ``TFGW_*`` env, Vertex AI env, models.config, tokens."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.config import GatewayConfig, add_arguments, parse_batch_models, parse_duration

MODELS_CONFIG = """
model_config_list {
  config { name: "digits" base_path: "/m/digits" model_platform: "tensorflow"
           version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } }
  config { name: "cars" base_path: "/m/cars" model_platform: "tensorflow" }
}
"""


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults() -> None:
    config = GatewayConfig.from_env({})
    assert (config.host, config.port) == ("0.0.0.0", 8501)
    assert config.max_body_bytes >= 8 * 1024 * 1024
    assert config.cors_origins == () and config.tokens == ()
    assert not config.batching


def test_env(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# comment\nalpha\n\nbeta\n")
    config = GatewayConfig.from_env({
        "TFGW_BACKEND": "a:1,b:2", "TFGW_PORT": "9000", "TFGW_MODELS": "x, y",
        "TFGW_CORS_ORIGINS": "https://a.example", "TFGW_TOKEN_FILE": str(tokens),
        "TFGW_REQUEST_TIMEOUT": "2.5", "TFGW_BATCH_MAX_SIZE": "32", "TFGW_BACKEND_TLS": "true",
    })
    assert config.backends == ("a:1", "b:2") and config.port == 9000
    assert config.models == ("x", "y") and config.cors_origins == ("https://a.example",)
    assert config.tokens == ("alpha", "beta") and config.request_timeout == 2.5
    assert config.batching and config.backend_tls
    assert "alpha" not in repr(config)
    with pytest.raises(ValueError, match="TFGW_PORT"):
        GatewayConfig.from_env({"TFGW_PORT": "eighty"})


def test_access_log_flag_and_env() -> None:
    assert GatewayConfig.from_env({}).access_log
    assert not GatewayConfig.from_env({"TFGW_ACCESS_LOG": "off"}).access_log
    assert not GatewayConfig.from_args(_args(["--no-access-log"]), {}).access_log
    assert GatewayConfig.from_args(_args(["--access-log"]), {"TFGW_ACCESS_LOG": "0"}).access_log


def test_vertex_ai_env() -> None:
    config = GatewayConfig.from_env({
        "AIP_HTTP_PORT": "8080", "AIP_PREDICT_ROUTE": "/predict", "AIP_HEALTH_ROUTE": "/health",
    })
    assert (config.port, config.predict_route, config.health_route) == (
        8080, "/predict", "/health"
    )


def test_flags_win_over_env(tmp_path: Path) -> None:
    config_file = tmp_path / "models.config"
    config_file.write_text(MODELS_CONFIG)
    args = _args(["--backend", "h:1", "--backend", "h:2", "--port", "7000", "--model", "extra",
                  "--model-config-file", str(config_file), "--cors-origin", "*"])
    config = GatewayConfig.from_args(args, {"TFGW_PORT": "9000", "TFGW_BACKEND": "z:9"})
    assert config.backends == ("h:1", "h:2") and config.port == 7000
    assert config.models == ("extra", "digits", "cars")
    assert config.model_labels["digits"] == {"stable": 1, "canary": 2}
    assert config.cors_origins == ("*",)


def test_model_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { nonsense: 1 }")
    with pytest.raises(ValueError, match="invalid ModelServerConfig"):
        GatewayConfig.from_env({"TFGW_MODEL_CONFIG_FILE": str(bad)})
    with pytest.raises(ValueError, match="not found"):
        GatewayConfig.from_env({"TFGW_MODEL_CONFIG_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("text", "seconds"), [("2.5", 2.5), ("100m", 0.1), ("5S", 5.0), ("1M", 60.0), ("7u", 7e-6)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-1", "inf", "nanS"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


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
