"""Named features: a Keras regressor ``disp``, ``cyl`` → ``mpg`` on mtcars, served as JSON.

The R/tfdeploy classic, in Python. Reads ``examples/mtcars.csv`` (32 cars, bundled),
trains a small model with one named input per feature, exports it with
``gateway.export_savedmodel`` (input keys = input layer names, output key = output layer
name), serves it and asks for the mileage of a 160 cu.in., 4-cylinder car:

    {"instances": [{"disp": [160], "cyl": [4]}]}

    python examples/mtcars_named_features.py [--workdir DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import gateway
from gateway.client import RestClient
from gateway.runtime import LocalStack

CSV = Path(__file__).resolve().parent / "mtcars.csv"
FEATURES = ("disp", "cyl")
REQUEST = {"instances": [{"disp": [160], "cyl": [4]}, {"disp": [400], "cyl": [8]}]}


def load_mtcars(path: Path = CSV) -> dict[str, np.ndarray]:
    """Columns of the CSV as float32 arrays, keyed by column name (``model`` dropped)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: np.array([float(r[key]) for r in rows], dtype=np.float32)
            for key in rows[0] if key != "model"}


def train(columns: dict[str, np.ndarray], epochs: int, repeats: int = 16):
    """``feature_model`` (one normalised ``(1,)`` input per feature) fitted with MSE; the
    32 rows are repeated ``repeats`` times per epoch (fewer, longer epochs train faster)."""
    import keras

    from gateway.repository.export import feature_model

    keras.utils.set_random_seed(0)
    model = feature_model(list(FEATURES), "mpg", hidden_units=(16,),
                          data={f: columns[f] for f in FEATURES})
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    inputs = {f: np.tile(columns[f], repeats).reshape(-1, 1) for f in FEATURES}
    model.fit(inputs, np.tile(columns["mpg"], repeats), epochs=epochs, batch_size=16,
              verbose=0)
    return model


def run(workdir: Path, epochs: int) -> int:
    columns = load_mtcars()
    print(f"mtcars: {len(columns['mpg'])} cars, features {FEATURES} → mpg")
    model = train(columns, epochs)
    exported = gateway.export_savedmodel(model, workdir / "export" / "mtcars", overwrite=True)
    gateway.publish(exported, workdir / "models" / "mtcars", progress=False)
    with LocalStack(workdir / "models" / "mtcars", "mtcars") as stack:
        client = RestClient(stack.rest_url)
        tf_serving = client.post("/v1/models/mtcars:predict", REQUEST)
        cloudml = client.post("/serving_default/predict", REQUEST)
    print(f"POST /v1/models/mtcars:predict {REQUEST}\n  → {tf_serving}")
    print(f"POST /serving_default/predict  {REQUEST}\n  → {cloudml}")
    small, big = (float(np.ravel(p)[0]) for p in tf_serving["predictions"])
    keyed = [float(np.ravel(p["mpg"])[0]) for p in cloudml["predictions"]]
    ok = np.allclose(keyed, [small, big]) and 10 < big < small < 40
    print(f"4 cylinders / 160 cu.in.: {small:.1f} mpg; 8 cylinders / 400 cu.in.: {big:.1f} mpg")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    if args.workdir is not None:
        return run(args.workdir, args.epochs)
    with tempfile.TemporaryDirectory(prefix="mtcars-") as tmp:
        return run(Path(tmp), args.epochs)


if __name__ == "__main__":
    sys.exit(main())
