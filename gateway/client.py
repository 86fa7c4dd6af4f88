"""Python clients for a running gateway (REST) or backend (gRPC), returning numpy arrays.

``RestClient`` speaks TF Serving's REST JSON to ``tfgw gateway``/``tfgw serve`` using only
the standard library; ``GrpcClient`` calls ``PredictionService`` on TF Serving or
``tfgw modelserver`` with the project's wire-identical protos. Neither imports TensorFlow.
Both raise :class:`ClientError` carrying the server's own error text.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gateway.errors import Code, http_status
from gateway.signatures import DEFAULT_SIGNATURE

__all__ = ["ClientError", "GrpcClient", "RestClient"]

DEFAULT_TIMEOUT = 30.0


class ClientError(Exception):
    """A request failed: ``status`` is the HTTP status (for gRPC, TF Serving's mapping of
    the code), ``message`` the server's error text, ``code`` the gRPC code name if any."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.code = code


def _model_path(model: str, version: int | None, label: str | None) -> str:
    if version is not None and label is not None:
        raise ValueError("pass version or label, not both")
    path = f"/v1/models/{urllib.parse.quote(model, safe='')}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label is not None:
        path += f"/labels/{urllib.parse.quote(label, safe='')}"
    return path


def _jsonable(value: Any) -> Any:
    """numpy arrays → lists (one ``tolist()`` each), bytes → ``{"b64": ...}``."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OSU":
            return [_jsonable(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _decode_b64(value: Any) -> Any:
    if _is_b64(value):
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_b64(v) for v in value]
    return value


def _to_array(value: Any) -> np.ndarray:
    value = _decode_b64(value)
    array = np.asarray(value)
    if array.dtype.kind in "SU":
        array = np.asarray(value, dtype=object)
    return array


def _is_keyed(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


class RestClient:
    """TF Serving REST API client for the gateway (``url`` like ``http://127.0.0.1:8089``)."""

    def __init__(
        self, url: str, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._aliases: dict[tuple[str, int | None, str | None, str], str] = {}

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release (one connection per request); kept for symmetry."""

    # -- transport ---------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise ClientError(exc.code, _error_text(exc.read())) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(503, f"cannot reach {self.url}: {reason}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise ClientError(502, f"invalid JSON from {self.url}{path}") from None

    # -- API ---------------------------------------------------------------------------
    def post(self, path: str, body: Any) -> Any:
        """POST a JSON ``body`` to ``path`` (e.g. the CloudML ``/serving_default/predict``)
        and return the parsed JSON answer; errors raise :class:`ClientError`."""
        return self._request("POST", path, _jsonable(body))

    def predict(
        self,
        model: str,
        instances: Any = None,
        inputs: Any = None,
        *,
        version: int | None = None,
        label: str | None = None,
        signature_name: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Row (``instances``) or columnar (``inputs``) predict; arrays by output alias."""
        if (instances is None) == (inputs is None):
            raise ValueError("pass exactly one of instances= or inputs=")
        body: dict[str, Any] = {}
        if signature_name is not None:
            body["signature_name"] = signature_name
        row = instances is not None
        body["instances" if row else "inputs"] = _jsonable(instances if row else inputs)
        path = _model_path(model, version, label)
        answer = self._request("POST", path + ":predict", body)
        result = answer["predictions" if row else "outputs"]
        keyed = _is_keyed(result[0] if row and result else result)
        if keyed and row:
            return {k: _to_array([inst[k] for inst in result]) for k in result[0]}
        if keyed:
            return {k: _to_array(v) for k, v in result.items()}
        alias = self._output_alias(model, version, label, signature_name or DEFAULT_SIGNATURE)
        return {alias: _to_array(result)}

    def _output_alias(
        self, model: str, version: int | None, label: str | None, signature: str
    ) -> str:
        key = (model, version, label, signature)
        if key not in self._aliases:
            meta = self.metadata(model, version=version, label=label)
            defs = meta["metadata"]["signature_def"]["signature_def"]
            if signature not in defs:
                raise ClientError(400, f"signature {signature!r} not in metadata")
            outputs = sorted(defs[signature].get("outputs", {}))
            if len(outputs) != 1:
                raise ClientError(502, f"bare response but {len(outputs)} outputs in metadata")
            self._aliases[key] = outputs[0]
        return self._aliases[key]

    def status(self, model: str, *, version: int | None = None) -> dict[str, Any]:
        """``GET /v1/models/{model}[/versions/{v}]`` as parsed JSON."""
        return self._request("GET", _model_path(model, version, None))

    def metadata(
        self, model: str, *, version: int | None = None, label: str | None = None
    ) -> dict[str, Any]:
        """``GET .../metadata`` as parsed JSON (TF Serving's SignatureDefMap rendering)."""
        return self._request("GET", _model_path(model, version, label) + "/metadata")

    def classify(
        self, model: str, examples: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> list[Any]:
        """``:classify``; returns TF Serving's ``results`` list."""
        return self._examples(model, "classify", examples, **kwargs)

    def regress(
        self, model: str, examples: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> list[Any]:
        """``:regress``; returns TF Serving's ``results`` list."""
        return self._examples(model, "regress", examples, **kwargs)

    def _examples(
        self,
        model: str,
        verb: str,
        examples: Sequence[Mapping[str, Any]],
        *,
        context: Mapping[str, Any] | None = None,
        version: int | None = None,
        label: str | None = None,
        signature_name: str | None = None,
    ) -> list[Any]:
        body: dict[str, Any] = {"examples": _jsonable(list(examples))}
        if context is not None:
            body["context"] = _jsonable(context)
        if signature_name is not None:
            body["signature_name"] = signature_name
        answer = self._request("POST", f"{_model_path(model, version, label)}:{verb}", body)
        return answer["results"]


def _error_text(raw: bytes) -> str:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip()
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return parsed["error"]
    return raw.decode("utf-8", "replace").strip()


class GrpcClient:
    """``PredictionService`` client over gRPC (``target`` like ``127.0.0.1:8500``).

    Inputs are converted with the signature's dtypes (fetched once per model/version/label
    with GetModelMetadata); outputs come back as numpy arrays keyed by alias.
    """

    def __init__(self, target: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        import grpc

        from gateway.wire import MAX_MESSAGE_BYTES, METHODS

        self.target = target
        self.timeout = timeout
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        self._channel = grpc.insecure_channel(target, options=options)
        self._predict = METHODS["Predict"].bind(self._channel)
        self._metadata = METHODS["GetModelMetadata"].bind(self._channel)
        self._signatures: dict[tuple[str, int | None, str | None], dict[str, Any]] = {}

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Any, request: Any) -> Any:
        import grpc

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            code = exc.code()
            number = code.value[0] if code is not None else Code.UNKNOWN
            name = code.name if code is not None else "UNKNOWN"
            raise ClientError(http_status(number), exc.details() or name, code=name) from None

    def metadata(
        self, model: str, *, version: int | None = None, label: str | None = None
    ) -> dict[str, Any]:
        """Signatures of the model, keyed by name (``gateway.signatures.Signature``)."""
        from gateway.pb import get_model_metadata_pb2
        from gateway.signatures import SIGNATURE_DEF_FIELD, signatures_from_metadata

        key = (model, version, label)
        if key not in self._signatures:
            request = get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec=_model_spec(model, version, label, None),
                metadata_field=[SIGNATURE_DEF_FIELD],
            )
            response = self._call(self._metadata, request)
            self._signatures[key] = signatures_from_metadata(response)
        return self._signatures[key]

    def predict(
        self,
        model: str,
        instances: Any = None,
        inputs: Any = None,
        *,
        version: int | None = None,
        label: str | None = None,
        signature_name: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Same contract as :meth:`RestClient.predict`, over gRPC."""
        from gateway.pb import predict_pb2
        from gateway.signatures import select_signature
        from gateway.tensors import fill_tensor_proto, to_ndarray

        if (instances is None) == (inputs is None):
            raise ValueError("pass exactly one of instances= or inputs=")
        signatures = self.metadata(model, version=version, label=label)
        try:
            signature = select_signature(signatures, signature_name)
        except Exception as exc:
            raise ClientError(400, str(exc), code="INVALID_ARGUMENT") from None
        by_alias = _split_inputs(instances if instances is not None else inputs,
                                 row=instances is not None, aliases=list(signature.inputs))
        request = predict_pb2.PredictRequest(
            model_spec=_model_spec(model, version, label, signature.name)
        )
        for alias, value in by_alias.items():
            if alias not in signature.inputs:
                raise ClientError(400, f"unknown input {alias!r}", code="INVALID_ARGUMENT")
            dtype = signature.inputs[alias].dtype
            fill_tensor_proto(request.inputs[alias], _as_dtype(value, dtype), dtype)
        response = self._call(self._predict, request)
        return {alias: to_ndarray(response.outputs[alias]) for alias in response.outputs}


def _model_spec(model: str, version: int | None, label: str | None, signature: str | None
                ) -> Any:
    from gateway.pb import model_pb2
    from gateway.types import ModelRef

    if version is not None and label is not None:
        raise ValueError("pass version or label, not both")
    spec = model_pb2.ModelSpec()
    ModelRef(model, None if version is None else int(version), label).fill(spec, signature)
    return spec


def _split_inputs(data: Any, *, row: bool, aliases: list[str]) -> dict[str, Any]:
    """One value per input alias; row data (list of objects) is stacked along a new axis."""
    if row and isinstance(data, list | tuple) and data and isinstance(data[0], Mapping):
        return {k: [inst[k] for inst in data] for k in data[0]}
    if isinstance(data, Mapping):
        return dict(data)
    if len(aliases) != 1:
        raise ClientError(
            400, f"the signature has inputs {aliases}: pass an object keyed by input name",
            code="INVALID_ARGUMENT",
        )
    return {aliases[0]: data}


def _as_dtype(value: Any, dtype: int) -> np.ndarray:
    from gateway.tensors import numpy_dtype

    target = numpy_dtype(dtype)
    if target == np.dtype(object):
        array = np.asarray(value, dtype=object)
        flat = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in array.flat]
        return np.array(flat, dtype=object).reshape(array.shape)
    return np.asarray(value, dtype=target)
