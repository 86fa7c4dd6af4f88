"""Query a model with ONLY the official ``tensorflow-serving-api`` stubs, as a TF Serving user.

The client part (:func:`show_signatures`, :func:`predict_digits`) imports nothing from this
project: ``grpc``, ``tensorflow.make_tensor_proto`` and ``tensorflow_serving.apis``. Point
it at TF Serving (``docker compose up``) or ``tfgw modelserver``/``tfgw serve``:

    python examples/grpc_official_stub.py --target 127.0.0.1:8500 --model digits

Without ``--target`` it first trains the demo's digits model and starts an embedded model
server for it (that part uses this project), then runs the same client code.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

MAX_MESSAGE = 64 * 1024 * 1024


def open_channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target, options=[
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.max_receive_message_length", MAX_MESSAGE),
    ])


def show_signatures(channel: grpc.Channel, model: str) -> None:
    """ModelService/GetModelStatus and PredictionService/GetModelMetadata, printed."""
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": model}), timeout=10
    )
    for version in status.model_version_status:
        state = get_model_status_pb2.ModelVersionStatus.State.Name(version.state)
        print(f"model {model} version {version.version}: {state}")
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = model
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
        request, timeout=10
    )
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    for name, sig in sorted(signatures.signature_def.items()):
        if name.startswith("__"):
            continue
        ins = {k: tf.dtypes.as_dtype(v.dtype).name for k, v in sig.inputs.items()}
        outs = {k: tf.dtypes.as_dtype(v.dtype).name for k, v in sig.outputs.items()}
        print(f"signature {name}: inputs {ins} → outputs {outs}")


def predict_digits(channel: grpc.Channel, model: str, images: np.ndarray) -> np.ndarray:
    """PredictionService/Predict with ``image`` float32 [batch, 64]; returns the scores."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(images, dtype=tf.float32))
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
        request, timeout=30
    )
    return tf.make_ndarray(response.outputs["prediction"])


def query(target: str, model: str) -> int:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.data[-10:].astype(np.float32)  # the last ten digits of the set
    labels = digits.target[-10:]
    with open_channel(target) as channel:
        show_signatures(channel, model)
        scores = predict_digits(channel, model, images)
    predicted = scores.argmax(axis=1)
    print(f"true      {labels.tolist()}\npredicted {predicted.tolist()}")
    print(f"{int((predicted == labels).sum())}/{len(labels)} correct over gRPC ({target})")
    return 0


def query_local_demo_model(model: str) -> int:
    """Train + publish the demo model, serve it with the embedded model server, query it."""
    import asyncio

    import gateway
    from gateway.demo import load_digits_split, train_digits
    from gateway.modelserver import ModelServer, ModelServerOptions

    with tempfile.TemporaryDirectory(prefix="grpc-stub-") as tmp:
        exported = gateway.export_savedmodel(train_digits(load_digits_split(), 10),
                                             Path(tmp) / "export")
        base = Path(tmp) / "models" / model
        gateway.publish(exported, base, progress=False)

        async def serve_and_query() -> int:
            server = ModelServer(ModelServerOptions(model_name=model, model_base_path=str(base),
                                                    host="127.0.0.1", port=0))
            port = await server.start()
            try:
                await server.wait_until_available(120)
                return await asyncio.to_thread(query, f"127.0.0.1:{port}", model)
            finally:
                await server.stop()

        return asyncio.run(serve_and_query())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=None,
                        help="HOST:PORT of TF Serving / tfgw modelserver (default: start one)")
    parser.add_argument("--model", default="digits", help="model name (default digits)")
    args = parser.parse_args(argv)
    if args.target:
        return query(args.target, args.model)
    return query_local_demo_model(args.model)


if __name__ == "__main__":
    sys.exit(main())
