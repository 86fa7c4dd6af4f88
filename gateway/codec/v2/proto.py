"""Open Inference Protocol (KServe v2) over gRPC: generated messages <-> the v2 codec.

Transport-free converters for a hand-registered ``inference.GRPCInferenceService``
servicer. Requests decode to the same :class:`~gateway.codec.v2.rest.InferRequest` as REST,
with the same validation. Inputs come either all in ``raw_input_contents`` (what
``tritonclient.grpc`` always sends) or each in its typed ``contents`` field; FP16 and
BF16 have no typed field. Responses are raw when the request was raw or when any
output is FP16/BF16 (then every output is raw, as the protocol allows only one form);
typed otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from gateway.codec.v2.rest import (
    EXTENSIONS,
    PLATFORM,
    SERVER_NAME,
    InferRequest,
    RequestedOutput,
    reject_unsupported,
    selected_outputs,
    tensor_metadata,
)
from gateway.codec.v2.tensors import (
    array_from_list,
    array_from_raw,
    array_to_raw,
    array_values,
    check_shape,
    datatype_of,
    tf_dtype,
)
from gateway.errors import InvalidInput
from gateway.pb import grpc_predict_v2_pb2 as pb
from gateway.signatures import Signature

__all__ = [
    "infer_request_from_proto",
    "infer_response_to_proto",
    "model_metadata_to_proto",
    "server_metadata_to_proto",
]

_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def infer_request_from_proto(message: pb.ModelInferRequest) -> InferRequest:
    """Decode a ``ModelInferRequest`` (model name and version stay on the message)."""
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs"
        )
    inputs: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(message.inputs):
        name, array = _input(tensor, index, raw[index] if raw else None)
        if name in inputs:
            raise InvalidInput(f"input '{name}' is given twice")
        inputs[name] = array
    outputs = [_requested(out, index) for index, out in enumerate(message.outputs)]
    params = _parameters(message.parameters)
    return InferRequest.create(inputs, outputs, message.id or None, params, raw=bool(raw))


def _input(
    tensor: pb.ModelInferRequest.InferInputTensor, index: int, raw: bytes | None
) -> tuple[str, np.ndarray]:
    name = _name(tensor.name, f"inputs[{index}].name")
    where = f"input '{name}'"
    datatype = tensor.datatype
    tf_dtype(datatype, where)
    shape = check_shape(list(tensor.shape), where)
    reject_unsupported(_parameters(tensor.parameters), where)
    if raw is None:
        return name, _from_contents(tensor.contents, datatype, shape, where)
    if tensor.HasField("contents"):
        raise InvalidInput(f"{where} has 'contents' but the request uses raw_input_contents")
    return name, array_from_raw(raw, datatype, shape, where)


def _from_contents(
    contents: pb.InferTensorContents, datatype: str, shape: tuple[int, ...], where: str
) -> np.ndarray:
    expected = _CONTENTS.get(datatype)
    if expected is None and math.prod(shape):
        raise InvalidInput(f"{where}: {datatype} data must come in raw_input_contents")
    for descriptor, _ in contents.ListFields():
        if descriptor.name != expected:
            raise InvalidInput(
                f"{where}: {datatype} data goes in contents.{expected}, "
                f"not contents.{descriptor.name}"
            )
    values = list(getattr(contents, expected)) if expected else []
    return array_from_list(values, datatype, shape, where)


def _requested(
    out: pb.ModelInferRequest.InferRequestedOutputTensor, index: int
) -> RequestedOutput:
    name = _name(out.name, f"outputs[{index}].name")
    reject_unsupported(_parameters(out.parameters), f"output '{name}'")
    return RequestedOutput(name)


def _parameters(params: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, param in params.items():
        choice = param.WhichOneof("parameter_choice")
        if choice is not None:
            values[key] = getattr(param, choice)
    return values


def _name(value: str, what: str) -> str:
    if not value:
        raise InvalidInput(f"{what} must be a non-empty string")
    return value


def infer_response_to_proto(
    model_name: str,
    model_version: str | int,
    request_id: str | None,
    outputs: Mapping[str, np.ndarray],
    requested: Sequence[RequestedOutput] | None = None,
    raw: bool = False,
) -> pb.ModelInferResponse:
    """A ``ModelInferResponse``; pass ``raw=request.raw``."""
    chosen = [
        (name, array, datatype_of(array))
        for name, array, _ in selected_outputs(outputs, requested, False)
    ]
    raw = raw or any(datatype not in _CONTENTS for _, _, datatype in chosen)
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=str(model_version), id=request_id or ""
    )
    for name, array, datatype in chosen:
        tensor = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        if raw:
            response.raw_output_contents.append(array_to_raw(array, datatype))
        elif array.size:
            values = array_values(array, datatype, f"output '{name}'")
            getattr(tensor.contents, _CONTENTS[datatype]).extend(values)
    return response


def model_metadata_to_proto(
    name: str, versions: Iterable[int | str], signature: Signature
) -> pb.ModelMetadataResponse:
    """``ModelMetadata`` answer; same content as the REST metadata."""
    response = pb.ModelMetadataResponse(
        name=name, versions=[str(v) for v in versions], platform=PLATFORM
    )
    for target, specs in ((response.inputs, signature.inputs),
                          (response.outputs, signature.outputs)):
        for spec in specs.values():
            alias, datatype, shape = tensor_metadata(spec)
            target.add(name=alias, datatype=datatype, shape=shape)
    return response


def server_metadata_to_proto(version: str) -> pb.ServerMetadataResponse:
    """``ServerMetadata`` answer."""
    return pb.ServerMetadataResponse(
        name=SERVER_NAME, version=version, extensions=list(EXTENSIONS)
    )
