"""``tfgw demo``: the whole path in one command, on data that ships with scikit-learn.

Train a small Keras digit classifier on ``load_digits`` (input layer ``image``, output
layer ``prediction``), export it with :func:`gateway.export_savedmodel`, publish it into
``WORKDIR/models/digits``, serve it with the embedded model server and the gateway in this
process (``gateway.runtime.LocalStack``), then ask for the same held-out digits three ways:
CloudML JSON, TF Serving JSON and gRPC with the official ``tensorflow_serving.apis`` stub.
TensorFlow, Keras and scikit-learn are imported inside functions only.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gateway.runtime import LocalStack, pick_port, wait_for_stop_signal
from gateway.signatures import DEFAULT_SIGNATURE

__all__ = [
    "MODEL_NAME",
    "DemoOptions",
    "DigitsData",
    "build_digits_model",
    "load_digits_split",
    "predict_official_grpc",
    "render_digit",
    "run_demo",
    "train_digits",
]

MODEL_NAME = "digits"
PATHS = ("REST (CloudML)", "REST (TF Serving)", "gRPC")
SHADES = " ░▒▓█"
ASCII_SHADES = " .:*#"
KEEP_VERSIONS = 3


# -- data and model ---------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DigitsData:
    """scikit-learn's 8x8 digits as float32 rows of 64 pixels (0..16) and int labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> DigitsData:
    """A stratified, seeded split of ``sklearn.datasets.load_digits`` (no download)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return DigitsData(x_train, y_train, x_test, y_test)


def build_digits_model(seed: int = 0) -> Any:
    """Keras MLP: ``image`` (64 pixels, 0..16) → rescale → Dense(64) → ``prediction`` (10)."""
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input(shape=(64,), dtype="float32", name="image")
    scaled = keras.layers.Rescaling(1.0 / 16.0, name="rescale")(image)
    hidden = keras.layers.Dense(64, activation="relu", name="hidden")(scaled)
    prediction = keras.layers.Dense(10, activation="softmax", name="prediction")(hidden)
    model = keras.Model(inputs=image, outputs=prediction, name="digits")
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def train_digits(
    data: DigitsData,
    epochs: int = 20,
    *,
    seed: int = 0,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> Any:
    """Fit :func:`build_digits_model` on ``data``; ``on_epoch(epoch, logs)`` after each."""
    import keras

    model = build_digits_model(seed)
    callbacks = []
    if on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, dict(logs or {}))
        ))
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0,
              callbacks=callbacks)
    return model


# -- terminal pictures ------------------------------------------------------------------
def _shades() -> str:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        SHADES.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII_SHADES
    return SHADES


def render_digit(pixels: Sequence[float] | np.ndarray, shades: str = SHADES) -> list[str]:
    """Eight lines of 16 characters: each 0..16 pixel as two block/shade characters."""
    grid = np.clip(np.asarray(pixels, dtype=np.float64).reshape(8, 8), 0, 16)
    levels = np.rint(grid / 16.0 * (len(shades) - 1)).astype(int)
    return ["".join(shades[v] * 2 for v in row) for row in levels]


def _caption(label: int, answers: Sequence[int]) -> list[str]:
    agree = len(set(answers)) == 1
    mark = "" if agree else "  ✗ differ"
    short = ("CloudML", "TF Serving", "gRPC")
    lines = [f"true {label}{mark}"]
    lines += [f"{name:<10} {answer}" for name, answer in zip(short, answers, strict=True)]
    return lines


def render_results(
    images: np.ndarray, labels: np.ndarray, answers: np.ndarray, per_row: int = 4
) -> str:
    """Digits side by side, ``per_row`` at a time, each with its label and 3 answers."""
    shades = _shades()
    blocks = []
    for start in range(0, len(images), per_row):
        cells = [
            render_digit(images[i], shades) + _caption(int(labels[i]), answers[i].tolist())
            for i in range(start, min(start + per_row, len(images)))
        ]
        rows = ["   ".join(f"{cell[r]:<16}" for cell in cells).rstrip()
                for r in range(len(cells[0]))]
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)


# -- the three request paths ------------------------------------------------------------
def predict_cloudml(rest_url: str, images: np.ndarray, signature: str = DEFAULT_SIGNATURE
                    ) -> np.ndarray:
    """CloudML/tfdeploy JSON to ``/{signature}/predict``; class per image."""
    from gateway.client import RestClient

    body = {"instances": [{"image": row} for row in images.tolist()]}
    answer = RestClient(rest_url).post(f"/{signature}/predict", body)
    scores = np.asarray([p["prediction"] for p in answer["predictions"]])
    return scores.argmax(axis=1)


def predict_tfserving_rest(rest_url: str, images: np.ndarray, model: str = MODEL_NAME
                           ) -> np.ndarray:
    """TF Serving JSON (``instances``) to ``/v1/models/{model}:predict``; class per image."""
    from gateway.client import RestClient

    outputs = RestClient(rest_url).predict(model, instances=images)
    return outputs["prediction"].argmax(axis=1)


def predict_official_grpc(target: str, images: np.ndarray, model: str = MODEL_NAME
                          ) -> np.ndarray:
    """``PredictionService/Predict`` with the official ``tensorflow_serving.apis`` stub."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = DEFAULT_SIGNATURE
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(images, dtype=tf.float32))
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=30.0)
    return tf.make_ndarray(response.outputs["prediction"]).argmax(axis=1)


# -- the command ------------------------------------------------------------------------
@dataclasses.dataclass
class DemoOptions:
    workdir: Path = Path(".")
    host: str = "127.0.0.1"
    port: int | None = None
    grpc_port: int | None = None
    epochs: int = 20
    samples: int = 12
    keep_running: bool = False
    export_only: bool = False


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _train_with_progress(console: Any, data: DigitsData, epochs: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("training"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[metrics]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("train", total=epochs, metrics="")

        def on_epoch(epoch: int, logs: dict[str, float]) -> None:
            metrics = f"loss {logs.get('loss', 0):.3f}  accuracy {logs.get('accuracy', 0):.3f}"
            progress.update(task, completed=epoch, metrics=metrics)

        return train_digits(data, epochs, on_epoch=on_epoch)


def export_and_publish(model: Any, base_path: Path) -> Path:
    """Export to a temporary directory, publish the next version into ``base_path``
    (keeping the newest ``KEEP_VERSIONS``); returns the version directory."""
    import gateway

    with tempfile.TemporaryDirectory(prefix="tfgw-demo-export-") as tmp:
        exported = gateway.export_savedmodel(model, Path(tmp) / "digits")
        return gateway.publish(exported, base_path, keep=KEEP_VERSIONS).path


def _curl_line(rest_url: str, image: np.ndarray) -> str:
    body = json.dumps({"instances": [image.astype(int).tolist()]}, separators=(",", ":"))
    return (f"curl -s -X POST {rest_url}/v1/models/{MODEL_NAME}:predict "
            f"-H 'Content-Type: application/json' -d {shlex.quote(body)}")


def _query_all(stack: LocalStack, images: np.ndarray) -> np.ndarray:
    """One column per path in ``PATHS`` order, one row per image."""
    return np.stack([
        predict_cloudml(stack.rest_url, images),
        predict_tfserving_rest(stack.rest_url, images),
        predict_official_grpc(stack.grpc_target, images),
    ], axis=1)


def run_demo(options: DemoOptions) -> int:
    """Train → export → publish → serve → predict three ways; 0 if all paths agree."""
    console = _console()
    base_path = options.workdir / "models" / MODEL_NAME
    console.print("[bold]tfgw demo[/]: scikit-learn digits → Keras → SavedModel → "
                  "TF-Serving-compatible gRPC + REST gateway")
    data = load_digits_split()
    console.print(f"data: {len(data.x_train)} training and {len(data.x_test)} held-out "
                  "8x8 digits (sklearn.datasets.load_digits, bundled, no download)")
    model = _train_with_progress(console, data, options.epochs)
    _, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
    console.print(f"held-out accuracy {accuracy:.1%} on {len(data.x_test)} digits")
    version_dir = export_and_publish(model, base_path)
    console.print(f"exported and published version {version_dir.name}: {version_dir}")
    console.print(f"  inspect it:  tfgw inspect {shlex.quote(str(version_dir))}")
    if options.export_only:
        console.print(f"model base path ready for TF Serving: {base_path}\n"
                      "  next:  docker compose up   (serves ./models/digits)")
        return 0
    return _serve_and_compare(console, options, base_path, data)


def _serve_and_compare(console: Any, options: DemoOptions, base_path: Path,
                       data: DigitsData) -> int:
    images = data.x_test[: options.samples]
    labels = data.y_test[: options.samples]
    stack = LocalStack(
        base_path, MODEL_NAME, host=options.host,
        port=pick_port(options.host, options.port, 8089),
        grpc_port=pick_port(options.host, options.grpc_port, 8500),
    )
    with console.status("starting the model server and the gateway"):
        stack.start()
    try:
        console.print(f"model server (gRPC) {stack.grpc_target}   gateway (REST) "
                      f"{stack.rest_url}")
        answers = _query_all(stack, images)
        print(render_results(images, labels, answers), flush=True)
        agree = int(sum(len(set(row)) == 1 for row in answers.tolist()))
        correct = int((answers[:, 0] == labels).sum())
        print(f"\n{agree}/{len(images)} predictions agree across "
              f"{PATHS[0]}, {PATHS[1]} and {PATHS[2]}", flush=True)
        print(f"{correct}/{len(images)} match the true label", flush=True)
        _print_urls(stack, images[0])
        if options.keep_running:
            print("serving until Ctrl-C (SIGINT) or SIGTERM ...", flush=True)
            wait_for_stop_signal()
        else:
            print("stopping (run `tfgw demo --keep-running` to keep serving)", flush=True)
    finally:
        stack.stop()
    print("stopped", flush=True)
    return 0 if agree == len(images) else 1


def _print_urls(stack: LocalStack, image: np.ndarray) -> None:
    url = stack.rest_url
    print(f"\n  docs     {url}/docs\n"
          f"  REST     POST {url}/v1/models/{MODEL_NAME}:predict   (TF Serving JSON)\n"
          f"           POST {url}/serving_default/predict   (CloudML/tfdeploy JSON)\n"
          f"  gRPC     {stack.grpc_target}   (tensorflow.serving.PredictionService)\n"
          f"  try      {_curl_line(url, image)}", flush=True)
