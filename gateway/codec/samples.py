"""Example request bodies a signature accepts: what ``tfgw inspect``, the docs page, the
OpenAPI document and ``tfgw serve``'s banner all show (one builder, one answer).

A predict body is the row format (``instances``, each keyed by input alias, as CloudML and
tfdeploy clients send it) unless an input is a scalar, which only the columnar format
(``inputs``) carries. Values are zeros of each dtype (``""``/``{"b64": ""}`` for strings),
unknown dimensions are 1, and an input of more than :data:`MAX_ELEMENTS` elements is shown
with every dimension 1 (the page stays small; the shape table says the real one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from gateway.pb import types_pb2
from gateway.signatures import DEFAULT_SIGNATURE, Signature, TensorSpec
from gateway.tensors import FLOAT_TYPES

__all__ = ["MAX_ELEMENTS", "example_request", "examples_request_example"]

MAX_ELEMENTS = 4096


def example_request(sig: Signature, *, name_in_body: bool = True) -> dict[str, Any]:
    """A ``:predict`` body for ``sig``; ``signature_name`` is included for non-default
    signatures when ``name_in_body`` (TF Serving and CloudML; tfdeploy names it in the
    path)."""
    body: dict[str, Any] = {}
    if name_in_body and sig.name != DEFAULT_SIGNATURE:
        body["signature_name"] = sig.name
    if any(spec.shape == () for spec in sig.inputs.values()):
        body["inputs"] = {a: _filled(s.shape or (), _zero(s)) for a, s in sig.inputs.items()}
        return body
    instance = {a: _filled((s.shape or ())[1:], _zero(s)) for a, s in sig.inputs.items()}
    body["instances"] = [instance for _ in range(_batch_size(sig))]
    return body


def examples_request_example(sig: Signature) -> dict[str, Any]:
    """Illustrative ``:classify``/``:regress`` body (feature names are not in signatures)."""
    body: dict[str, Any] = {"examples": [{"feature": 0.0}]}
    return {"signature_name": sig.name, **body} if sig.name != DEFAULT_SIGNATURE else body


def _zero(spec: TensorSpec) -> Any:
    if spec.dtype in FLOAT_TYPES:
        return 0.0
    if spec.dtype == types_pb2.DT_BOOL:
        return False
    if spec.dtype == types_pb2.DT_STRING:
        return {"b64": ""} if spec.alias.endswith("_bytes") else ""
    return 0


def _filled(dims: Sequence[int], value: Any) -> Any:
    sizes = [d if d >= 0 else 1 for d in dims]
    if math.prod(sizes) > MAX_ELEMENTS:
        sizes = [1] * len(sizes)
    for size in reversed(sizes):
        value = [value] * size
    return value


def _batch_size(sig: Signature) -> int:
    for spec in sig.inputs.values():
        if spec.shape and spec.shape[0] > 0:
            return spec.shape[0]
    return 1
