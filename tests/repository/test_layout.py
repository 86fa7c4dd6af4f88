"""``gateway.repository.layout``: version directories and models.config, the one reader and
writer every part of the project uses (publish, inspect, the model server, serve, docker)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from google.protobuf import text_format

from gateway.config import GatewayConfig
from gateway.docker_backend import container_spec
from gateway.errors import InvalidInput
from gateway.modelserver.options import ModelServerOptions, build_server_config
from gateway.repository.layout import (
    CONFIG_FILE,
    ModelConfigError,
    ModelServerConfig,
    latest_version,
    model_labels,
    model_name_for,
    read_model_config,
    version_dirs,
    write_model_config,
)
from gateway.repository.publish import PublishError, publish
from gateway.repository.savedmodel import resolve_savedmodel_dir


def test_version_dirs_only_numeric_directories(tmp_path: Path) -> None:
    for name in ["1", "7", "12", ".tmp-13", "latest", "0003", "٣"]:
        (tmp_path / name).mkdir()
    (tmp_path / "9").write_text("a file, not a version")
    assert version_dirs(tmp_path) == {
        1: tmp_path / "1",
        7: tmp_path / "7",
        12: tmp_path / "12",
        3: tmp_path / "0003",
    }
    assert latest_version(tmp_path) == (12, tmp_path / "12")
    assert version_dirs(tmp_path / "missing") == {}
    assert latest_version(tmp_path / "missing") is None


@pytest.mark.parametrize("marker", ["saved_model.pb", "saved_model.pbtxt"])
def test_a_bare_savedmodel_is_version_one_everywhere(tmp_path: Path, marker: str) -> None:
    """The layout, inspect, the model server, serve's name and docker all agree."""
    export = tmp_path / "export" / "digits"
    export.mkdir(parents=True)
    (export / marker).write_bytes(b"")
    (export / "5").mkdir()  # a numeric child of a SavedModel is not a version
    assert version_dirs(export) == {1: export}
    assert latest_version(export) == (1, export)
    assert resolve_savedmodel_dir(export) == export
    assert model_name_for(export) == "digits"
    options = ModelServerOptions(model_name="digits", model_base_path=str(export))
    assert build_server_config(options).model_config_list.config[0].base_path == str(export)
    spec = container_spec(export)
    assert [v["bind"] for v in spec["volumes"].values()] == ["/models/digits/1"]
    with pytest.raises(PublishError, match="is a SavedModel, not a model base path"):
        publish(export, export, validate=False, progress=False)


def test_model_name_for_a_version_directory(tmp_path: Path) -> None:
    version = tmp_path / "digits" / "3"
    version.mkdir(parents=True)
    assert model_name_for(version) == "3"  # not a SavedModel: just a directory
    (version / "saved_model.pb").write_bytes(b"")
    assert model_name_for(version) == "digits"
    assert model_name_for(tmp_path / "digits") == "digits"


def test_config_round_trip_keeps_relative_paths_unless_resolved(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_FILE
    config = ModelServerConfig()
    model = config.model_config_list.config.add(name="digits", base_path="digits")
    model.version_labels["stable"] = 2
    write_model_config(path, config)
    assert [p.name for p in tmp_path.iterdir()] == [CONFIG_FILE]  # no temp file left
    assert read_model_config(path, resolve=False).model_config_list.config[0].base_path == "digits"
    resolved = read_model_config(path)
    assert resolved.model_config_list.config[0].base_path == str(tmp_path / "digits")
    assert model_labels(resolved) == {"digits": {"stable": 2}}
    assert read_model_config(tmp_path / "missing", missing_ok=True) == ModelServerConfig()


BAD_CONFIGS = [
    ("model_config_list { config { name: 'a' } } nonsense", "invalid ModelServerConfig"),
    ("model_config_list { config { name: 'a' } }", "has no base_path"),
    ("model_config_list { config { name: 'a/b' base_path: '/x' } }", "invalid model name"),
    ("model_config_list { config { name: 'a' base_path: '/x' } "
     "config { name: 'a' base_path: '/y' } }", "configured twice"),
    ("model_config_list { config { name: 'a' base_path: '/x' "
     "version_labels { key: 'l' value: 0 } } }", "positive version"),
    ("model_config_list { config { name: 'a' base_path: '/x' "
     "version_labels { key: '../l' value: 1 } } }", "invalid version label"),
    ("model_config_list { config { name: 'a' base_path: '/x' model_platform: 'onnx' } }",
     "unsupported model_platform"),
    ("custom_model_config {}", "custom_model_config is not supported"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_CONFIGS)
def test_every_reader_refuses_a_bad_config_the_same_way(tmp_path: Path, text: str,
                                                         fragment: str) -> None:
    """The model server, the gateway, serve and docker all read models.config here."""
    path = tmp_path / CONFIG_FILE
    path.write_text(text)
    with pytest.raises(ModelConfigError, match=fragment):
        read_model_config(path)
    with pytest.raises(ModelConfigError, match=fragment):
        build_server_config(ModelServerOptions(model_config_file=str(path)))
    with pytest.raises(ValueError, match=fragment):
        GatewayConfig.from_args(argparse.Namespace(model_config_file=str(path)), env={})
    with pytest.raises(InvalidInput, match=fragment):
        container_spec(model_config_file=path)
    assert issubclass(ModelConfigError, InvalidInput)


def test_unreadable_configs(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="not found"):
        read_model_config(tmp_path / "missing")
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ModelConfigError, match="cannot read"):
        read_model_config(tmp_path / "binary")
    text = "model_config_list { config { name: 'a' base_path: 'rel' } }"
    assert text_format.Parse(text, ModelServerConfig())  # parses; relative stays relative
