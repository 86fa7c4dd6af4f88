"""``gateway.repository``: publish numbering, ``--version``, labels in models.config,
``--keep``, warmup records, name/symlink safety, ``versions`` and the CLI edges.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.protobuf import text_format
from support.paths import REPO_ROOT

from gateway.errors import Code, GatewayError, InvalidInput
from gateway.pb import model_server_config_pb2
from gateway.repository.publish import CONFIG_FILE, PublishError, publish, versions
from gateway.repository.savedmodel import InvalidSavedModel


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tf.Module SavedModel: ``x`` float32 [-1] -> ``y`` = 2x + 1."""
    import tensorflow as tf

    from gateway.repository.export import export_savedmodel

    class Affine(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(2.0)

        @tf.function
        def __call__(self, x: Any) -> Any:
            return self.w * x + 1.0

    path = tmp_path_factory.mktemp("tiny") / "model"
    return export_savedmodel(Affine(), path, inputs={"x": tf.TensorSpec([None], tf.float32)},
                             outputs="y")


def manifest(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*") if p.is_file()}


def _config(base: Path) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((base / CONFIG_FILE).read_text(), config)
    return config


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_numbering_copies_everything(tiny_model: Path, tmp_path: Path) -> None:
    base = tmp_path / "models" / "affine"
    results = [publish(tiny_model, base, progress=False) for _ in range(3)]
    assert [(r.version, r.path) for r in results] == [(n, base / str(n)) for n in (1, 2, 3)]
    for n in (1, 2, 3):
        assert manifest(base / str(n)) == manifest(tiny_model)
    assert not [p for p in os.listdir(base) if p.startswith(".tmp-")]
    assert not (tmp_path / "models" / CONFIG_FILE).exists()  # no labels, no config


def test_published_version_loads(tiny_model: Path, tmp_path: Path) -> None:
    import tensorflow as tf

    result = publish(tiny_model, tmp_path / "affine", progress=False)
    fn = tf.saved_model.load(str(result.path)).signatures["serving_default"]
    assert fn(x=tf.constant([1.0, 3.0]))["y"].numpy().tolist() == [3.0, 7.0]


def test_explicit_version_and_refusing_existing(tiny_model: Path, tmp_path: Path) -> None:
    base = tmp_path / "affine"
    assert publish(tiny_model, base, version=5, progress=False).version == 5
    assert publish(tiny_model, base, progress=False).version == 6  # next after the highest
    with pytest.raises(PublishError, match="version 5 already exists") as info:
        publish(tiny_model, base, version=5, progress=False)
    assert info.value.code == Code.ALREADY_EXISTS
    assert sorted(os.listdir(base)) == [".publish.lock", "5", "6"]  # no temp left behind


def test_labels_written_to_models_config(tiny_model: Path, tmp_path: Path) -> None:
    base = tmp_path / "affine"
    publish(tiny_model, base, label="stable", progress=False)
    publish(tiny_model, base, progress=False)
    publish(tiny_model, base, label="canary", progress=False)
    publish(tiny_model, tmp_path / "other", label="stable", progress=False)
    config = _config(tmp_path)
    entries = {e.name: e for e in config.model_config_list.config}
    assert set(entries) == {"affine", "other"}
    entry = entries["affine"]
    assert (entry.base_path, entry.model_platform) == (str(base.resolve()), "tensorflow")
    assert dict(entry.version_labels) == {"stable": 1, "canary": 3}
    assert list(entry.model_version_policy.specific.versions) == [1, 3]
    publish(tiny_model, base, label="stable", progress=False)  # a label moves
    entry = {e.name: e for e in _config(tmp_path).model_config_list.config}["affine"]
    assert dict(entry.version_labels) == {"stable": 4, "canary": 3}
    assert list(entry.model_version_policy.specific.versions) == [3, 4]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".models.config.")
                and not p.endswith(".lock")]


def test_keep_prunes_old_unlabelled_versions(tiny_model: Path, tmp_path: Path) -> None:
    base = tmp_path / "affine"
    publish(tiny_model, base, label="stable", progress=False)  # 1 (labelled)
    for _ in range(4):
        publish(tiny_model, base, progress=False)  # 2..5
    publish(tiny_model, base, keep=2, progress=False)  # 6
    assert [v.number for v in versions(base)] == [1, 5, 6]
    publish(tiny_model, base, keep=1, progress=False)  # 7: only newest + labelled remain
    assert [v.number for v in versions(base)] == [1, 7]
    publish(tiny_model, base, version=3, keep=1, progress=False)  # just published: kept
    assert [v.number for v in versions(base)] == [1, 3, 7]
    assert not [p for p in os.listdir(base) if p.startswith(".tmp-")]


def test_versions_lists_sizes_labels_signatures(tiny_model: Path, tmp_path: Path) -> None:
    base = tmp_path / "affine"
    publish(tiny_model, base, progress=False)
    publish(tiny_model, base, label="stable", progress=False)
    infos = versions(base)
    assert [(v.number, v.labels) for v in infos] == [(1, []), (2, ["stable"])]
    assert infos[0].size == sum(manifest(tiny_model).values())
    assert infos[1].signatures == {"serving_default": "(x:DT_FLOAT[-1]) -> (y:DT_FLOAT[-1])"}
    with pytest.raises(GatewayError, match="no such model base path"):
        versions(tmp_path / "missing")


@pytest.mark.parametrize("target", ["..", ".", "a b", "x\x00y", "-x"])
def test_traversal_and_bad_names_refused(tiny_model: Path, tmp_path: Path, target: str) -> None:
    with pytest.raises(InvalidInput, match="invalid model name"):
        publish(tiny_model, f"{tmp_path}/base/{target}", progress=False)
    assert not (tmp_path / "base").exists()


@pytest.mark.parametrize("label", ["../x", "a/b", "", "x\x00"])
def test_bad_labels_refused(tiny_model: Path, tmp_path: Path, label: str) -> None:
    with pytest.raises(InvalidInput, match="invalid version label"):
        publish(tiny_model, tmp_path / "affine", label=label, progress=False)
    assert not (tmp_path / CONFIG_FILE).exists()


def test_symlink_escape_refused(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "export"
    shutil.copytree(tiny_model, src)
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    (src / "assets" / "leak.txt").symlink_to(secret)
    with pytest.raises(PublishError, match="symlink points outside"):
        publish(src, tmp_path / "base" / "affine", progress=False)
    assert not (tmp_path / "base" / "affine").exists()
    (src / "assets" / "leak.txt").unlink()
    (src / "assets" / "inside.txt").symlink_to(src / "fingerprint.pb")  # inside: copied
    result = publish(src, tmp_path / "base" / "affine", progress=False)
    copied = result.path / "assets" / "inside.txt"
    assert not copied.is_symlink()
    assert copied.read_bytes() == (src / "fingerprint.pb").read_bytes()


def test_invalid_savedmodels_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidSavedModel, match=r"saved_model\.pb"):
        publish(tmp_path / "empty", tmp_path / "m", progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "saved_model.pb").write_bytes(b"\xff\xff\xff garbage")
    with pytest.raises(InvalidSavedModel, match="not a SavedModel"):
        publish(tmp_path / "junk", tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists()


def test_stale_temp_dirs_cleaned(tiny_model: Path, tmp_path: Path) -> None:
    base = tmp_path / "affine"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = base / f".tmp-{dead.pid}-deadbeef"
    (stale / "variables").mkdir(parents=True)
    live = base / f".tmp-{os.getpid()}-cafe"  # owner alive and recent: left alone
    live.mkdir()
    assert publish(tiny_model, base, progress=False).version == 1
    assert not stale.exists()
    assert live.exists()


def test_warmup_records_are_prediction_logs(tiny_model: Path, tmp_path: Path) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    requests = tmp_path / "warmup.json"
    requests.write_bytes(orjson.dumps([{"instances": [1.0, 2.5]},
                                       {"signature_name": "serving_default",
                                        "inputs": {"x": [4.0]}}]))
    result = publish(tiny_model, tmp_path / "affine", warmup=requests, progress=False)
    record_file = result.path / "assets.extra" / "tf_serving_warmup_requests"
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(str(record_file))]
    assert len(logs) == 2
    first = logs[0].predict_log.request
    assert (first.model_spec.name, first.model_spec.signature_name) == (
        "affine", "serving_default")
    assert tf.make_ndarray(first.inputs["x"]).tolist() == [1.0, 2.5]
    assert tf.make_ndarray(logs[1].predict_log.request.inputs["x"]).tolist() == [4.0]


@pytest.mark.parametrize("body, message", [
    ({"instances": [{"z": 1.0}]}, "warmup request 0: .*unknown input.*z.*missing input.*x"),
    ({"instances": ["a"]}, "warmup request 0: .*input 'x'.*not of expected type: DT_FLOAT"),
    ({"signature_name": "nope", "instances": [1.0]}, "warmup request 0: no signature 'nope'"),
    ({"instances": [1.0], "inputs": [1.0]}, "exactly one of"),
])
def test_bad_warmup_refused(tiny_model: Path, tmp_path: Path, body: Any, message: str) -> None:
    requests = tmp_path / "warmup.json"
    requests.write_bytes(orjson.dumps(body))
    with pytest.raises(InvalidInput, match=message):
        publish(tiny_model, tmp_path / "affine", warmup=requests, progress=False)
    assert not (tmp_path / "affine").exists()


def test_cli_publish_versions_and_errors(tiny_model: Path, tmp_path: Path) -> None:
    base = tmp_path / "affine"
    done = _cli("publish", str(tiny_model), str(base), "--label", "stable", "--no-validate")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"published version 1 (label stable): {base / '1'}\n"
    done = _cli("publish", str(tiny_model), str(base), "--version", "1", "--no-validate")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"tfgw publish: error: version 1 already exists at {base / '1'}"]
    done = _cli("publish", str(tiny_model), str(tmp_path / ".."), "--no-validate")
    assert done.returncode == 2 and "invalid model name '..'" in done.stderr
    done = _cli("publish", str(tiny_model), str(base), "--keep", "0")
    assert done.returncode == 2 and "must be at least 1" in done.stderr
    listing = _cli("versions", str(base), "--json")
    assert listing.returncode == 0, listing.stderr
    rows = orjson.loads(listing.stdout)
    assert [(r["number"], r["labels"]) for r in rows] == [(1, ["stable"])]
    text = _cli("versions", str(base))
    assert text.stdout.startswith("1  ") and "labels: stable" in text.stdout
    assert "serving_default: (x:DT_FLOAT[-1]) -> (y:DT_FLOAT[-1])" in text.stdout


def test_large_copy_with_progress_bar(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "big"
    shutil.copytree(tiny_model, src)
    blob = os.urandom(9 << 20)  # above the progress-bar threshold
    (src / "assets" / "blob.bin").write_bytes(blob)
    result = publish(src, tmp_path / "affine", progress=True, validate=False)
    assert manifest(result.path) == manifest(src)
    assert (result.path / "assets" / "blob.bin").read_bytes() == blob
