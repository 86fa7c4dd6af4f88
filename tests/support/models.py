"""Builders that write small, real SavedModels for tests (TensorFlow imported lazily).

Every builder takes a target directory (created; must not already hold a SavedModel)
and returns it as a ``Path``. Models are deterministic (fixed seeds / fixed weights).

- ``build_mnist_model``: Keras 3 functional model, ``serving_default``:
  ``image`` float32 [-1, 784] → ``prediction`` float32 [-1, 10] (softmax).
- ``build_multi_io_model``: ``tf.Module`` with ``serving_default``:
  ``a`` float32 [-1, 3], ``b`` int64 [-1], ``c`` string [-1] →
  ``total`` float32 [-1] (row sums of a), ``doubled`` int64 [-1] (2*b),
  ``echo_bytes`` string [-1] (c + b"!"), ``flag`` bool [-1] (b > 0);
  and ``scale``: ``x`` float32 [-1] → ``y`` float32 [-1] (3*x).
- ``build_half_plus_two``: ``serving_default``: ``x`` DTYPE [-1] → ``y`` DTYPE [-1]
  (x/2+2; integer dtypes use floor division).
- ``build_classify_regress_model``: feature ``x`` (float) of serialized ``tf.Example``s:
  ``classify_x_to_y`` (method ``tensorflow/serving/classify``; ``inputs`` → ``classes``
  [-1, 2] string ``[b"neg", b"pos"]``, ``scores`` [-1, 2] = [1-s, s], s = sigmoid(x)),
  ``regress_x_to_y`` (method ``tensorflow/serving/regress``; ``inputs`` → ``outputs``
  [-1] = x/2+2, feature ``bias`` (float, default 0) added), and ``serving_default``
  (predict: ``x`` float32 [-1] → ``y`` = x/2+2).
- ``build_slow_model``: ``serving_default``: ``x`` float32 [-1] → ``y`` = x, after sleeping
  ``seconds`` inside the graph (a ``SleepDataset`` op, so it works in any process).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = [
    "CLASSIFY_METHOD",
    "REGRESS_METHOD",
    "build_classify_regress_model",
    "build_half_plus_two",
    "build_mnist_model",
    "build_multi_io_model",
    "build_slow_model",
    "make_example",
    "set_method_names",
]

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


def _tf() -> Any:
    import tensorflow as tf

    return tf


def _target(path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    if (target / "saved_model.pb").exists():
        raise FileExistsError(f"{target} already holds a SavedModel")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def build_mnist_model(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Keras functional MLP: ``image`` (784,) → Dense(32) → Dense ``prediction`` (10)."""
    tf = _tf()
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input(shape=(784,), dtype="float32", name="image")
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(image)
    prediction = keras.layers.Dense(10, activation="softmax", name="prediction")(hidden)
    model = keras.Model(inputs=image, outputs=prediction, name="mnist")

    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="image")])
    def serve(image: Any) -> dict[str, Any]:
        return {"prediction": model(image, training=False)}

    module.serve = serve
    target = _target(path)
    tf.saved_model.save(module, str(target), signatures={"serving_default": serve})
    return target


def build_multi_io_model(path: str | os.PathLike[str]) -> Path:
    """Several inputs/outputs of different dtypes, plus a second signature ``scale``."""
    tf = _tf()
    module = tf.Module()

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 3], tf.float32, name="a"),
            tf.TensorSpec([None], tf.int64, name="b"),
            tf.TensorSpec([None], tf.string, name="c"),
        ]
    )
    def serve(a: Any, b: Any, c: Any) -> dict[str, Any]:
        return {
            "total": tf.reduce_sum(a, axis=1),
            "doubled": b * 2,
            "echo_bytes": tf.strings.join([c, "!"]),
            "flag": b > 0,
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def scale(x: Any) -> dict[str, Any]:
        return {"y": x * 3.0}

    module.serve, module.scale = serve, scale
    target = _target(path)
    tf.saved_model.save(module, str(target), signatures={"serving_default": serve, "scale": scale})
    return target


def build_half_plus_two(path: str | os.PathLike[str], dtype: str = "float32") -> Path:
    """``y = x / 2 + 2`` over a 1-D tensor of ``dtype`` (floor division for integers)."""
    tf = _tf()
    tf_dtype = tf.as_dtype(dtype)
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf_dtype, name="x")])
    def serve(x: Any) -> dict[str, Any]:
        two = tf.constant(2, dtype=tf_dtype)
        half = x // two if tf_dtype.is_integer else x / two
        return {"y": half + two}

    module.serve = serve
    target = _target(path)
    tf.saved_model.save(module, str(target), signatures={"serving_default": serve})
    return target


def make_example(**features: float | int | bytes | list[Any]) -> Any:
    """A ``tf.train.Example`` from keyword features (float/int/bytes or lists of them)."""
    tf = _tf()
    feature = {}
    for key, value in features.items():
        values = value if isinstance(value, list) else [value]
        if all(isinstance(v, bytes) for v in values):
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        elif all(isinstance(v, int) for v in values):
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        else:
            floats = [float(v) for v in values]
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=floats))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def build_classify_regress_model(path: str | os.PathLike[str]) -> Path:
    """classify / regress signatures over serialized ``tf.Example`` plus a predict one."""
    tf = _tf()
    spec = {
        "x": tf.io.FixedLenFeature([1], tf.float32),
        "bias": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
    }
    module = tf.Module()
    examples_spec = tf.TensorSpec([None], tf.string, name="inputs")

    @tf.function(input_signature=[examples_spec])
    def classify(inputs: Any) -> dict[str, Any]:
        x = tf.io.parse_example(inputs, spec)["x"][:, 0]
        s = tf.sigmoid(x)
        batch = tf.shape(x)[0]
        classes = tf.tile(tf.constant([[b"neg", b"pos"]]), [batch, 1])
        return {"classes": classes, "scores": tf.stack([1.0 - s, s], axis=1)}

    @tf.function(input_signature=[examples_spec])
    def regress(inputs: Any) -> dict[str, Any]:
        parsed = tf.io.parse_example(inputs, spec)
        return {"outputs": parsed["x"][:, 0] / 2.0 + 2.0 + parsed["bias"][:, 0]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(x: Any) -> dict[str, Any]:
        return {"y": x / 2.0 + 2.0}

    module.classify, module.regress, module.predict = classify, regress, predict
    target = _target(path)
    signatures = {
        "classify_x_to_y": classify,
        "regress_x_to_y": regress,
        "serving_default": predict,
    }
    tf.saved_model.save(module, str(target), signatures=signatures)
    set_method_names(target, {"classify_x_to_y": CLASSIFY_METHOD, "regress_x_to_y": REGRESS_METHOD})
    return target


def set_method_names(path: str | os.PathLike[str], methods: dict[str, str]) -> None:
    """Rewrite SignatureDef ``method_name``s in ``saved_model.pb`` (TF2 saves always predict)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb_path = Path(path) / "saved_model.pb"
    saved = saved_model_pb2.SavedModel.FromString(pb_path.read_bytes())
    for meta_graph in saved.meta_graphs:
        for name, method in methods.items():
            meta_graph.signature_def[name].method_name = method
    pb_path.write_bytes(saved.SerializeToString())


def build_slow_model(path: str | os.PathLike[str], seconds: float) -> Path:
    """Identity on ``x`` that first sleeps ``seconds`` inside the graph (for deadlines)."""
    tf = _tf()
    from tensorflow.python.data.experimental.ops import testing

    micros = int(seconds * 1_000_000)
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(x: Any) -> dict[str, Any]:
        dataset = tf.data.Dataset.from_tensors(x).apply(testing.sleep(micros))
        return {"y": dataset.get_single_element()}

    module.serve = serve
    target = _target(path)
    tf.saved_model.save(module, str(target), signatures={"serving_default": serve})
    return target
