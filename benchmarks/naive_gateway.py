"""The REST gateway people usually write first — the baseline the project is measured against.

aiohttp + stdlib ``json`` + ``tf.make_tensor_proto`` + the official stub +
``tf.make_ndarray().tolist()``, exactly as in the tutorials: correct for the MNIST-shaped
model, but it imports TensorFlow and converts every number through Python objects.

    python benchmarks/naive_gateway.py --backend 127.0.0.1:8500 --port 8502
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import grpc
import tensorflow as tf
from aiohttp import web
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.baseline import MAX_MESSAGE, parse_args, predict_app


def make_app(backend: str, input_name: str, dtype: str) -> web.Application:
    stubs: list[prediction_service_pb2_grpc.PredictionServiceStub] = []

    async def open_channel(app: web.Application):  # type: ignore[no-untyped-def]
        channel = grpc.aio.insecure_channel(
            backend, options=[("grpc.max_send_message_length", MAX_MESSAGE),
                              ("grpc.max_receive_message_length", MAX_MESSAGE)])
        stubs.append(prediction_service_pb2_grpc.PredictionServiceStub(channel))
        yield
        await channel.close()

    async def predict(request: web.Request) -> web.Response:
        body = json.loads(await request.text())
        grpc_request = predict_pb2.PredictRequest()
        grpc_request.model_spec.name = request.match_info["name"]
        grpc_request.model_spec.signature_name = body.get("signature_name", "serving_default")
        grpc_request.inputs[input_name].CopyFrom(
            tf.make_tensor_proto(body["instances"], dtype=getattr(tf, dtype)))
        try:
            response = await stubs[0].Predict(grpc_request, timeout=30.0)
        except grpc.aio.AioRpcError as exc:
            return web.json_response({"error": exc.details()}, status=500)
        outputs = {key: tf.make_ndarray(t).tolist() for key, t in response.outputs.items()}
        predictions = next(iter(outputs.values())) if len(outputs) == 1 else outputs
        return web.Response(text=json.dumps({"predictions": predictions}),
                            content_type="application/json")

    return predict_app(predict, open_channel)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], 8502, dtype=True)
    web.run_app(make_app(args.backend, args.input_name, args.dtype), host=args.host,
                port=args.port, print=None)


if __name__ == "__main__":
    main()
