"""Keras digits classifier → SavedModel → published version → served → queried.

The library path of ``tfgw demo``, step by step, with the Python client
(``gateway.client``) instead of raw JSON:

    python examples/keras_digits.py [--workdir DIR] [--epochs N]

Without ``--workdir`` everything goes into a temporary directory that is removed at the
end. Exits non-zero if REST and gRPC disagree.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import gateway
from gateway.client import GrpcClient, RestClient
from gateway.demo import load_digits_split, train_digits
from gateway.runtime import LocalStack
from gateway.repository.savedmodel import describe, read_savedmodel


def run(workdir: Path, epochs: int) -> int:
    data = load_digits_split()
    model = train_digits(data, epochs)  # input layer "image", output layer "prediction"
    print(f"trained {epochs} epochs on {len(data.x_train)} digits")

    exported = gateway.export_savedmodel(model, workdir / "export" / "digits", overwrite=True)
    print(describe(read_savedmodel(exported)))  # what `tfgw inspect` prints

    published = gateway.publish(exported, workdir / "models" / "digits", progress=False)
    print(f"published version {published.version} at {published.path}")

    images, labels = data.x_test[:8], data.y_test[:8]
    with LocalStack(workdir / "models" / "digits", "digits") as stack:
        print(f"serving: REST {stack.rest_url}  gRPC {stack.grpc_target}")
        rest = RestClient(stack.rest_url).predict("digits", instances=images)
        columnar = RestClient(stack.rest_url).predict("digits", inputs=images)
        with GrpcClient(stack.grpc_target) as client:
            over_grpc = client.predict("digits", instances=images)
    classes = {name: out["prediction"].argmax(axis=1)
               for name, out in (("REST rows", rest), ("REST columns", columnar),
                                 ("gRPC", over_grpc))}
    print(f"true labels    {labels.tolist()}")
    for name, predicted in classes.items():
        print(f"{name:<14} {predicted.tolist()}")
    agree = all(np.array_equal(p, classes["gRPC"]) for p in classes.values())
    print("REST and gRPC agree" if agree else "REST and gRPC DISAGREE")
    return 0 if agree else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    if args.workdir is not None:
        return run(args.workdir, args.epochs)
    with tempfile.TemporaryDirectory(prefix="keras-digits-") as tmp:
        return run(Path(tmp), args.epochs)


if __name__ == "__main__":
    sys.exit(main())
