"""JSON values for the codec: tolerant parsing, base64, and numeric text.

``parse_json`` uses orjson and falls back to the stdlib only for NaN/Infinity literals.
``json_tokens`` renders any numeric array element by element in TF Serving's style:
shortest round-trip text of the element's own dtype (float16/bfloat16 via a 65536-entry
table), ``NaN``/``Infinity``/``-Infinity`` literals.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from typing import Any

import numpy as np
import orjson

from gateway.errors import InvalidInput
from gateway.pb import types_pb2
from gateway.tensors import numpy_dtype

__all__ = [
    "decode_b64",
    "decode_b64_object",
    "float_text",
    "is_b64",
    "is_object",
    "json_tokens",
    "json_type",
    "nest_tokens",
    "non_finite_text",
    "parse_json",
    "parse_request_object",
    "short_json",
    "utf8",
]

_OPT_NUMPY = orjson.OPT_SERIALIZE_NUMPY
ORJSON_KINDS = frozenset("fiub")


def parse_json(body: bytes) -> Any:
    """Parse a request body; NaN/Infinity/-Infinity allowed; anything malformed is a 400."""
    if not body or not body.strip():
        raise InvalidInput("JSON Parse error: The document is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if b"NaN" in body or b"Infinity" in body:
            return _parse_non_finite(body)
        raise InvalidInput(f"JSON Parse error: {exc}") from None


def parse_request_object(body: bytes) -> tuple[dict[str, Any], str | None]:
    """A request body that must be a JSON object, and its optional ``signature_name``."""
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise InvalidInput(f"JSON Value: {short_json(doc)} Is not object")
    signature_name = doc.get("signature_name")
    if "signature_name" in doc and not isinstance(signature_name, str):
        raise InvalidInput(
            f"JSON Value: {short_json(signature_name)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return doc, signature_name


def _parse_non_finite(body: bytes) -> Any:
    """stdlib ``json`` accepts the NaN/Infinity literals orjson rejects (slow, rare)."""
    try:
        return json.loads(body)
    except RecursionError:
        raise InvalidInput("JSON Parse error: document nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidInput(f"JSON Parse error: {exc}") from None


def decode_b64(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional; anything else is a 400."""
    url_safe = "-" in text or "_" in text
    if url_safe and ("+" in text or "/" in text):
        raise InvalidInput("Unable to base64 decode: mixed standard and URL-safe alphabets")
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1:
        raise InvalidInput("Unable to base64 decode: invalid length")
    padded = stripped + "=" * (-len(stripped) % 4)
    try:
        return base64.b64decode(padded, altchars=b"-_" if url_safe else None, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"Unable to base64 decode: {short_json(text)}") from None


def is_b64(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and isinstance(value.get("b64"), str)
    )


def is_object(value: Any) -> bool:
    """A JSON object that is not a ``{"b64": ...}`` value."""
    return isinstance(value, dict) and not is_b64(value)


def decode_b64_object(value: dict[str, Any]) -> bytes:
    if not is_b64(value):
        raise InvalidInput(
            f"JSON Value: {short_json(value)} not formatted correctly for base64 data"
        )
    return decode_b64(value["b64"])


def utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"JSON string {short_json(text)} is not valid UTF-8") from None


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def short_json(value: Any, limit: int = 80) -> str:
    """A value as JSON text for error messages, truncated."""
    if isinstance(value, float) and not math.isfinite(value):
        text = non_finite_text(value)
    else:
        try:
            text = orjson.dumps(value).decode()
        except TypeError:  # huge ints, lone surrogates, nesting beyond orjson's limit
            try:
                text = repr(value)
            except RecursionError:
                text = f"<{json_type(value)}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_tokens(array: np.ndarray) -> list[str]:
    """Each element of a numeric array as JSON text (NaN/Infinity literals included)."""
    flat = array.ravel()
    kind = array.dtype.kind
    if array.dtype == np.float16 or array.dtype.name == "bfloat16":
        return _half_table(array.dtype.name)[flat.view(np.uint16)].tolist()
    if kind not in ORJSON_KINDS:
        raise InvalidInput(f"Failed to write JSON value for tensor type: {array.dtype.name}")
    finite = np.isfinite(flat)
    text = orjson.dumps(np.where(finite, flat, 0), option=_OPT_NUMPY).decode()[1:-1]
    tokens = text.split(",") if text else []
    for index in np.flatnonzero(~finite).tolist():
        tokens[index] = non_finite_text(float(flat[index]))
    return tokens


def nest_tokens(tokens: list[str], shape: tuple[int, ...], stop: int) -> list[str]:
    """Join flat JSON tokens into nested arrays down to axis ``stop``."""
    items = tokens
    for axis in range(len(shape) - 1, stop - 1, -1):
        size = shape[axis]
        groups = math.prod(shape[:axis])
        items = ["[" + ",".join(items[g * size : (g + 1) * size]) + "]" for g in range(groups)]
    return items


def non_finite_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "-Infinity" if value < 0 else "Infinity"


@functools.cache
def _half_table(name: str) -> np.ndarray:
    """JSON text for all 65536 float16/bfloat16 values, shortest round-trip per dtype."""
    dtype = np.dtype(np.float16) if name == "float16" else numpy_dtype(types_pb2.DT_BFLOAT16)
    values = np.arange(65536, dtype=np.uint16).view(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        return _build_half_table(values, dtype)


def _build_half_table(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    wide = values.astype(np.float64)
    table = np.empty(65536, dtype=object)
    todo = np.isfinite(wide)
    for digits in range(1, 10):
        if not todo.any():
            break
        index = np.flatnonzero(todo)
        texts = [f"{v:.{digits}g}" for v in wide[index].tolist()]
        back = np.array(texts, dtype=np.float64).astype(dtype)
        ok = back.view(np.uint16) == values[index].view(np.uint16)
        for i, text in zip(index[ok].tolist(), np.array(texts)[ok].tolist(), strict=True):
            table[i] = float_text(float(text))
        todo[index[ok]] = False
    for i in np.flatnonzero(~np.isfinite(wide)).tolist():
        table[i] = non_finite_text(float(wide[i]))
    return table


def float_text(value: float) -> str:
    """Python's shortest repr, exponent without leading zeros (``1e-5``, ``6.1e+4``)."""
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = exponent[0] if exponent[0] in "+-" else "+"
        text = f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"
    return text
