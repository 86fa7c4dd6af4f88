"""The fair tutorial gateway: the baseline the project's gateway is measured against.

What a careful TensorFlow Serving tutorial builds: aiohttp + stdlib ``json``, the
instances turned into one ``np.array(..., dtype)`` and that array into a ``TensorProto``
with ``tf.make_tensor_proto`` (not the nested lists, which is several times slower), the
official ``PredictionServiceStub`` on a ``grpc.aio`` channel, and the outputs back through
``tf.make_ndarray(...).tolist()`` and ``json.dumps``. Correct for the MNIST-shaped model
of the benchmarks (input dtype from ``--dtype``); no metrics, no access log (aiohttp's
logger is left unconfigured, as in the tutorials). The harness runs it as target
``tutorial``; the file keeps its old name.

    python benchmarks/naive_gateway.py --backend 127.0.0.1:8500 --port 8502
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import grpc
import numpy as np
import tensorflow as tf
from aiohttp import web
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.baseline import MAX_MESSAGE, parse_args, predict_app


def make_app(backend: str, input_name: str, dtype: str) -> web.Application:
    """``POST /v1/models/{name}:predict`` with ``{"instances": [...]}`` → ``{"predictions"}``."""
    numpy_dtype = np.dtype(dtype)
    stubs: list[prediction_service_pb2_grpc.PredictionServiceStub] = []

    async def open_channel(_app: web.Application) -> AsyncIterator[None]:
        channel = grpc.aio.insecure_channel(
            backend, options=[("grpc.max_send_message_length", MAX_MESSAGE),
                              ("grpc.max_receive_message_length", MAX_MESSAGE)])
        stubs.append(prediction_service_pb2_grpc.PredictionServiceStub(channel))
        yield
        await channel.close()

    async def predict(request: web.Request) -> web.Response:
        try:
            body = await request.json()  # stdlib json.loads
            array = np.array(body["instances"], dtype=numpy_dtype)
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        grpc_request = predict_pb2.PredictRequest()
        grpc_request.model_spec.name = request.match_info["name"]
        grpc_request.model_spec.signature_name = body.get("signature_name", "serving_default")
        grpc_request.inputs[input_name].CopyFrom(tf.make_tensor_proto(array))
        try:
            response = await stubs[0].Predict(grpc_request, timeout=30.0)
        except grpc.aio.AioRpcError as exc:
            return web.json_response({"error": exc.details()}, status=500)
        outputs = {key: tf.make_ndarray(t).tolist() for key, t in response.outputs.items()}
        predictions = next(iter(outputs.values())) if len(outputs) == 1 else outputs
        return web.json_response({"predictions": predictions})  # stdlib json.dumps

    return predict_app(predict, open_channel)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], 8502, dtype=True)
    web.run_app(make_app(args.backend, args.input_name, args.dtype), host=args.host,
                port=args.port, print=None)


if __name__ == "__main__":
    main()
