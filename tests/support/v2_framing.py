"""What tritonclient puts on the wire for v2, re-implemented for unit tests.

Written from reading triton-inference-server/client ``tritonclient/http/_utils.py``
(``_get_inference_request``), ``http/_infer_input.py`` (``set_data_from_numpy``),
``http/_requested_output.py``, ``http/_infer_result.py`` (``InferResult``),
``grpc/_infer_input.py`` / ``grpc/_infer_result.py`` and ``tritonclient/utils``
(``serialize_byte_tensor``, ``deserialize_bytes_tensor``, ``serialize_bf16_tensor``,
``deserialize_bf16_tensor``, ``triton_to_np_dtype``). The real client is used by the
end-to-end tests; this copy lets the codec tests run without it (it pins protobuf<7).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gateway.pb import grpc_predict_v2_pb2 as pb

TRITON_NP = {
    "BOOL": bool,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "BF16": np.float32,  # tritonclient carries BF16 in float32 arrays
    "FP64": np.float64,
    "BYTES": np.object_,
}


def serialize_byte_tensor(array: np.ndarray) -> bytes:
    parts = []
    for item in array.ravel(order="C").tolist():
        data = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(struct.pack("<I", len(data)) + data)
    return b"".join(parts)


def deserialize_bytes_tensor(buf: bytes) -> np.ndarray:
    items, offset = [], 0
    while offset < len(buf):
        (length,) = struct.unpack_from("<I", buf, offset)
        offset += 4
        items.append(bytes(buf[offset : offset + length]))
        offset += length
    return np.array(items, dtype=np.object_)


def serialize_bf16_tensor(array: np.ndarray) -> bytes:
    """float32 -> its high two bytes (truncation, as tritonclient does)."""
    return b"".join(struct.pack("<f", v)[2:4] for v in array.ravel().tolist())


def deserialize_bf16_tensor(buf: bytes) -> np.ndarray:
    return np.array(
        [struct.unpack("<f", b"\x00\x00" + buf[i : i + 2])[0] for i in range(0, len(buf), 2)],
        dtype=np.float32,
    )


@dataclass
class Input:
    """``tritonclient.http.InferInput`` + ``set_data_from_numpy(array, binary_data)``."""

    name: str
    array: np.ndarray
    datatype: str
    binary: bool = True
    parameters: dict[str, Any] = field(default_factory=dict)

    def raw(self) -> bytes | None:
        if not self.binary:
            return None
        if self.datatype == "BYTES":
            return serialize_byte_tensor(self.array)
        if self.datatype == "BF16":
            return serialize_bf16_tensor(self.array)
        return self.array.tobytes()

    def tensor(self) -> dict[str, Any]:
        tensor: dict[str, Any] = {
            "name": self.name, "shape": list(self.array.shape), "datatype": self.datatype,
        }
        params = dict(self.parameters)
        raw = self.raw()
        if raw is not None:
            params["binary_data_size"] = len(raw)
        if params:
            tensor["parameters"] = params
        if raw is None:
            tensor["data"] = self._json_data()
        return tensor

    def _json_data(self) -> list[Any]:
        if self.datatype == "BYTES":
            return [
                v.decode("utf-8") if isinstance(v, bytes) else str(v)
                for v in self.array.ravel().tolist()
            ]
        return [v.item() for v in self.array.flatten()]


def http_request(
    inputs: list[Input],
    outputs: list[tuple[str, bool]] | None = None,
    request_id: str = "",
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, int | None]:
    """(body, Inference-Header-Content-Length or None), as ``_get_inference_request``."""
    request: dict[str, Any] = {}
    params: dict[str, Any] = {}
    if request_id != "":
        request["id"] = request_id
    request["inputs"] = [i.tensor() for i in inputs]
    if outputs:
        request["outputs"] = [
            {"name": name, "parameters": {"binary_data": binary}} for name, binary in outputs
        ]
    else:
        params["binary_data_output"] = True
    params.update(parameters or {})
    if params:
        request["parameters"] = params
    text = json.dumps(request, separators=(",", ":"))  # rapidjson: compact, ASCII
    body = [text.encode()] + [raw for i in inputs if (raw := i.raw()) is not None]
    if len(body) == 1:
        return body[0], None
    return b"".join(body), len(text)


def http_as_numpy(body: bytes, header_length: int | None, name: str) -> np.ndarray | None:
    """``tritonclient.http.InferResult(...).as_numpy(name)``."""
    if header_length is None:
        result, buffer = json.loads(body), b""
    else:
        result, buffer = json.loads(body[:header_length]), body[header_length:]
    offsets, index = {}, 0
    for output in result["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            offsets[output["name"]] = index
            index += size
    for output in result["outputs"]:
        if output["name"] != name:
            continue
        size = (output.get("parameters") or {}).get("binary_data_size")
        datatype = output["datatype"]
        if size is None:
            array = np.array(output["data"], dtype=TRITON_NP[datatype])
        elif size == 0:
            array = np.empty(0, dtype=TRITON_NP[datatype])
        else:
            chunk = buffer[offsets[name] : offsets[name] + size]
            if datatype == "BYTES":
                array = deserialize_bytes_tensor(chunk)
            else:
                array = np.frombuffer(chunk, dtype=TRITON_NP[datatype])
        return array.reshape(output["shape"])
    return None


def grpc_request(
    inputs: list[tuple[str, np.ndarray, str]], model: str = "m"
) -> pb.ModelInferRequest:
    """``tritonclient.grpc`` ``_get_inference_request``: every input raw."""
    request = pb.ModelInferRequest(model_name=model)
    for name, array, datatype in inputs:
        request.inputs.add(name=name, datatype=datatype, shape=array.shape)
        if datatype == "BYTES":
            request.raw_input_contents.append(serialize_byte_tensor(array))
        elif datatype == "BF16":
            request.raw_input_contents.append(serialize_bf16_tensor(array))
        else:
            request.raw_input_contents.append(array.tobytes())
    return request


def grpc_as_numpy(response: pb.ModelInferResponse, name: str) -> np.ndarray | None:
    """``tritonclient.grpc.InferResult(response).as_numpy(name)``: raw only, or BYTES."""
    for index, output in enumerate(response.outputs):
        if output.name != name:
            continue
        shape = list(output.shape)
        if index < len(response.raw_output_contents):
            raw = response.raw_output_contents[index]
            if output.datatype == "BYTES":
                array = deserialize_bytes_tensor(raw)
            elif output.datatype == "BF16":
                array = deserialize_bf16_tensor(raw)
            else:
                array = np.frombuffer(raw, dtype=TRITON_NP[output.datatype])
        elif len(output.contents.bytes_contents):
            array = np.array(output.contents.bytes_contents)
        else:
            array = np.empty(0)
        return array.reshape(shape)
    return None
