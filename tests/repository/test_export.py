"""``gateway.export_savedmodel`` round trips: every model kind is exported, loaded back with
TensorFlow (signature keys, dtypes, shapes, values) and served by ``tfgw modelserver``
to the official ``tensorflow_serving.apis`` stub (predict, classify, regress, labels).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.exports import (
    function_model,
    functional_multi_model,
    module_model,
    sequential_model,
    tabular_model,
    tf_module,
)

from gateway.repository.export import ExportError, export_savedmodel
from gateway.repository.savedmodel import read_savedmodel
from gateway.signatures import CLASSIFY_METHOD, REGRESS_METHOD

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    """name -> (export dir, original model) for every kind of model."""
    tf = tf_module()
    root = tmp_path_factory.mktemp("exports")
    seq, multi, tab, mod, fn = (sequential_model(), functional_multi_model(), tabular_model(),
                                module_model(), function_model())
    concrete = fn.get_concrete_function(
        tf.TensorSpec([None], tf.string, name="text"), tf.TensorSpec([None], tf.int64, name="n")
    )
    fn_inputs = {"text": tf.TensorSpec([None], tf.string), "n": tf.TensorSpec([None], tf.int64)}
    return {
        "sequential": (export_savedmodel(seq, root / "sequential", classify=True), seq),
        "multi": (export_savedmodel(multi, root / "multi"), multi),
        "tabular": (export_savedmodel(tab, root / "tabular", regress=True), tab),
        "module": (export_savedmodel(mod, root / "module",
                                     inputs={"x": tf.TensorSpec([None], tf.float32)},
                                     outputs="prediction"), mod),
        "function": (export_savedmodel(fn, root / "function", inputs=fn_inputs), fn),
        "concrete": (export_savedmodel(concrete, root / "concrete"), concrete),
    }


def _spec(path: Path, signature: str = "serving_default") -> dict[str, Any]:
    sig = read_savedmodel(path).signatures[signature]
    pick = {a: (s.dtype_name, s.shape) for a, s in sig.inputs.items()}
    return {"inputs": pick, "outputs": {a: (s.dtype_name, s.shape) for a, s in
                                        sig.outputs.items()}, "method": sig.method_name}


def _call(path: Path, signature: str = "serving_default", **inputs: Any) -> dict[str, Any]:
    tf = tf_module()
    fn = tf.saved_model.load(str(path)).signatures[signature]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


# --- signatures, loaded back with TensorFlow ----------------------------------------------


def test_sequential_first_and_last_layer_names(exports: dict) -> None:
    path, model = exports["sequential"]
    assert _spec(path) == {
        "inputs": {"image": ("DT_FLOAT", (-1, 64))},
        "outputs": {"prediction": ("DT_FLOAT", (-1, 10))},
        "method": "tensorflow/serving/predict",
    }
    x = np.random.default_rng(0).random((3, 64), dtype=np.float32)
    got = _call(path, image=x)
    np.testing.assert_allclose(got["prediction"], model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_functional_multi_io_keeps_every_name(exports: dict) -> None:
    path, model = exports["multi"]
    assert _spec(path)["inputs"] == {"a": ("DT_FLOAT", (-1, 3)), "b": ("DT_FLOAT", (-1, 2))}
    assert _spec(path)["outputs"] == {"total": ("DT_FLOAT", (-1, 1)),
                                      "probs": ("DT_FLOAT", (-1, 3))}
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.ones((2, 2), np.float32)
    got = _call(path, a=a, b=b)
    total, probs = model([a, b])
    np.testing.assert_allclose(got["total"], total.numpy(), rtol=1e-5)
    np.testing.assert_allclose(got["probs"], probs.numpy(), rtol=1e-5)


def test_tabular_named_features(exports: dict) -> None:
    path, model = exports["tabular"]
    assert _spec(path)["inputs"] == {"disp": ("DT_FLOAT", (-1, 1)), "cyl": ("DT_FLOAT", (-1, 1))}
    assert _spec(path)["outputs"] == {"mpg": ("DT_FLOAT", (-1, 1))}
    got = _call(path, disp=np.array([[160.0]], np.float32), cyl=np.array([[4.0]], np.float32))
    expected = model({"disp": np.array([[160.0]]), "cyl": np.array([[4.0]])}).numpy()
    np.testing.assert_allclose(got["mpg"], expected, rtol=1e-5)
    assert 5.0 < float(got["mpg"][0, 0]) < 40.0  # trained on the inline data


def test_module_single_output_named(exports: dict) -> None:
    path, _ = exports["module"]
    assert _spec(path)["inputs"] == {"x": ("DT_FLOAT", (-1,))}
    assert _spec(path)["outputs"] == {"prediction": ("DT_FLOAT", (-1,))}
    got = _call(path, x=np.array([1.0, 2.0, 5.0], np.float32))
    np.testing.assert_allclose(got["prediction"], [2.5, 3.0, 4.5])


@pytest.mark.parametrize("kind", ["function", "concrete"])
def test_function_dict_outputs_keep_keys(exports: dict, kind: str) -> None:
    path, _ = exports[kind]
    assert _spec(path)["inputs"] == {"text": ("DT_STRING", (-1,)), "n": ("DT_INT64", (-1,))}
    assert _spec(path)["outputs"] == {"length": ("DT_INT32", (-1,)),
                                      "scaled": ("DT_INT64", (-1,))}
    got = _call(path, text=np.array([b"ab", b"hello"], object), n=np.array([1, 7], np.int64))
    assert got["length"].tolist() == [2, 5]
    assert got["scaled"].tolist() == [3, 21]  # the captured variable was saved


def test_classify_signature(exports: dict) -> None:
    tf = tf_module()
    path, model = exports["sequential"]
    spec = _spec(path, "classification")
    assert spec == {
        "inputs": {"inputs": ("DT_STRING", (-1,))},
        "outputs": {"classes": ("DT_STRING", (-1, 10)), "scores": ("DT_FLOAT", (-1, 10))},
        "method": CLASSIFY_METHOD,
    }
    pixels = [float(i % 7) / 7 for i in range(64)]
    example = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(float_list=tf.train.FloatList(value=pixels))}))
    got = _call(path, "classification", inputs=np.array([example.SerializeToString()], object))
    assert got["classes"].tolist() == [[str(i).encode() for i in range(10)]]
    expected = model(np.array([pixels], np.float32)).numpy()
    np.testing.assert_allclose(got["scores"], expected, rtol=1e-5)


def test_regress_signature(exports: dict) -> None:
    tf = tf_module()
    path, model = exports["tabular"]
    assert _spec(path, "regression") == {
        "inputs": {"inputs": ("DT_STRING", (-1,))},
        "outputs": {"outputs": ("DT_FLOAT", (-1,))},
        "method": REGRESS_METHOD,
    }
    rows = [(160.0, 6.0), (108.0, 4.0)]
    examples = [
        tf.train.Example(features=tf.train.Features(feature={
            "disp": tf.train.Feature(float_list=tf.train.FloatList(value=[d])),
            "cyl": tf.train.Feature(float_list=tf.train.FloatList(value=[c]))}))
        .SerializeToString() for d, c in rows
    ]
    got = _call(path, "regression", inputs=np.array(examples, object))
    expected = model({"disp": np.array([[r[0]] for r in rows]),
                      "cyl": np.array([[r[1]] for r in rows])}).numpy().reshape(-1)
    np.testing.assert_allclose(got["outputs"], expected, rtol=1e-5)


def test_classify_labels_and_renamed_inputs(tmp_path: Path) -> None:
    model = sequential_model()
    path = export_savedmodel(model, tmp_path / "m", inputs=["pixels"], outputs=["digit"],
                             classify=[f"d{i}" for i in range(10)])
    assert set(_spec(path)["inputs"]) == {"pixels"}
    assert set(_spec(path)["outputs"]) == {"digit"}
    assert _spec(path, "classification")["outputs"]["classes"] == ("DT_STRING", (-1, 10))


# --- refusals and atomicity ----------------------------------------------------------------


def test_refuses_unbuilt_keras_model(tmp_path: Path) -> None:
    import keras

    model = keras.Sequential([keras.layers.Dense(2, name="prediction")])
    with pytest.raises(ExportError, match="not built"):
        export_savedmodel(model, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_refuses_subclassed_model_without_inputs(tmp_path: Path) -> None:
    import keras

    class Sub(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x: Any) -> Any:
            return self.dense(x)

    model = Sub()
    model(np.zeros((1, 3), np.float32))
    with pytest.raises(ExportError, match="no symbolic inputs"):
        export_savedmodel(model, tmp_path / "m")
    tf = tf_module()
    path = export_savedmodel(model, tmp_path / "ok", inputs={"x": tf.TensorSpec([None, 3])},
                             outputs="y")
    assert _spec(path)["outputs"] == {"y": ("DT_FLOAT", (-1, 2))}


def test_refuses_module_without_input_names(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot name the inputs"):
        export_savedmodel(module_model(), tmp_path / "m")


def test_refuses_unnamed_single_output_and_leaves_nothing(tmp_path: Path) -> None:
    tf = tf_module()
    with pytest.raises(ExportError, match="outputs='prediction'"):
        export_savedmodel(module_model(), tmp_path / "m",
                          inputs={"x": tf.TensorSpec([None], tf.float32)})
    assert os.listdir(tmp_path) == []  # no half-written export, no temp dir


@pytest.mark.parametrize("name", ["", "a b", "../x", "x\x00"])
def test_refuses_bad_input_names(tmp_path: Path, name: str) -> None:
    tf = tf_module()
    with pytest.raises(ExportError, match="cannot name input"):
        export_savedmodel(module_model(), tmp_path / "m", outputs="y",
                          inputs={name: tf.TensorSpec([None], tf.float32)})


def test_existing_path_needs_overwrite(tmp_path: Path) -> None:
    tf = tf_module()
    target = tmp_path / "m"
    target.mkdir()
    kwargs = {"inputs": {"x": tf.TensorSpec([None], tf.float32)}, "outputs": "y"}
    with pytest.raises(ExportError, match="already exists"):
        export_savedmodel(module_model(), target, **kwargs)
    export_savedmodel(module_model(), target, overwrite=True, **kwargs)
    assert (target / "saved_model.pb").is_file()
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_refuses_bad_classify_model(tmp_path: Path) -> None:
    tf = tf_module()
    with pytest.raises(ExportError, match="scores must be"):
        export_savedmodel(module_model(), tmp_path / "m", outputs="y", classify=True,
                          inputs={"x": tf.TensorSpec([None], tf.float32)})


# --- served by tfgw modelserver, called with the official stub ----------------------------


@pytest.fixture(scope="module")
def served(exports: dict, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One model server over a base path holding every export (tabular: v1 'stable', v2)."""
    from support.servers import start_modelserver

    from gateway.repository.publish import publish

    base = tmp_path_factory.mktemp("served")
    names = list(exports)
    entries = "".join(
        f'  config {{ name: "{n}" base_path: "{base / n}" model_platform: "tensorflow" }}\n'
        for n in names
    )
    (base / "models.config").write_text("model_config_list {\n" + entries + "}\n")
    for name, (path, _) in exports.items():
        publish(path, base / name, progress=False, validate=False,
                label="stable" if name == "tabular" else None)
    publish(exports["tabular"][0], base / "tabular", progress=False, validate=False)
    with start_modelserver(["--model-config-file", str(base / "models.config")],
                           wait_models=names) as port:
        yield port


def _stub(port: int) -> Any:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return prediction_service_pb2_grpc.PredictionServiceStub(channel), channel


def _predict(port: int, name: str, label: str | None = None, **inputs: Any) -> Any:
    tf = tf_module()
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if label:
        request.model_spec.version_label = label
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    stub, channel = _stub(port)
    with channel:
        response = stub.Predict(request, timeout=30)
    outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    return outputs, response.model_spec.version.value


@pytest.mark.parametrize("kind", ["sequential", "multi", "tabular", "module", "function",
                                  "concrete"])
def test_served_predict_matches_local(exports: dict, served: int, kind: str) -> None:
    path, _ = exports[kind]
    inputs = {
        "sequential": {"image": np.full((2, 64), 0.25, np.float32)},
        "multi": {"a": np.ones((1, 3), np.float32), "b": np.zeros((1, 2), np.float32)},
        "tabular": {"disp": np.array([[160.0]], np.float32), "cyl": np.array([[4.0]], np.float32)},
        "module": {"x": np.array([4.0], np.float32)},
        "function": {"text": np.array([b"abc"], object), "n": np.array([5], np.int64)},
        "concrete": {"text": np.array([b"abc"], object), "n": np.array([5], np.int64)},
    }[kind]
    got, _ = _predict(served, kind, **inputs)
    expected = _call(path, **inputs)
    assert set(got) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5)


def test_served_version_label(served: int) -> None:
    inputs = {"disp": np.array([[160.0]], np.float32), "cyl": np.array([[4.0]], np.float32)}
    _, latest = _predict(served, "tabular", **inputs)
    _, stable = _predict(served, "tabular", label="stable", **inputs)
    assert (latest, stable) == (2, 1)


def test_served_classify_and_regress(served: int) -> None:
    tf = tf_module()
    from tensorflow_serving.apis import classification_pb2, regression_pb2

    stub, channel = _stub(served)
    with channel:
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name, request.model_spec.signature_name = "sequential", "classification"
        request.input.example_list.examples.add().features.feature["image"].float_list.value[:] = (
            [0.5] * 64)
        result = stub.Classify(request, timeout=30).result
        classes = result.classifications[0].classes
        assert [c.label for c in classes] == [str(i) for i in range(10)]
        assert sum(c.score for c in classes) == pytest.approx(1.0, abs=1e-5)

        request = regression_pb2.RegressionRequest()
        request.model_spec.name, request.model_spec.signature_name = "tabular", "regression"
        example = request.input.example_list.examples.add()
        example.features.feature["disp"].float_list.value.append(160.0)
        example.features.feature["cyl"].float_list.value.append(4.0)
        value = stub.Regress(request, timeout=30).result.regressions[0].value
    expected, _ = _predict(served, "tabular", disp=np.array([[160.0]], np.float32),
                           cyl=np.array([[4.0]], np.float32))
    assert value == pytest.approx(float(expected["mpg"][0, 0]), rel=1e-5)
    del tf
