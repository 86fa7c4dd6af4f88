"""A tiny in-test gRPC backend (the project's protos, TF Serving's method paths) + app fixtures.

``FakeBackend`` serves PredictionService/ModelService over real gRPC on 127.0.0.1 with
pure-numpy models, so the HTTP layer can be tested fast and with fault injection (delays,
outages, call counting) that a real model server cannot offer. End-to-end tests against
``tfgw modelserver`` live elsewhere; this stays the fault-injection double.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import numpy as np
import pytest

from gateway.pb import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    meta_graph_pb2,
    predict_pb2,
    regression_pb2,
    types_pb2,
)
from gateway.tensors import to_ndarray, to_tensor_proto

__all__ = ["FakeBackend", "FakeModel", "default_models", "fake_backend", "make_gateway"]

Fn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
TensorSig = dict[str, tuple[int, tuple[int, ...]]]


@dataclass
class FakeModel:
    """Versions → (inputs, outputs, fn) for ``serving_default``; labels → versions."""

    inputs: TensorSig
    outputs: TensorSig
    versions: dict[int, Fn]
    labels: dict[str, int] = field(default_factory=dict)
    extra: dict[str, tuple[TensorSig, TensorSig]] = field(default_factory=dict)

    def signature_defs(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        defs = {"serving_default": _signature_def(self.inputs, self.outputs)}
        for name, (ins, outs) in self.extra.items():
            defs[name] = _signature_def(ins, outs)
        return defs


def _signature_def(inputs: TensorSig, outputs: TensorSig) -> meta_graph_pb2.SignatureDef:
    sig = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for target, specs in ((sig.inputs, inputs), (sig.outputs, outputs)):
        for alias, (dtype, shape) in specs.items():
            info = target[alias]
            info.name = f"{alias}:0"
            info.dtype = dtype
            for size in shape:
                info.tensor_shape.dim.add(size=size)
    return sig


F32 = types_pb2.DT_FLOAT
I64 = types_pb2.DT_INT64


def default_models() -> dict[str, FakeModel]:
    """``half`` (v1: x/2+2, v2: x/2+3; labels stable=1, canary=2) and ``multi``."""
    half = FakeModel(
        inputs={"x": (F32, (-1,))},
        outputs={"y": (F32, (-1,))},
        versions={
            1: lambda a: {"y": a["x"] / 2 + 2},
            2: lambda a: {"y": a["x"] / 2 + 3},
        },
        labels={"stable": 1, "canary": 2},
    )
    multi = FakeModel(
        inputs={"a": (F32, (-1, 2)), "b": (I64, (-1,))},
        outputs={"sum": (F32, (-1,)), "twice": (I64, (-1,))},
        versions={1: lambda a: {"sum": a["a"].sum(axis=1), "twice": a["b"] * 2}},
    )
    return {"half": half, "multi": multi}


class FakeBackend:
    """The gRPC double. ``delay`` slows Predict; ``calls`` counts methods; ``cancelled``
    counts Predict calls whose client went away before the answer."""

    def __init__(self, models: dict[str, FakeModel] | None = None) -> None:
        self.models = models if models is not None else default_models()
        self.delay = 0.0
        self.calls: Counter[str] = Counter()
        self.cancelled = 0
        self.port = 0
        self._server: grpc.aio.Server | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(
        self, port: int = 0, credentials: grpc.ServerCredentials | None = None
    ) -> int:
        """Listen on 127.0.0.1 (``port`` 0 picks one; TLS with ``credentials``)."""
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers([self._handlers()])
        address = f"127.0.0.1:{port}"
        self.port = (server.add_secure_port(address, credentials) if credentials
                     else server.add_insecure_port(address))
        await server.start()
        self._server = server
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)
            self._server = None

    def _handlers(self) -> grpc.GenericRpcHandler:
        def unary(fn: Any, req: Any, resp: Any) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=req.FromString,
                response_serializer=resp.SerializeToString,
            )

        prediction = grpc.method_handlers_generic_handler(
            "tensorflow.serving.PredictionService",
            {
                "Predict": unary(self._predict, predict_pb2.PredictRequest,
                                 predict_pb2.PredictResponse),
                "GetModelMetadata": unary(
                    self._metadata, get_model_metadata_pb2.GetModelMetadataRequest,
                    get_model_metadata_pb2.GetModelMetadataResponse,
                ),
                "Classify": unary(self._classify, classification_pb2.ClassificationRequest,
                                  classification_pb2.ClassificationResponse),
                "Regress": unary(self._regress, regression_pb2.RegressionRequest,
                                 regression_pb2.RegressionResponse),
            },
        )
        model = grpc.method_handlers_generic_handler(
            "tensorflow.serving.ModelService",
            {"GetModelStatus": unary(self._status, get_model_status_pb2.GetModelStatusRequest,
                                     get_model_status_pb2.GetModelStatusResponse)},
        )

        class Both(grpc.GenericRpcHandler):
            def service(self, details: Any) -> Any:
                return prediction.service(details) or model.service(details)

        return Both()

    async def _resolve(self, spec: Any, context: grpc.aio.ServicerContext) -> tuple[FakeModel, int]:
        model = self.models.get(spec.name)
        if model is None:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"Servable not found for request: Latest({spec.name})")
        which = spec.WhichOneof("version_choice")
        if which == "version_label":
            if spec.version_label not in model.labels:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"Unrecognized servable version label: {spec.version_label}")
            return model, model.labels[spec.version_label]
        if which == "version":
            if spec.version.value not in model.versions:
                await context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"Servable not found for request: Specific({spec.name}, {spec.version.value})",
                )
            return model, spec.version.value
        return model, max(model.versions)

    async def _predict(self, request: Any, context: Any) -> Any:
        self.calls["Predict"] += 1
        model, version = await self._resolve(request.model_spec, context)
        if self.delay:
            try:
                await asyncio.sleep(self.delay)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        arrays = {k: to_ndarray(v) for k, v in request.inputs.items()}
        missing = set(model.inputs) - set(arrays)
        if missing:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"missing inputs {missing}")
        outputs = model.versions[version](arrays)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for alias, array in outputs.items():
            dtype = model.outputs[alias][0]
            response.outputs[alias].CopyFrom(to_tensor_proto(np.asarray(array), dtype))
        return response

    async def _metadata(self, request: Any, context: Any) -> Any:
        self.calls["GetModelMetadata"] += 1
        model, version = await self._resolve(request.model_spec, context)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for name, sig in model.signature_defs().items():
            sig_map.signature_def[name].CopyFrom(sig)
        packed = response.metadata["signature_def"]
        packed.type_url = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
        packed.value = sig_map.SerializeToString()
        return response

    async def _status(self, request: Any, context: Any) -> Any:
        self.calls["GetModelStatus"] += 1
        model, _ = await self._resolve(request.model_spec, context)
        response = get_model_status_pb2.GetModelStatusResponse()
        wanted = (request.model_spec.version.value
                  if request.model_spec.HasField("version") else None)
        for version in sorted(model.versions):
            if wanted is None or wanted == version:
                status = response.model_version_status.add(version=version)
                status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response

    async def _classify(self, request: Any, context: Any) -> Any:
        self.calls["Classify"] += 1
        await self._resolve(request.model_spec, context)
        response = classification_pb2.ClassificationResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for _ in request.input.example_list.examples:
            result = response.result.classifications.add()
            result.classes.add(label="neg", score=0.25)
            result.classes.add(label="pos", score=0.75)
        return response

    async def _regress(self, request: Any, context: Any) -> Any:
        self.calls["Regress"] += 1
        await self._resolve(request.model_spec, context)
        response = regression_pb2.RegressionResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for example in request.input.example_list.examples:
            x = example.features.feature["x"].float_list.value
            response.result.regressions.add(value=(x[0] if x else 0.0) / 2 + 2)
        return response


@pytest.fixture
async def fake_backend() -> AsyncIterator[FakeBackend]:
    backend = FakeBackend()
    await backend.start()
    try:
        yield backend
    finally:
        await backend.stop()


def make_gateway(target: str, *, batcher: Any = None, **overrides: Any) -> Any:
    """A ``create_app`` application for ``target`` with config ``overrides`` (no env) and
    optionally a batcher factory (``Service(batcher=...)``)."""
    from gateway.backend import Backend, BackendOptions
    from gateway.config import GatewayConfig
    from gateway.http import create_app
    from gateway.service import Service

    overrides.setdefault("models", ("half", "multi"))
    config = GatewayConfig.from_env({}, backends=(target,), **overrides)
    service = Service(Backend(config.backends, BackendOptions.from_config(config)), config,
                      batcher=batcher)
    return create_app(config, service)
