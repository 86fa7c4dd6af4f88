"""The transport-free core: JSON body in, JSON body out, one backend behind it.

``Service`` resolves a :class:`ModelRef`, looks the signature up in a metadata cache
(GetModelMetadata once per model+version, refreshed when the answering version changes or
the entry ages), decodes with ``gateway.codec``, calls the backend (directly or through the
optional batcher) and encodes the answer. HTTP concerns (paths, headers, status codes)
stay in ``gateway.http``; gRPC concerns stay in ``gateway.backend``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gateway import codec
from gateway.backend import Backend
from gateway.batching import Batcher, BatchPolicy, Send
from gateway.config import GatewayConfig
from gateway.deadlines import now, remaining
from gateway.errors import Code, GatewayError
from gateway.metadata import MetadataCache, entry_from_metadata
from gateway.metrics import Metrics
from gateway.pb import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)
from gateway.signatures import SIGNATURE_DEF_FIELD, select_signature
from gateway.tensors import datatype_of, fill_tensor_proto, to_ndarray
from gateway.types import ModelEntry, ModelRef

__all__ = ["Service"]

log = logging.getLogger(__name__)
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


BatcherFactory = Callable[[Send, Metrics], Batcher]


def configured_batcher(config: GatewayConfig) -> BatcherFactory | None:
    """The batcher ``config`` asks for (per-model sizes and timeouts), or ``None``."""
    if not config.batching:
        return None

    def policy(ref: ModelRef, _signature_name: str) -> BatchPolicy | None:
        max_size, timeout_ms = config.batch_setting(ref.name)
        return BatchPolicy(max_size, timeout_ms) if max_size > 1 else None

    def build(send: Send, metrics: Metrics) -> Batcher:
        return Batcher(send, max_size=max(config.batch_max_size, 1),
                       timeout_ms=config.batch_timeout_ms, metrics=metrics, policy=policy)

    return build


class Service:
    """Predict/classify/regress/status/metadata for the HTTP edge; bodies are JSON bytes."""

    def __init__(
        self, backend: Backend, config: GatewayConfig, *, metrics: Metrics | None = None,
        batcher: BatcherFactory | None = None,
    ) -> None:
        """``batcher`` builds the micro-batcher from this service's ``send`` and metrics
        (default: :func:`configured_batcher` when the config turns batching on)."""
        self.backend = backend
        self.config = config
        self.metrics = metrics or Metrics()
        self.cache = MetadataCache(self._fetch_metadata, config.metadata_ttl)
        self._known: dict[str, None] = dict.fromkeys(config.known_models())
        factory = batcher or configured_batcher(config)
        self.batcher: Batcher | None = factory(self.send, self.metrics) if factory else None

    # -- models -----------------------------------------------------------------------
    @property
    def known_models(self) -> tuple[str, ...]:
        return tuple(self._known)

    def is_known(self, name: str) -> bool:
        """``name`` is a model this gateway knows (configured or answered before)."""
        return name in self._known

    def learn(self, name: str) -> None:
        self._known.setdefault(name, None)

    def default_model(self) -> str | None:
        if self.config.default_model:
            return self.config.default_model
        return self.known_models[0] if len(self._known) == 1 else None

    async def list_models(self, timeout: float = 5.0) -> list[ModelEntry]:
        """One entry per known model (latest version); unreachable ones are left out."""
        entries = []
        for name in self.known_models:
            try:
                entry = await self.cache.get(ModelRef(name), now() + timeout)
            except GatewayError as exc:
                log.info("model %s left out of the model list: %s", name, exc.message)
                continue
            entries.append(ModelEntry(name=name, version=entry.version,
                                      signatures=entry.signatures))
        return entries

    async def ready(self, timeout: float = 2.0) -> tuple[bool, str]:
        """Backend reachable and at least one known model AVAILABLE."""
        if not self._known:
            return False, "no model names known (pass --model or --model-config-file)"
        errors = []
        for name in self.known_models:
            try:
                status = await self._status(ModelRef(name), now() + timeout)
            except GatewayError as exc:
                errors.append(f"{name}: {exc.message}")
                continue
            if any(v.state == AVAILABLE for v in status.model_version_status):
                return True, f"model {name} is available"
            errors.append(f"{name}: no version AVAILABLE")
        return False, "; ".join(errors)

    # -- predict ----------------------------------------------------------------------
    async def predict(
        self, ref: ModelRef, body: bytes, *, keyed: bool, deadline: float | None,
        signature_name: str | None = None,
    ) -> bytes:
        """``{"instances"|"inputs"}`` → ``{"predictions"|"outputs"}`` JSON.

        ``signature_name`` is the route's choice (tfdeploy's ``/{signature}/predict``); one
        in the body wins over it.
        """
        parsed = codec.read_predict_body(body)
        entry = await self.cache.get(ref, deadline)
        signature = select_signature(entry.signatures, parsed.signature_name or signature_name)
        arrays = codec.decode_predict_inputs(
            parsed, signature, max_instances=self.config.max_instances
        )
        if self.batcher is not None and parsed.row:
            outputs = await self.batcher.submit(ref, signature.name, arrays, deadline)
        else:
            outputs = await self.send(ref, signature.name, arrays, remaining(deadline))
        self.learn(ref.name)
        return codec.encode_predict_response(outputs, row=parsed.row, keyed=keyed)

    async def send(
        self, ref: ModelRef, signature_name: str, arrays: Mapping[str, np.ndarray],
        timeout: float | None,
    ) -> dict[str, np.ndarray]:
        """One Predict call: arrays in, arrays out (the batcher's ``send``)."""
        entry = self.cache.peek(ref)
        sig = entry.signatures.get(signature_name) if entry else None
        request = predict_pb2.PredictRequest()
        ref.fill(request.model_spec, signature_name)
        for alias, array in arrays.items():
            spec = sig.inputs.get(alias) if sig else None
            dtype = datatype_of(array, spec.dtype if spec else None)
            fill_tensor_proto(request.inputs[alias], array, dtype)
        response = await self._call("Predict", request, timeout)
        if response.model_spec.HasField("version"):
            self.cache.note_answer(ref, response.model_spec.version.value)
        return {alias: to_ndarray(t) for alias, t in response.outputs.items()}

    # -- classify / regress -----------------------------------------------------------
    async def classify(self, ref: ModelRef, body: bytes, *, deadline: float | None) -> bytes:
        request = classification_pb2.ClassificationRequest()
        response = await self._examples_call("Classify", request, ref, body, deadline)
        return codec.encode_classify_response(response)

    async def regress(self, ref: ModelRef, body: bytes, *, deadline: float | None) -> bytes:
        request = regression_pb2.RegressionRequest()
        response = await self._examples_call("Regress", request, ref, body, deadline)
        return codec.encode_regress_response(response)

    async def _examples_call(
        self, method: str, request: Any, ref: ModelRef, body: bytes, deadline: float | None
    ) -> Any:
        """Fill a Classify/Regress ``request`` from an ``{"examples": ...}`` body and call."""
        signature_name, inputs = codec.read_examples_body(body)
        request.input.CopyFrom(inputs)
        ref.fill(request.model_spec, signature_name)
        response = await self._call(method, request, remaining(deadline))
        self.learn(ref.name)
        return response

    # -- status / metadata ------------------------------------------------------------
    async def model_status(self, ref: ModelRef, *, deadline: float | None) -> bytes:
        response = await self._status(ref, deadline)
        self.learn(ref.name)
        return codec.encode_model_status(response)

    async def model_metadata(self, ref: ModelRef, *, deadline: float | None) -> bytes:
        response = await self._fetch_metadata(ref, deadline)
        self.cache.put(ref, entry_from_metadata(response))
        self.learn(ref.name)
        return codec.encode_model_metadata(response)

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.aclose()
        await self.backend.close()

    # -- internals --------------------------------------------------------------------
    async def _status(
        self, ref: ModelRef, deadline: float | None
    ) -> get_model_status_pb2.GetModelStatusResponse:
        request = get_model_status_pb2.GetModelStatusRequest()
        ref.fill(request.model_spec)
        response = await self._call("GetModelStatus", request, remaining(deadline))
        if ref.version is None and ref.label is None:
            available = [v.version for v in response.model_version_status
                         if v.state == AVAILABLE]
            if available:  # "latest" moved: drop the cached signatures of the old one
                self.cache.note_answer(ref, max(available))
        return response

    async def _fetch_metadata(
        self, ref: ModelRef, deadline: float | None
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            metadata_field=[SIGNATURE_DEF_FIELD])
        ref.fill(request.model_spec)
        self.metrics.metadata_fetches.labels(ref.name).inc()
        return await self._call("GetModelMetadata", request, remaining(deadline))

    async def _call(self, method: str, request: Any, timeout: float | None) -> Any:
        started = now()
        try:
            return await self.backend.call(method, request, timeout)
        except GatewayError as exc:
            self.metrics.backend_errors.labels(method, exc.code.name).inc()
            if exc.code == Code.NOT_FOUND and method == "Predict":
                self.cache.invalidate(request.model_spec.name)
            raise
        finally:
            self.metrics.backend_call(method).observe(now() - started)
