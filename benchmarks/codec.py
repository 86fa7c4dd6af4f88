"""JSON <-> PredictRequest/PredictResponse codec benchmark (not a test; prints a table).

    .venv/bin/python benchmarks/codec.py            # full run (about a minute)
    .venv/bin/python benchmarks/codec.py --smoke    # a few iterations, for CI

Request direction (784-float instances, batch 1/32/256): JSON body -> serialized
PredictRequest for
  project  gateway.codec (read_predict_body + decode_predict_inputs + to_tensor_proto)
  naive    stdlib json.loads + tf.make_tensor_proto + official PredictRequest
  floor    orjson.loads of the same body alone (no conversion at all)
  plain    orjson.loads + np.asarray(instances) [inferred float64] + astype + tensor_content
  plain32  orjson.loads + np.asarray(instances, dtype=float32) + tensor_content (no checks)
Response direction ([batch, 10] float32): PredictResponse bytes -> JSON body for
  project  PredictResponse.FromString + to_ndarray + encode_predict_response
  naive    official FromString + tf.make_ndarray().tolist() + json.dumps
for outputs sent as tensor_content and as float_val (TF Serving's default encoding).
Medians (``--stat min`` for minimums) over interleaved rounds; ratios come from one run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from gateway.codec import (
    decode_predict_inputs,
    encode_predict_response,
    read_predict_body,
)
from gateway.pb import predict_pb2
from gateway.signatures import Signature, TensorSpec
from gateway.tensors import to_ndarray, to_tensor_proto

FEATURES = 784
CLASSES = 10
BATCHES = (1, 32, 256)
DT_FLOAT = 1
SIGNATURE = Signature(
    name="serving_default",
    method_name="tensorflow/serving/predict",
    inputs={"image": TensorSpec("image", "serving_default_image:0", DT_FLOAT, (-1, FEATURES))},
    outputs={"prediction": TensorSpec("prediction", "out:0", DT_FLOAT, (-1, CLASSES))},
)


def request_body(batch: int, rng: np.random.Generator) -> bytes:
    """What a client writes today: float32 data, ``.tolist()``, ``json.dumps``."""
    data = rng.random((batch, FEATURES), dtype=np.float32)
    return json.dumps({"instances": data.tolist()}).encode()


def project_request(body: bytes) -> bytes:
    parsed = read_predict_body(body)
    arrays = decode_predict_inputs(parsed, SIGNATURE)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mnist"
    request.model_spec.signature_name = "serving_default"
    for alias, array in arrays.items():
        request.inputs[alias].CopyFrom(to_tensor_proto(array, SIGNATURE.inputs[alias].dtype))
    return request.SerializeToString()


def plain_request(body: bytes, infer: bool) -> bytes:
    instances = orjson.loads(body)["instances"]
    array = np.asarray(instances).astype(np.float32) if infer else np.asarray(
        instances, dtype=np.float32
    )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mnist"
    tensor = request.inputs["image"]
    tensor.dtype = DT_FLOAT
    for size in array.shape:
        tensor.tensor_shape.dim.add(size=size)
    tensor.tensor_content = array.tobytes()
    return request.SerializeToString()


def naive_paths(tf) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    from tensorflow_serving.apis import predict_pb2 as official

    def naive_request(body: bytes) -> bytes:
        instances = json.loads(body)["instances"]
        request = official.PredictRequest()
        request.model_spec.name = "mnist"
        request.inputs["image"].CopyFrom(tf.make_tensor_proto(instances, dtype=tf.float32))
        return request.SerializeToString()

    def naive_response(raw: bytes) -> bytes:
        response = official.PredictResponse.FromString(raw)
        predictions = tf.make_ndarray(response.outputs["prediction"]).tolist()
        return json.dumps({"predictions": predictions}).encode()

    return naive_request, naive_response


def check_same_request(body: bytes) -> None:
    """The project and the plain path must produce the same tensor (sanity, not timed)."""
    ours = predict_pb2.PredictRequest.FromString(project_request(body)).inputs["image"]
    plain = predict_pb2.PredictRequest.FromString(plain_request(body, infer=False))
    assert to_ndarray(ours).tobytes() == to_ndarray(plain.inputs["image"]).tobytes()


def project_response(raw: bytes) -> bytes:
    response = predict_pb2.PredictResponse.FromString(raw)
    arrays = {name: to_ndarray(tensor) for name, tensor in response.outputs.items()}
    return encode_predict_response(arrays, row=True, keyed=False)


def response_bytes(batch: int, rng: np.random.Generator, typed: bool) -> bytes:
    scores = rng.random((batch, CLASSES), dtype=np.float32)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = "mnist"
    tensor = response.outputs["prediction"]
    tensor.CopyFrom(to_tensor_proto(scores, DT_FLOAT))
    if typed:
        tensor.ClearField("tensor_content")
        tensor.float_val.extend(scores.ravel().tolist())
    return response.SerializeToString()


def medians(
    fns: dict[str, Callable[[], object]], rounds: int, stat: str = "median", inner: int = 1
) -> dict[str, float]:
    """Median (or min) seconds per call; rounds interleaved so load hits all paths alike.

    Each sample is the mean of ``inner`` back-to-back calls (steady state, as in a server
    handling a stream of requests; also keeps sub-0.1 ms timings above timer noise).
    """
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm up (imports, caches)
    for _ in range(rounds):
        for name, fn in fns.items():
            gc.disable()
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter() - start) / inner)
            gc.enable()
    reduce = min if stat == "min" else statistics.median
    return {name: reduce(values) for name, values in samples.items()}


def rounds_for(batch: int, smoke: bool) -> int:
    if smoke:
        return 2
    return {1: 400, 32: 120, 256: 40}[batch]


def inner_for(batch: int, smoke: bool) -> int:
    return 1 if smoke else {1: 10, 32: 2, 256: 1}[batch]


def run(smoke: bool, stat: str = "median") -> list[dict[str, object]]:
    import tensorflow as tf

    naive_request, naive_response = naive_paths(tf)
    rng = np.random.default_rng(0)
    rows: list[dict[str, object]] = []
    for batch in BATCHES:
        body = request_body(batch, rng)
        check_same_request(body)
        req = medians(
            {
                "project": lambda b=body: project_request(b),
                "naive": lambda b=body: naive_request(b),
                "floor": lambda b=body: orjson.loads(b),
                "plain": lambda b=body: plain_request(b, infer=True),
                "plain32": lambda b=body: plain_request(b, infer=False),
            },
            rounds_for(batch, smoke),
            stat,
            inner=inner_for(batch, smoke),
        )
        resp = {}
        for label, typed in (("content", False), ("float_val", True)):
            raw = response_bytes(batch, rng, typed)
            times = medians(
                {"project": lambda r=raw: project_response(r),
                 "naive": lambda r=raw: naive_response(r)},
                rounds_for(batch, smoke) * 3,
                stat,
                inner=1 if smoke else 10,
            )
            resp[label] = times
        rows.append({"batch": batch, "bytes": len(body), "request": req, "response": resp})
    return rows


def report(rows: list[dict[str, object]], stat: str = "median") -> str:
    ms = 1e3
    lines = [
        f"JSON -> serialized PredictRequest (784 float32 features per instance), {stat} ms",
        f"{'batch':>5} {'body KB':>8} {'project':>8} {'naive':>8} {'floor':>8} {'plain':>8} "
        f"{'plain32':>8} | {'naive/proj':>10} {'proj/floor':>10} {'proj/plain':>10} "
        f"{'proj/plain32':>12}",
    ]
    for row in rows:
        r = row["request"]
        lines.append(
            f"{row['batch']:>5} {row['bytes'] / 1024:>8.0f} {r['project'] * ms:>8.3f} "
            f"{r['naive'] * ms:>8.3f} {r['floor'] * ms:>8.3f} {r['plain'] * ms:>8.3f} "
            f"{r['plain32'] * ms:>8.3f} | {r['naive'] / r['project']:>9.1f}x "
            f"{r['project'] / r['floor']:>9.2f}x {r['project'] / r['plain']:>9.2f}x "
            f"{r['project'] / r['plain32']:>11.2f}x"
        )
    lines += [
        "",
        f"PredictResponse bytes -> JSON ([batch, {CLASSES}] float32), {stat} ms",
        f"{'batch':>5} {'encoding':>10} {'project':>8} {'naive':>8} | {'naive/proj':>10}",
    ]
    for row in rows:
        for label, t in row["response"].items():
            lines.append(
                f"{row['batch']:>5} {label:>10} {t['project'] * ms:>8.3f} "
                f"{t['naive'] * ms:>8.3f} | {t['naive'] / t['project']:>9.1f}x"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few iterations only")
    parser.add_argument("--json", action="store_true", help="also print raw times as JSON")
    parser.add_argument(
        "--stat", choices=["median", "min"], default="median",
        help="statistic per path (min is steadier on a machine shared with other load)",
    )
    args = parser.parse_args(argv)
    rows = run(args.smoke, args.stat)
    print(report(rows, args.stat))
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
