"""Model server options → ModelServerConfig, and version policies (no server, no TF)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorflow_serving.config import model_server_config_pb2

from gateway.errors import InvalidInput
from gateway.modelserver.options import ModelServerOptions, build_server_config
from gateway.modelserver.versions import aspired_versions


def policy(text: str) -> model_server_config_pb2.ModelConfig:
    from google.protobuf import text_format

    config = model_server_config_pb2.ModelConfig()
    text_format.Parse(text, config)
    return config.model_version_policy


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {12}),
        ("model_version_policy { latest { num_versions: 2 } }", {7, 12}),
        ("model_version_policy { all {} }", {1, 7, 12}),
        ("model_version_policy { specific { versions: 1 versions: 99 } }", {1}),
    ],
    ids=["default", "latest-2", "all", "specific"],
)
def test_version_policies(text: str, expected: set[int]) -> None:
    assert aspired_versions(policy(text), {1, 7, 12}) == expected


def test_config_file_with_labels_and_relative_base_path(tmp_path: Path) -> None:
    config_path = tmp_path / "models.config"
    config_path.write_text(
        """
        model_config_list {
          config {
            name: "digits"
            base_path: "models/digits"
            model_platform: "tensorflow"
            model_version_policy { specific { versions: 1 versions: 2 } }
            version_labels { key: "stable" value: 1 }
            version_labels { key: "canary" value: 2 }
          }
          config { name: "other" base_path: "/abs/other" }
        }
        """
    )
    config = build_server_config(ModelServerOptions(model_config_file=str(config_path)))
    digits, other = config.model_config_list.config
    assert digits.base_path == str(tmp_path / "models" / "digits")
    assert dict(digits.version_labels) == {"stable": 1, "canary": 2}
    assert other.base_path == "/abs/other"


def test_flags_build_one_model(tmp_path: Path) -> None:
    options = ModelServerOptions(model_name="m", model_base_path=str(tmp_path))
    (model,) = build_server_config(options).model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("m", str(tmp_path), "tensorflow")


def test_options_need_a_source() -> None:
    with pytest.raises(InvalidInput, match="required"):
        build_server_config(ModelServerOptions())
