"""The least a Python REST → gRPC gateway can do: the floor the project's gateway is held to.

aiohttp + ``orjson`` + one ``np.asarray`` + ``tensor_content`` + a ``grpc.aio`` call, and
the first output back as JSON — no validation, no signature lookup, no metrics, no limits,
no error mapping. It answers the benchmark's MNIST-shaped request correctly and nothing
else. Whatever throughput it reaches at batch 1 is what the transport stack (HTTP server,
gRPC client, the two extra hops) allows on the machine; the gap between it and the
project's gateway is the cost of the project's own code.

    python benchmarks/floor_gateway.py --backend 127.0.0.1:8500 --port 8503
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc.aio
import numpy as np
import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.baseline import MAX_MESSAGE, parse_args, predict_app
from gateway.pb import predict_pb2  # the project's TF-free protos

PREDICT = "/tensorflow.serving.PredictionService/Predict"
DT_FLOAT = 1


def make_app(backend: str, input_name: str) -> web.Application:
    calls: list[grpc.aio.UnaryUnaryMultiCallable] = []

    async def open_channel(_app: web.Application) -> AsyncIterator[None]:
        channel = grpc.aio.insecure_channel(
            backend, options=[("grpc.max_send_message_length", MAX_MESSAGE),
                              ("grpc.max_receive_message_length", MAX_MESSAGE)])
        calls.append(channel.unary_unary(
            PREDICT, request_serializer=predict_pb2.PredictRequest.SerializeToString,
            response_deserializer=predict_pb2.PredictResponse.FromString))
        yield
        await channel.close()

    async def predict(request: web.Request) -> web.Response:
        array = np.asarray(orjson.loads(await request.read())["instances"], dtype=np.float32)
        grpc_request = predict_pb2.PredictRequest()
        grpc_request.model_spec.name = request.match_info["name"]
        tensor = grpc_request.inputs[input_name]
        tensor.dtype = DT_FLOAT
        for size in array.shape:
            tensor.tensor_shape.dim.add().size = size
        tensor.tensor_content = array.tobytes()
        response = await calls[0](grpc_request, timeout=30.0)
        output = next(iter(response.outputs.values()))
        shape = [dim.size for dim in output.tensor_shape.dim]
        values = (np.frombuffer(output.tensor_content, np.float32) if output.tensor_content
                  else np.asarray(output.float_val, np.float32))
        body = orjson.dumps({"predictions": values.reshape(shape)},
                            option=orjson.OPT_SERIALIZE_NUMPY)
        return web.Response(body=body, content_type="application/json")

    return predict_app(predict, open_channel)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], 8503)
    web.run_app(make_app(args.backend, args.input_name), host=args.host, port=args.port,
                print=None, access_log=None)


if __name__ == "__main__":
    main()
