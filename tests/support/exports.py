"""Small models of every exportable kind (Keras sequential, functional multi-IO, tabular,
``tf.Module``, ``tf.function``), built in the test itself (no downloads).

TensorFlow and Keras are imported when a builder is called.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.repository.export import feature_model

# Small inline tabular data (mtcars-like: disp, cyl -> mpg).
TABULAR = {
    "disp": [160.0, 108.0, 258.0, 360.0, 225.0, 146.7, 140.8, 167.6, 275.8, 472.0],
    "cyl": [6.0, 4.0, 6.0, 8.0, 6.0, 4.0, 4.0, 6.0, 8.0, 8.0],
    "mpg": [21.0, 22.8, 21.4, 18.7, 18.1, 24.4, 22.8, 19.2, 16.4, 10.4],
}


def tf_module() -> Any:
    import tensorflow as tf

    return tf


def sequential_model() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input(shape=(64,)),
            keras.layers.Dense(16, activation="relu", name="image"),
            keras.layers.Dense(10, activation="softmax", name="prediction"),
        ]
    )


def functional_multi_model() -> Any:
    import keras

    keras.utils.set_random_seed(1)
    a = keras.Input(shape=(3,), name="a")
    b = keras.Input(shape=(2,), name="b")
    x = keras.layers.Concatenate()([a, b])
    total = keras.layers.Dense(1, name="total")(x)
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model([a, b], [total, probs])


def tabular_model() -> Any:
    import keras

    keras.utils.set_random_seed(2)
    model = feature_model(["disp", "cyl"], "mpg", hidden_units=(8,), data=TABULAR)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    features = {k: np.asarray(TABULAR[k], "float32").reshape(-1, 1) for k in ("disp", "cyl")}
    model.fit(features, np.asarray(TABULAR["mpg"], "float32"), epochs=30, verbose=0)
    return model


def module_model() -> Any:
    tf = tf_module()

    class HalfPlusTwo(tf.Module):
        def __init__(self) -> None:
            self.a = tf.Variable(0.5)
            self.b = tf.Variable(2.0)

        @tf.function
        def __call__(self, x: Any) -> Any:
            return self.a * x + self.b

    return HalfPlusTwo()


def function_model() -> Any:
    tf = tf_module()
    scale = tf.Variable(3, dtype=tf.int64)

    @tf.function
    def fn(text: Any, n: Any) -> dict[str, Any]:
        return {"length": tf.strings.length(text), "scaled": n * scale}

    fn.scale = scale  # keep the variable alive
    return fn
