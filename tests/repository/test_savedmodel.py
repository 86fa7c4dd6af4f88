"""``tfgw inspect`` / ``gateway.repository.savedmodel``: signatures, dtypes, shapes and example
requests for each model kind, base-path resolution, the TensorBoard graph log, errors.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from support.exports import function_model, functional_multi_model, module_model, sequential_model
from support.paths import REPO_ROOT

from gateway.codec.samples import example_request
from gateway.http.docs import docs_routes
from gateway.repository.export import export_savedmodel, feature_model
from gateway.repository.savedmodel import read_savedmodel, write_graph_log
from gateway.repository.warmup import prediction_logs
from gateway.types import ModelEntry


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import tensorflow as tf

    root = tmp_path_factory.mktemp("inspect")
    fn_inputs = {"text": tf.TensorSpec([None], tf.string), "n": tf.TensorSpec([None], tf.int64)}
    return {
        "sequential": export_savedmodel(sequential_model(), root / "sequential", classify=True),
        "multi": export_savedmodel(functional_multi_model(), root / "multi"),
        "tabular": export_savedmodel(feature_model(["disp", "cyl"], "mpg"), root / "tabular",
                                     regress=True),
        "module": export_savedmodel(module_model(), root / "module", outputs="prediction",
                                    inputs={"x": tf.TensorSpec([None], tf.float32)}),
        "function": export_savedmodel(function_model(), root / "function", inputs=fn_inputs),
    }


def _inspect(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "gateway", "inspect", *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


EXPECTED_TEXT = {
    "sequential": [
        "signature_def['serving_default']:",
        "    inputs['image'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 64)",
        "    outputs['prediction'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 10)",
        "signature_def['classification']:",
        "  Method name is: tensorflow/serving/classify",
    ],
    "multi": ["inputs['a']", "inputs['b']", "outputs['total']", "outputs['probs']"],
    "tabular": [
        "    inputs['disp'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 1)",
        "    outputs['mpg'] tensor_info:",
        'Example request body: {"instances":[{"cyl":[0.0],"disp":[0.0]}]}',
        "  Method name is: tensorflow/serving/regress",
    ],
    "module": ["inputs['x']", "outputs['prediction']",
               'Example request body: {"instances":[{"x":0.0}]}'],
    "function": ["dtype: DT_STRING", "dtype: DT_INT64", "outputs['length']",
                 "dtype: DT_INT32", 'instances":[{"n":0,"text":""}]'],
}


@pytest.mark.parametrize("kind", list(EXPECTED_TEXT))
def test_inspect_text_per_model_kind(kinds: dict[str, Path], kind: str) -> None:
    done = _inspect(str(kinds[kind]))
    assert done.returncode == 0, done.stderr
    for fragment in EXPECTED_TEXT[kind]:
        assert fragment in done.stdout, (fragment, done.stdout)
    assert "__saved_model_init_op" not in done.stdout


def test_inspect_json_and_base_path_latest(kinds: dict[str, Path], tmp_path: Path) -> None:
    from gateway.repository.publish import publish

    base = tmp_path / "mpg"
    publish(kinds["module"], base, progress=False, validate=False)
    publish(kinds["tabular"], base, progress=False, validate=False)
    done = _inspect(str(base), "--json")
    assert done.returncode == 0, done.stderr
    doc = orjson.loads(done.stdout)
    assert doc["path"] == str(base / "2")
    assert doc["tag_sets"] == [["serve"]]
    serving = doc["signatures"]["serving_default"]
    assert serving["method_name"] == "tensorflow/serving/predict"
    assert serving["inputs"]["disp"] == {"name": "serving_default_disp:0", "dtype": "DT_FLOAT",
                                         "shape": [-1, 1]}
    assert serving["example_request"] == {"instances": [{"cyl": [0.0], "disp": [0.0]}]}
    assert set(doc["signatures"]) == {"serving_default", "regression"}


@pytest.mark.parametrize("kind", ["sequential", "tabular", "function"])
async def test_inspect_and_the_docs_page_show_the_same_example(
    kinds: dict[str, Path], kind: str, aiohttp_client: Any
) -> None:
    """One example builder: ``tfgw inspect --json`` and ``/docs`` print the same body."""
    done = _inspect(str(kinds[kind]), "--json")
    assert done.returncode == 0, done.stderr
    inspected = orjson.loads(done.stdout)["signatures"]["serving_default"]["example_request"]
    info = read_savedmodel(kinds[kind])

    async def models() -> list[ModelEntry]:
        return [ModelEntry(kind, 1, info.signatures)]

    app = web.Application()
    app.add_routes(docs_routes(models, lambda: None))
    page = await (await (await aiohttp_client(app)).get("/docs")).text()
    section = page.split('data-signature="serving_default"', 1)[1]
    shown = html.unescape(section.split('<pre class="tfgw-body">', 1)[1].split("</pre>", 1)[0])
    assert orjson.loads(shown) == inspected


@pytest.mark.parametrize("kind", ["sequential", "multi", "tabular", "module", "function"])
def test_example_requests_are_accepted(kinds: dict[str, Path], kind: str) -> None:
    """Each example body converts to tensors that the loaded signature runs on."""
    import tensorflow as tf

    info = read_savedmodel(kinds[kind])
    body = example_request(info.signatures["serving_default"])
    (record,) = prediction_logs([body], info.signatures, kind)
    from tensorflow_serving.apis import prediction_log_pb2

    request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
    fn = tf.saved_model.load(str(kinds[kind])).signatures["serving_default"]
    outputs = fn(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
    assert set(outputs) == set(info.signatures["serving_default"].outputs)
    assert all(int(v.shape[0]) == 1 for v in outputs.values())


def test_graph_log_for_tensorboard(kinds: dict[str, Path], tmp_path: Path) -> None:
    import tensorflow as tf

    logdir = write_graph_log(kinds["sequential"], tmp_path / "logs")
    (event_file,) = list(logdir.glob("events.out.tfevents.*"))
    graphs = [e for e in tf.compat.v1.train.summary_iterator(str(event_file)) if e.graph_def]
    assert graphs
    graph = tf.compat.v1.GraphDef.FromString(graphs[0].graph_def)
    assert any(node.op for node in graph.node)


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "no such directory"),
    (lambda p: p, "neither a SavedModel"),
])
def test_inspect_errors_are_one_line(tmp_path: Path, make: Any, message: str) -> None:
    done = _inspect(str(make(tmp_path)))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr and done.stderr.startswith("tfgw inspect: error:")
