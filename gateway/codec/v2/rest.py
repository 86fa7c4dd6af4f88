"""Open Inference Protocol (KServe v2) over REST: requests, responses and metadata.

Transport-free: the HTTP edge hands over the (decompressed) body and the parsed
``Inference-Header-Content-Length``; it gets back an :class:`InferRequest` or bytes to
send. The gRPC side (``gateway.codec.v2.proto``) builds the same :class:`InferRequest`, so
:func:`check_signature` and the backend call are shared. Every problem with a request
is an :class:`~gateway.errors.InvalidInput` (400 / INVALID_ARGUMENT); features the
gateway does not offer (shared memory, classification) are ``Unimplemented`` (501).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from gateway.codec.v2.tensors import (
    array_from_list,
    array_from_raw,
    array_to_raw,
    check_shape,
    datatype_of,
    json_data,
    tf_dtype,
    v2_datatype,
)
from gateway.errors import GatewayError, InvalidInput, Unimplemented
from gateway.signatures import Signature, TensorSpec

__all__ = [
    "EXTENSIONS",
    "HEADER_LENGTH",
    "PLATFORM",
    "SERVER_NAME",
    "InferRequest",
    "RequestedOutput",
    "check_signature",
    "encode_infer_response",
    "model_metadata",
    "parse_header_length",
    "parse_infer_request",
    "reject_unsupported",
    "selected_outputs",
    "server_metadata",
    "tensor_metadata",
]

HEADER_LENGTH = "Inference-Header-Content-Length"
PLATFORM = "tensorflow_savedmodel"
SERVER_NAME = "tfserving-gateway"
EXTENSIONS = ("binary_tensor_data",)
_UNSUPPORTED = {
    "shared_memory_region": "shared memory",
    "classification": "the classification extension",
}


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    """An entry of the request's ``outputs``; ``binary`` is its ``binary_data`` (REST)."""

    name: str
    binary: bool | None = None


@dataclass(slots=True)
class InferRequest:
    """A decoded v2 inference request, the same for REST and gRPC.

    ``inputs`` holds one array per input in request order, with the numpy dtype of its
    datatype (BYTES: object arrays of ``bytes``); binary inputs are read-only views of
    the request body. ``outputs`` is None when the request names none (all outputs).
    """

    inputs: dict[str, np.ndarray]
    outputs: tuple[RequestedOutput, ...] | None = None
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    signature_name: str | None = None
    binary_output: bool = False
    raw: bool = False

    @classmethod
    def create(
        cls,
        inputs: dict[str, np.ndarray],
        outputs: Sequence[RequestedOutput],
        request_id: str | None,
        parameters: dict[str, Any],
        raw: bool = False,
    ) -> InferRequest:
        """Validate the request-level parts both transports share and build it."""
        return cls(
            inputs=inputs,
            outputs=_unique_outputs(outputs),
            id=request_id,
            parameters=parameters,
            signature_name=_signature_name(parameters),
            binary_output=_flag(parameters, "binary_data_output", "request"),
            raw=raw,
        )

    @property
    def output_filter(self) -> list[str]:
        """Names for TF Serving's ``output_filter`` (empty: every output)."""
        return [out.name for out in self.outputs or ()]


def parse_header_length(value: str | None) -> int | None:
    """The ``Inference-Header-Content-Length`` header as an int (None when absent)."""
    if value is None:
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise InvalidInput(f"{HEADER_LENGTH} must be a non-negative integer, got {value!r}")
    return int(text)


def parse_infer_request(body: bytes | memoryview, header_length: int | None) -> InferRequest:
    """Decode a ``POST .../infer`` body, binary tensor data extension included.

    With ``header_length`` the first that many bytes are the JSON and the rest are the
    binary inputs (those with ``parameters.binary_data_size``), in order, with nothing
    left over. Without it the whole body is JSON.
    """
    view = memoryview(body).cast("B")
    if header_length is not None and not 0 <= header_length <= len(view):
        raise InvalidInput(
            f"{HEADER_LENGTH} {header_length} does not fit the {len(view)}-byte body"
        )
    cut = len(view) if header_length is None else header_length
    doc = _parse_json(view[:cut])
    binary = _Binary(None if header_length is None else view[cut:])
    request = _request(doc, binary)
    binary.finish()
    return request


def _request(doc: Any, binary: _Binary) -> InferRequest:
    if not isinstance(doc, dict):
        raise InvalidInput("inference request must be a JSON object")
    request_id = doc.get("id")
    if request_id is not None:
        request_id = _text(request_id, "'id'", empty_ok=True)
    params = _parameters(doc.get("parameters"), "request")
    inputs_json = doc.get("inputs")
    if not isinstance(inputs_json, list):
        raise InvalidInput("inference request needs 'inputs', an array")
    inputs: dict[str, np.ndarray] = {}
    for index, item in enumerate(inputs_json):
        name, array = _input(item, index, binary)
        if name in inputs:
            raise InvalidInput(f"input '{name}' is given twice")
        inputs[name] = array
    return InferRequest.create(inputs, _outputs(doc.get("outputs")), request_id, params)


def _input(item: Any, index: int, binary: _Binary) -> tuple[str, np.ndarray]:
    if not isinstance(item, dict):
        raise InvalidInput(f"inputs[{index}] must be an object")
    name = _text(item.get("name"), f"inputs[{index}].name")
    where = f"input '{name}'"
    datatype = item.get("datatype")
    tf_dtype(datatype, where)
    shape = check_shape(item.get("shape"), where)
    params = _parameters(item.get("parameters"), where)
    reject_unsupported(params, where)
    if "binary_data_size" in params:
        if "data" in item:
            raise InvalidInput(f"{where} has both 'data' and parameters.binary_data_size")
        data = binary.take(params["binary_data_size"], where)
        return name, array_from_raw(data, datatype, shape, where)
    if "data" not in item:
        raise InvalidInput(f"{where} has neither 'data' nor parameters.binary_data_size")
    return name, array_from_list(item["data"], datatype, shape, where)


def _outputs(value: Any) -> list[RequestedOutput]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("'outputs' must be an array")
    outputs: list[RequestedOutput] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidInput(f"outputs[{index}] must be an object")
        name = _text(item.get("name"), f"outputs[{index}].name")
        where = f"output '{name}'"
        params = _parameters(item.get("parameters"), where)
        reject_unsupported(params, where)
        binary = _flag(params, "binary_data", where) if "binary_data" in params else None
        outputs.append(RequestedOutput(name, binary))
    return outputs


def _unique_outputs(outputs: Sequence[RequestedOutput]) -> tuple[RequestedOutput, ...] | None:
    seen: set[str] = set()
    for out in outputs:
        if out.name in seen:
            raise InvalidInput(f"output '{out.name}' is requested twice")
        seen.add(out.name)
    return tuple(outputs) or None


def reject_unsupported(params: Mapping[str, Any], where: str) -> None:
    """501 for parameters that ask for extensions the gateway does not implement."""
    for key, feature in _UNSUPPORTED.items():
        if key in params:
            raise Unimplemented(f"{where}: {feature} is not supported by this server")


def _signature_name(params: Mapping[str, Any]) -> str | None:
    if "signature_name" not in params:
        return None
    return _text(params["signature_name"], "parameters.signature_name")


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: 'parameters' must be an object")
    for key, item in value.items():
        if not isinstance(item, (str, bool, int, float)):
            raise InvalidInput(
                f"{where}: parameters.{key} must be a string, number or boolean"
            )
    return value


def _flag(params: Mapping[str, Any], key: str, where: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{where}: parameters.{key} must be true or false")
    return value


def _text(value: Any, what: str, empty_ok: bool = False) -> str:
    if not isinstance(value, str) or not (value or empty_ok):
        raise InvalidInput(f"{what} must be a {'' if empty_ok else 'non-empty '}string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid UTF-8") from None
    return value


def _parse_json(text: memoryview) -> Any:
    """orjson; the stdlib only for NaN/±Infinity literals and numbers beyond a double."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raw = bytes(text)
        if b"NaN" not in raw and b"Infinity" not in raw and "infinity" not in str(exc):
            raise InvalidInput(f"malformed inference request JSON: {exc}") from None
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise InvalidInput(f"malformed inference request JSON: {exc}") from None


class _Binary:
    """The binary section after the JSON, handed out in order by ``binary_data_size``."""

    def __init__(self, data: memoryview | None) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: Any, where: str) -> memoryview:
        if type(size) is not int or size < 0:
            raise InvalidInput(
                f"{where}: parameters.binary_data_size must be a non-negative integer"
            )
        if self.data is None:
            raise InvalidInput(
                f"{where} has parameters.binary_data_size but the request has no "
                f"{HEADER_LENGTH} header"
            )
        end = self.offset + size
        if end > len(self.data):
            raise InvalidInput(
                f"{where}: binary_data_size {size} runs past the end of the body "
                f"({len(self.data) - self.offset} bytes left)"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def finish(self) -> None:
        if self.data is not None and self.offset != len(self.data):
            raise InvalidInput(
                f"{len(self.data) - self.offset} bytes after the JSON header are not "
                "claimed by any input's binary_data_size"
            )


def check_signature(request: InferRequest, signature: Signature) -> None:
    """400 before the backend: unknown or missing inputs, a datatype other than the
    signature's, unknown requested outputs. Declared shapes are not enforced."""
    known = ", ".join(signature.inputs) or "(none)"
    for name in request.inputs:
        if name not in signature.inputs:
            raise InvalidInput(
                f"unknown input '{name}' for signature '{signature.name}'; inputs: {known}"
            )
    for name in signature.inputs:
        if name not in request.inputs:
            raise InvalidInput(
                f"missing input '{name}' for signature '{signature.name}'; inputs: {known}"
            )
    for name, array in request.inputs.items():
        _check_datatype(name, datatype_of(array), signature.inputs[name], signature.name)
    outputs = ", ".join(signature.outputs) or "(none)"
    for out in request.outputs or ():
        if out.name not in signature.outputs:
            raise InvalidInput(
                f"unknown output '{out.name}' for signature '{signature.name}'; "
                f"outputs: {outputs}"
            )


def _check_datatype(name: str, datatype: str, spec: TensorSpec, signature: str) -> None:
    expected = v2_datatype(spec.dtype)
    if expected is None:
        raise InvalidInput(
            f"input '{name}' is {spec.dtype_name} in signature '{signature}', "
            "which the v2 protocol cannot carry"
        )
    if datatype != expected:
        raise InvalidInput(
            f"input '{name}' has datatype {datatype} but signature '{signature}' "
            f"expects {expected}"
        )


def selected_outputs(
    outputs: Mapping[str, np.ndarray],
    requested: Sequence[RequestedOutput] | None,
    binary_default: bool,
) -> Iterator[tuple[str, np.ndarray, bool]]:
    """(name, array, binary) in the requested order, or every output in mapping order.

    ``binary`` is the output's own ``binary_data`` when given, else ``binary_default``
    (the request's ``binary_data_output``).
    """
    if not requested:
        for name, array in outputs.items():
            yield name, array, binary_default
        return
    for out in requested:
        if out.name not in outputs:
            raise GatewayError(f"backend answered without output '{out.name}'")
        binary = binary_default if out.binary is None else out.binary
        yield out.name, outputs[out.name], binary


def encode_infer_response(
    model_name: str,
    model_version: str | int,
    request_id: str | None,
    outputs: Mapping[str, np.ndarray],
    requested: Sequence[RequestedOutput] | None = None,
    binary_default: bool = False,
) -> tuple[bytes, int | None]:
    """The response body and its JSON header length (None when there is no binary part).

    With a header length, answer ``Content-Type: application/octet-stream`` and
    ``Inference-Header-Content-Length: <length>``; otherwise ``application/json``.
    """
    head: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if request_id is not None:
        head["id"] = request_id
    parts: list[bytes] = []
    blobs: list[bytes] = []
    for name, array, binary in selected_outputs(outputs, requested, binary_default):
        datatype = datatype_of(array)
        meta = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            blobs.append(array_to_raw(array, datatype))
            meta["parameters"] = {"binary_data_size": len(blobs[-1])}
            parts.append(orjson.dumps(meta))
        else:
            data = json_data(array, datatype, f"output '{name}'")
            parts.append(orjson.dumps(meta)[:-1] + b',"data":' + data + b"}")
    header = orjson.dumps(head)[:-1] + b',"outputs":[' + b",".join(parts) + b"]}"
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def tensor_metadata(spec: TensorSpec) -> tuple[str, str, list[int]]:
    """(name, datatype, shape) of a signature tensor: ``-1`` for unknown dims, ``[-1]``
    for unknown rank, the TensorFlow type name for types v2 cannot carry."""
    datatype = v2_datatype(spec.dtype) or spec.dtype_name
    shape = [-1] if spec.shape is None else [int(d) for d in spec.shape]
    return spec.alias, datatype, shape


def model_metadata(name: str, versions: Iterable[int | str], signature: Signature) -> dict:
    """``GET /v2/models/{name}[/versions/{v}]`` body."""

    def tensors(specs: Mapping[str, TensorSpec]) -> list[dict[str, Any]]:
        rows = (tensor_metadata(spec) for spec in specs.values())
        return [{"name": n, "datatype": d, "shape": s} for n, d, s in rows]

    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": PLATFORM,
        "inputs": tensors(signature.inputs),
        "outputs": tensors(signature.outputs),
    }


def server_metadata(version: str) -> dict:
    """``GET /v2`` body."""
    return {"name": SERVER_NAME, "version": version, "extensions": list(EXTENSIONS)}
