"""``:predict`` bodies → one numpy array per input, with TF Serving's ``json_tensor.cc`` rules.

Dense numeric bodies take ``gateway.codec.fast`` (simdjson straight into numpy, no Python
object per number). Everything else, and every error, takes the strict path: one
``orjson`` parse, the row/column structure checked here, then each input's value turned
into an array by ``gateway.codec.arrays``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gateway.codec import fast as codec_fast
from gateway.codec.arrays import BodyScan, rows_to_array, shape_text, value_to_array
from gateway.codec.values import is_object, json_type, parse_request_object
from gateway.errors import InvalidInput
from gateway.signatures import Signature, TensorSpec

__all__ = ["PredictBody", "decode_predict_inputs", "read_predict_body"]

_UNPARSED: Any = object()


class PredictBody:
    """A ``:predict`` body after top-level validation; ``data`` is instances or inputs.

    A body the fast path took holds its simdjson view in ``fast``; ``data`` (Python
    objects) is then only parsed if the strict path is needed after all.
    """

    __slots__ = ("_data", "fast", "raw", "row", "signature_name")

    def __init__(self, signature_name: str | None, row: bool, data: Any, raw: bytes,
                 fast: codec_fast.FastBody | None = None) -> None:
        self.signature_name = signature_name
        self.row = row
        self.raw = raw
        self.fast = fast
        self._data = data

    @property
    def data(self) -> Any:
        if self._data is _UNPARSED:
            self._data = _read_strict(self.raw).data
        return self._data


def read_predict_body(body: bytes) -> PredictBody:
    """Validate the top level: an object with ``instances`` XOR ``inputs``."""
    fast = codec_fast.parse(body)
    if fast is not None:
        return PredictBody(fast.signature_name, fast.row, _UNPARSED, body, fast)
    return _read_strict(body)


def _read_strict(body: bytes) -> PredictBody:
    doc, signature_name = parse_request_object(body)
    has_rows, has_cols = "instances" in doc, "inputs" in doc
    if has_rows and has_cols:
        raise InvalidInput(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"
        )
    if not (has_rows or has_cols):
        raise InvalidInput("Missing 'inputs' or 'instances' key")
    if has_rows:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise InvalidInput("Expecting 'instances' to be an list/array")
        if not instances:
            raise InvalidInput("No values in 'instances' array")
    data = doc["instances"] if has_rows else doc["inputs"]
    return PredictBody(signature_name=signature_name, row=has_rows, data=data, raw=body)




def decode_predict_inputs(
    body: PredictBody, signature: Signature, *, max_instances: int | None = None
) -> dict[str, np.ndarray]:
    """One array per signature input (dtype from the signature), or a precise 400."""
    if not signature.inputs:
        raise InvalidInput(f"Failed to get input map for signature: {signature.name}")
    fast, body.fast = body.fast, None  # the simdjson view is released once used
    arrays = codec_fast.decode(fast, signature, max_instances) if fast else None
    if arrays is not None and not body.row:
        _check_column_batch(signature, arrays, max_instances)
    if arrays is None:
        arrays = _decode_strict(body, signature, max_instances)
    for alias, array in arrays.items():
        _check_shape(signature, signature.inputs[alias], array)
    return arrays


def _decode_strict(
    body: PredictBody, signature: Signature, max_instances: int | None
) -> dict[str, np.ndarray]:
    scan = BodyScan(body.raw, body.signature_name)
    try:
        if body.row:
            return _decode_rows(body.data, signature, scan, max_instances)
        return _decode_columns(body.data, signature, scan, max_instances)
    except RecursionError:
        raise InvalidInput("JSON value nested too deeply") from None


def _decode_rows(instances: Any, signature: Signature, scan: BodyScan,
                 max_instances: int | None) -> dict[str, np.ndarray]:
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("Expecting 'instances' to be a non-empty list/array")
    if max_instances is not None and len(instances) > max_instances:
        raise InvalidInput(
            f"Request has {len(instances)} instances, more than the limit of {max_instances}"
        )
    inputs = signature.inputs
    columns = _split_instances(instances, inputs)
    return {
        alias: rows_to_array(scan, inputs[alias], values) for alias, values in columns.items()
    }


def _split_instances(
    instances: list[Any], inputs: Mapping[str, TensorSpec]
) -> dict[str, list[Any]]:
    """Per-input lists of instance values; objects must all carry exactly the inputs."""
    first = instances[0]
    if not is_object(first):
        if len(inputs) > 1:
            raise InvalidInput(
                "instances is a plain list, but expecting list of objects as multiple "
                f"input tensors required as per tensorinfo_map (inputs: {_names(inputs)})"
            )
        for index, item in enumerate(instances):
            if is_object(item):
                raise InvalidInput(
                    f"Expecting value/list but got object at item {index} of input list"
                )
        return {next(iter(inputs)): instances}
    names = set(inputs)
    columns: dict[str, list[Any]] = {alias: [] for alias in inputs}
    for index, item in enumerate(instances):
        if not is_object(item):
            raise InvalidInput(
                f"Expecting object but got {json_type(item).lower()} at item {index} "
                "of input list"
            )
        if item.keys() != names:
            raise InvalidInput(_key_mismatch(index, item, names))
        for alias, column in columns.items():
            column.append(item[alias])
    return columns


def _key_mismatch(index: int, item: dict[str, Any], names: set[str]) -> str:
    unknown = sorted(set(item) - names)
    missing = sorted(names - set(item))
    parts = []
    if unknown:
        parts.append(f"unknown input(s): {', '.join(unknown)}")
    if missing:
        parts.append(f"missing input(s): {', '.join(missing)}")
    return (
        f"Failed to process element: {index} of 'instances' list: {'; '.join(parts)}. "
        f"JSON object keys must be equal to: {','.join(sorted(names))}"
    )


def _decode_columns(data: Any, signature: Signature, scan: BodyScan,
                    max_instances: int | None) -> dict[str, np.ndarray]:
    inputs = signature.inputs
    if not is_object(data):
        if len(inputs) > 1:
            raise InvalidInput(
                "inputs is a plain value/list, but expecting an object as multiple input "
                f"tensors required as per tensorinfo_map (inputs: {_names(inputs)})"
            )
        values = {next(iter(inputs)): data}
    else:
        missing = [alias for alias in inputs if alias not in data]
        if missing:
            raise InvalidInput(f"Missing named input: {', '.join(missing)} in 'inputs' object.")
        unknown = sorted(set(data) - set(inputs))
        if unknown:
            raise InvalidInput(
                f"Unknown named input: {', '.join(unknown)} in 'inputs' object "
                f"(signature inputs: {_names(inputs)})."
            )
        values = {alias: data[alias] for alias in inputs}
    arrays = {
        alias: value_to_array(scan, inputs[alias], value, where=f"input '{alias}'")
        for alias, value in values.items()
    }
    _check_column_batch(signature, arrays, max_instances)
    return arrays


def _check_column_batch(
    signature: Signature, arrays: Mapping[str, np.ndarray], max_instances: int | None
) -> None:
    """Batched inputs (leading -1 in the signature) must agree on, and respect, dim 0."""
    batched = {
        alias: array.shape[0]
        for alias, array in arrays.items()
        if array.ndim and (signature.inputs[alias].shape or (0,))[0] == -1
    }
    if max_instances is not None:
        for alias, size in batched.items():
            if size > max_instances:
                raise InvalidInput(
                    f"Input '{alias}' has {size} instances, more than the limit "
                    f"of {max_instances}"
                )
    if len(batched) == len(arrays) and len(set(batched.values())) > 1:
        sizes = ", ".join(f"{alias}={size}" for alias, size in sorted(batched.items()))
        raise InvalidInput(f"Inputs have different batch sizes (dimension 0): {sizes}")


def _check_shape(signature: Signature, spec: TensorSpec, array: np.ndarray) -> None:
    expected = spec.shape
    if expected is None:
        return
    if len(expected) == array.ndim and all(
        want < 0 or want == got for want, got in zip(expected, array.shape, strict=True)
    ):
        return
    raise InvalidInput(
        f"Input '{spec.alias}' has shape {shape_text(array.shape)} but signature "
        f"'{signature.name}' expects {shape_text(expected)} (-1 = any size)"
    )



def _names(inputs: Mapping[str, Any]) -> str:
    return ", ".join(sorted(inputs))
