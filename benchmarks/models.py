"""The benchmarks' own model builder (independent of ``tests/support``).

``build_mnist_model(path)`` writes the MNIST-shaped SavedModel every gateway benchmark
serves: ``serving_default`` takes ``image`` float32 [-1, 784] and answers ``prediction``
float32 [-1, 10] (a Dense(32) → Dense(10) softmax Keras model, fixed seed). TensorFlow is
imported only when a model is built, so importing this module stays cheap.

    python benchmarks/models.py /tmp/models/mnist/1
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["build_mnist_model"]


def build_mnist_model(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Write the MNIST-shaped SavedModel to ``path`` (which must not hold one yet)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    target = Path(path)
    if (target / "saved_model.pb").exists():
        raise FileExistsError(f"{target} already holds a SavedModel")
    target.parent.mkdir(parents=True, exist_ok=True)
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
    tf.saved_model.save(module, str(target), signatures={"serving_default": serve})
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} SAVEDMODEL_DIR")
    print(build_mnist_model(sys.argv[1]))
