"""grpc.aio servicers built on the official ``tensorflow_serving.apis`` service classes.

Thin edges: resolve the ModelSpec with the manager, pin the version, run the proto-level
operation from ``inference`` on the predict executor, and turn ``GatewayError``s into
gRPC statuses (unexpected errors → INTERNAL with a generic message, logged in full).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from gateway.errors import Code, GatewayError, InvalidInput
from gateway.modelserver import inference
from gateway.modelserver.manager import ModelManager
from gateway.repository.layout import ModelServerConfig, validate_model_config
from gateway.signatures import SIGNATURE_DEF_FIELD

__all__ = ["ModelServicer", "PredictionServicer", "abort_with"]

log = logging.getLogger(__name__)
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


async def abort_with(context: grpc.aio.ServicerContext, error: GatewayError) -> None:
    await context.abort(_GRPC_CODES.get(int(error.code), grpc.StatusCode.UNKNOWN), error.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService`` over the manager's loaded versions."""

    def __init__(self, manager: ModelManager, executor: Executor) -> None:
        self._manager = manager
        self._executor = executor

    async def _call(
        self,
        context: grpc.aio.ServicerContext,
        spec: Any,
        operation: Callable[..., Any],
        request: Any,
    ) -> Any:
        try:
            _, version_slot = self._manager.resolve(spec)
            with self._manager.use(version_slot) as loaded:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(
                    self._executor, operation, loaded, request, version_slot.version
                )
        except GatewayError as exc:
            await abort_with(context, exc)
        except Exception:
            log.exception("%s failed", getattr(operation, "__name__", "request"))
            await context.abort(grpc.StatusCode.INTERNAL, "internal error in the model server")

    async def _spec_call(
        self, request: Any, context: grpc.aio.ServicerContext, operation: Callable[..., Any]
    ) -> Any:
        if not request.HasField("model_spec"):
            await abort_with(context, InvalidInput("Missing ModelSpec"))
        return await self._call(context, request.model_spec, operation, request)

    async def Predict(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._spec_call(request, context, inference.predict)

    async def Classify(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._spec_call(request, context, inference.classify)

    async def Regress(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._spec_call(request, context, inference.regress)

    async def MultiInference(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if not request.tasks:
            await abort_with(
                context, InvalidInput("MultiInferenceRequest must specify at least one task")
            )
        return await self._call(
            context, request.tasks[0].model_spec, inference.multi_inference, request
        )

    async def GetModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return self._metadata(request)
        except GatewayError as exc:
            await abort_with(context, exc)

    def _metadata(self, request: Any) -> Any:
        if not request.HasField("model_spec"):
            raise InvalidInput("Missing ModelSpec")
        if not request.metadata_field:
            raise InvalidInput("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise InvalidInput(f"Metadata field {field} is not supported")
        _, version_slot = self._manager.resolve(request.model_spec)
        with self._manager.use(version_slot) as loaded:
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for name, signature in loaded.signature_defs.items():
                signature_map.signature_def[name].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version_slot.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``: version status and config reloads."""

    def __init__(self, manager: ModelManager, reload: Callable[[Any], Any]) -> None:
        self._manager = manager
        self._reload = reload

    async def GetModelStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return self._status(request)
        except GatewayError as exc:
            await abort_with(context, exc)

    def _status(self, request: Any) -> Any:
        spec = request.model_spec
        if not spec.name:
            raise InvalidInput("Missing model name in ModelSpec")
        version = spec.version.value if spec.HasField("version") else None
        if spec.HasField("version_label"):
            _, slot = self._manager.resolve(spec)
            version = slot.version
        response = get_model_status_pb2.GetModelStatusResponse()
        for row in self._manager.version_states(spec.name, version):
            status = response.model_version_status.add()
            status.version = row.version
            status.state = int(row.state)
            status.status.SetInParent()  # TF Serving always reports it (error_code OK)
            if row.error is not None:
                status.status.error_code = int(row.error.code)
                status.status.error_message = row.error.message
        return response

    async def HandleReloadConfigRequest(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        response = model_management_pb2.ReloadConfigResponse()
        try:
            if request.config.WhichOneof("config") not in (None, "model_config_list"):
                raise InvalidInput(
                    "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                    "Only ModelConfigList is currently supported"
                )
            config = validate_model_config(
                ModelServerConfig.FromString(request.config.SerializeToString()))
            if request.config.WhichOneof("config") is not None:
                await self._reload(config)
        except GatewayError as exc:
            log.error("config reload failed: %s", exc.message)
            response.status.error_code = int(exc.code)
            response.status.error_message = exc.message
            await abort_with(context, exc)
        response.status.error_code = int(Code.OK)
        return response
