"""Responses as JSON: predictions/outputs, model status and metadata, errors.

``orjson`` serializes finite numeric arrays directly (its float output is the shortest
round-trip text of the array's own dtype and always has a ``.0`` or an exponent);
NaN/Infinity, float16/bfloat16 and strings go in as pre-serialized fragments.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from google.protobuf import json_format

from gateway.codec.values import ORJSON_KINDS, json_tokens, nest_tokens
from gateway.errors import InvalidInput
from gateway.pb import get_model_metadata_pb2, get_model_status_pb2
from gateway.signatures import is_signature_def_map

__all__ = [
    "encode_error",
    "encode_model_metadata",
    "encode_model_status",
    "encode_predict_response",
]

_OPT_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def encode_predict_response(
    outputs: Mapping[str, np.ndarray], *, row: bool, keyed: bool
) -> bytes:
    """``{"predictions": ...}`` (row) or ``{"outputs": ...}`` (columnar) as TF Serving.

    ``keyed=True`` (CloudML/tfdeploy) always nests values under their output alias.
    """
    if not outputs:
        raise InvalidInput("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    arrays = {name: _native(np.asarray(outputs[name])) for name in names}
    if row:
        doc: dict[str, Any] = {"predictions": _row_document(arrays, keyed)}
    elif keyed or len(names) > 1:
        doc = {"outputs": {name: _json_whole(name, arrays[name]) for name in names}}
    else:
        doc = {"outputs": _json_whole(names[0], arrays[names[0]])}
    return orjson.dumps(doc, option=_OPT_NUMPY)


def _row_document(arrays: dict[str, np.ndarray], keyed: bool) -> Any:
    batch = -1
    for name, array in arrays.items():
        if array.ndim == 0:
            raise InvalidInput(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and array.shape[0] != batch:
            raise InvalidInput(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                f"expecting: {batch}"
            )
        batch = array.shape[0]
    if not keyed and len(arrays) == 1:
        name, array = next(iter(arrays.items()))
        return _json_whole(name, array)
    rows = {name: _json_rows(name, array) for name, array in arrays.items()}
    return [{name: rows[name][i] for name in arrays} for i in range(batch)]


def _native(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind != "O" and not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def _direct(array: np.ndarray) -> bool:
    """orjson prints this array exactly as TF Serving's rules want."""
    kind = array.dtype.kind
    if kind not in ORJSON_KINDS or array.dtype == np.float16:
        return False
    return kind != "f" or bool(np.isfinite(array).all())


def _json_whole(name: str, array: np.ndarray) -> Any:
    if _direct(array):
        return array if array.ndim else array[()]
    if array.dtype.kind == "O":
        return _string_values(name, array)
    return orjson.Fragment(nest_tokens(json_tokens(array), array.shape, 0)[0])


def _json_rows(name: str, array: np.ndarray) -> list[Any]:
    if _direct(array):
        return [array[i] for i in range(array.shape[0])]
    if array.dtype.kind == "O":
        return list(_string_values(name, array))
    return [orjson.Fragment(text) for text in nest_tokens(json_tokens(array), array.shape, 1)]


def _string_values(name: str, array: np.ndarray) -> Any:
    """Strings as UTF-8 text; ``_bytes`` aliases (or invalid UTF-8) as ``{"b64": ...}``."""
    as_bytes = name.endswith("_bytes")
    flat = [_string_json(value, as_bytes) for value in array.ravel().tolist()]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(array.shape).tolist() if array.ndim else flat[0]


def _string_json(value: Any, as_bytes: bool) -> Any:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray)):
        raise InvalidInput(f"String tensor holds a non-bytes value: {type(value).__name__}")
    if not as_bytes:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"b64": base64.b64encode(value).decode("ascii")}


def _proto_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def encode_model_status(resp: get_model_status_pb2.GetModelStatusResponse) -> bytes:
    """TF Serving's model status JSON (int64 as strings, enums by name, defaults shown)."""
    return orjson.dumps(_proto_dict(resp))


def encode_model_metadata(resp: get_model_metadata_pb2.GetModelMetadataResponse) -> bytes:
    """``{"model_spec": ..., "metadata": {"signature_def": <SignatureDefMap JSON>}}``."""
    metadata: dict[str, Any] = {}
    for key in sorted(resp.metadata):
        packed = resp.metadata[key]
        if is_signature_def_map(packed.type_url):
            sig_map = get_model_metadata_pb2.SignatureDefMap.FromString(packed.value)
            metadata[key] = _proto_dict(sig_map)
        else:
            metadata[key] = {
                "@type": packed.type_url,
                "value": base64.b64encode(packed.value).decode("ascii"),
            }
    return orjson.dumps({"model_spec": _proto_dict(resp.model_spec), "metadata": metadata})


def encode_error(message: str) -> bytes:
    """``{"error": message}``."""
    return orjson.dumps({"error": message})
