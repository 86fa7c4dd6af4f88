"""A plain ``tf.Module`` (no Keras) with explicit input and output names, served as JSON.

``Thermometer`` converts Celsius readings: input ``celsius`` (float32 [batch]) → outputs
``fahrenheit`` and ``kelvin`` (several outputs: TF Serving answers objects keyed by name).
Exported with ``gateway.export_savedmodel(module, path, inputs={...})``.

    python examples/core_tf_module.py [--workdir DIR]
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
from gateway.runtime import LocalStack

READINGS = [-40.0, 0.0, 37.0, 100.0]


def build_module():
    import tensorflow as tf

    class Thermometer(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = tf.Variable(1.8)
            self.zero = tf.Variable(273.15)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, celsius):
            return {"fahrenheit": celsius * self.scale + 32.0, "kelvin": celsius + self.zero}

    return Thermometer()


def export(module, path: Path) -> Path:
    import tensorflow as tf

    return gateway.export_savedmodel(
        module, path, inputs={"celsius": tf.TensorSpec([None], tf.float32)}, overwrite=True
    )


def run(workdir: Path) -> int:
    exported = export(build_module(), workdir / "export" / "thermometer")
    gateway.publish(exported, workdir / "models" / "thermometer", progress=False)
    with LocalStack(workdir / "models" / "thermometer", "thermometer") as stack:
        rest = RestClient(stack.rest_url)
        rows = rest.post("/v1/models/thermometer:predict", {"instances": READINGS})
        columns = rest.predict("thermometer", inputs=np.array(READINGS, np.float32))
        with GrpcClient(stack.grpc_target) as client:
            over_grpc = client.predict("thermometer", instances=READINGS)
    print(f"POST /v1/models/thermometer:predict {{'instances': {READINGS}}}\n  → {rows}")
    print(f"columnar via RestClient: { {k: v.tolist() for k, v in columns.items()} }")
    print(f"gRPC via GrpcClient:     { {k: v.tolist() for k, v in over_grpc.items()} }")
    expected_f = [c * 1.8 + 32.0 for c in READINGS]
    ok = (np.allclose(over_grpc["fahrenheit"], expected_f)
          and np.allclose(columns["kelvin"], [c + 273.15 for c in READINGS])
          and np.allclose([r["fahrenheit"] for r in rows["predictions"]], expected_f))
    print("all three agree with the formula" if ok else "MISMATCH")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.workdir is not None:
        return run(args.workdir)
    with tempfile.TemporaryDirectory(prefix="tf-module-") as tmp:
        return run(Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
