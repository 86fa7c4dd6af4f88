"""Predict / Classify / Regress / MultiInference on one loaded version, at the proto level.

Transport-neutral and synchronous: the gRPC servicers run these on executor threads, and
warmup replays ``PredictionLog`` records through the same functions. Errors are
``GatewayError``s with TF Serving's codes and comparable messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gateway.errors import GatewayError, InvalidInput
from gateway.modelserver.loader import LoadedVersion
from gateway.modelserver.tensors import shape_of, tensor_from_array, tensor_to_array
from gateway.signatures import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD
from gateway.tensors import dtype_name

__all__ = [
    "classify",
    "multi_inference",
    "predict",
    "regress",
    "replay_warmup",
]



def _signature(version: LoadedVersion, name: str) -> Any:
    if name not in version.functions:
        raise InvalidInput(f'Serving signature name: "{name}" not found in signature def')
    return version.signature_defs[name]


def _fill_spec(target: Any, model_name: str, model_version: int, signature: str) -> None:
    target.name = model_name
    target.version.value = model_version
    target.signature_name = signature


def _set_text(names: Any) -> str:
    return "{" + ",".join(sorted(names)) + "}"


def _check_input_names(sent: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    if set(sent) == set(expected):
        return
    extra, missing = set(sent) - set(expected), set(expected) - set(sent)
    raise InvalidInput(
        f"input size does not match signature: {len(sent)}!={len(expected)} "
        f"len({_set_text(sent)}) != len({_set_text(expected)}). "
        f"Sent extra: {_set_text(extra)}. Missing but required: {_set_text(missing)}."
    )


def _check_tensor(alias: str, info: Any, proto: Any, array: np.ndarray) -> None:
    if proto.dtype != info.dtype:
        raise InvalidInput(
            f'Input "{alias}" has dtype {dtype_name(proto.dtype)} but the signature expects '
            f"{dtype_name(info.dtype)}"
        )
    expected = shape_of(info.tensor_shape)
    if expected is None:
        return
    actual = list(array.shape)
    compatible = len(actual) == len(expected) and all(
        e < 0 or e == a for e, a in zip(expected, actual, strict=True)
    )
    if not compatible:
        raise InvalidInput(
            f'Input "{alias}" has shape {actual} which is not compatible with the '
            f"signature shape {expected}"
        )


def decode_inputs(signature: Any, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validate request tensors against a SignatureDef and decode them to numpy."""
    _check_input_names(inputs, signature.inputs)
    arrays = {}
    for alias, proto in inputs.items():
        array = tensor_to_array(alias, proto)
        _check_tensor(alias, signature.inputs[alias], proto, array)
        arrays[alias] = array
    return arrays


def predict(version: LoadedVersion, request: Any, model_version: int) -> Any:
    """Run a PredictRequest on ``version``; the response names the answering version."""
    from tensorflow_serving.apis import predict_pb2

    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = _signature(version, name)
    wanted = list(request.output_filter)
    for alias in wanted:
        if alias not in signature.outputs:
            raise InvalidInput(
                f"output tensor alias not found in signature: {alias} Outputs expected to "
                f"be in the set {_set_text(signature.outputs)}."
            )
    arrays = decode_inputs(signature, request.inputs)
    outputs = version.run(name, arrays)
    response = predict_pb2.PredictResponse()
    _fill_spec(response.model_spec, request.model_spec.name, model_version, name)
    for alias in wanted or sorted(outputs):
        response.outputs[alias].CopyFrom(tensor_from_array(outputs[alias]))
    return response


def serialized_examples(model_input: Any) -> np.ndarray:
    """Serialized tf.Examples of an ``Input``; context features merged as TF Serving does.

    A serialized context followed by a serialized example parses as their merge, with the
    example's features taking precedence (protobuf map merge semantics).
    """
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        examples = [e.SerializeToString() for e in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        listed = model_input.example_list_with_context
        context = listed.context.SerializeToString()
        examples = [context + e.SerializeToString() for e in listed.examples]
    else:
        examples = []
    if not examples:
        raise InvalidInput("Input is empty.")
    array = np.empty(len(examples), dtype=object)
    array[:] = examples
    return array


def _examples_signature(version: LoadedVersion, name: str, method: str, kind: str) -> Any:
    signature = _signature(version, name)
    if signature.method_name != method:
        raise InvalidInput(
            f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}"
        )
    if list(signature.inputs) != ["inputs"]:
        raise InvalidInput(f'Expected one input Tensor named "inputs" in signature "{name}".')
    return signature


def _batch_output(outputs: Mapping[str, np.ndarray], alias: str, batch: int) -> np.ndarray:
    array = outputs[alias]
    if array.ndim == 0 or array.shape[0] != batch:
        raise InvalidInput(
            f'Output "{alias}" has shape {list(array.shape)}; expected batch size {batch}'
        )
    return array


def _classification_result(outputs: Mapping[str, np.ndarray], batch: int, result: Any) -> None:
    if "classes" not in outputs and "scores" not in outputs:
        raise InvalidInput("Classification signature has neither 'classes' nor 'scores' output")
    classes = _batch_output(outputs, "classes", batch) if "classes" in outputs else None
    scores = _batch_output(outputs, "scores", batch) if "scores" in outputs else None
    for row in range(batch):
        labels = classes[row].reshape(-1) if classes is not None else None
        values = scores[row].reshape(-1) if scores is not None else None
        count = len(labels) if labels is not None else len(values)
        entry = result.classifications.add()
        for column in range(count):
            item = entry.classes.add()
            if labels is not None:
                label = labels[column]
                item.label = label.decode(errors="replace") if isinstance(label, bytes) else label
            if values is not None:
                item.score = float(values[column])


def _regression_result(outputs: Mapping[str, np.ndarray], batch: int, result: Any) -> None:
    if "outputs" not in outputs:
        raise InvalidInput("Regression signature has no 'outputs' output")
    values = _batch_output(outputs, "outputs", batch).reshape(batch, -1)
    if values.shape[1] != 1:
        raise InvalidInput(f"Expected output Tensor shape to be [{batch}] or [{batch}, 1]")
    for value in values[:, 0]:
        result.regressions.add().value = float(value)


def _run_examples(version: LoadedVersion, name: str, examples: np.ndarray) -> dict[str, Any]:
    return version.run(name, {"inputs": examples})


_EXAMPLE_TASKS = {
    CLASSIFY_METHOD: ("classification", _classification_result),
    REGRESS_METHOD: ("regression", _regression_result),
}
"""method_name -> (its kind in messages and result fields, the result filler)."""


def _answer_examples(version: LoadedVersion, request: Any, model_version: int, method: str,
                     response: Any) -> Any:
    """Classify or Regress: run the signature on the examples, fill ``response``."""
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    kind, fill = _EXAMPLE_TASKS[method]
    _examples_signature(version, name, method, kind)
    examples = serialized_examples(request.input)
    _fill_spec(response.model_spec, request.model_spec.name, model_version, name)
    fill(_run_examples(version, name, examples), len(examples), response.result)
    return response


def classify(version: LoadedVersion, request: Any, model_version: int) -> Any:
    from tensorflow_serving.apis import classification_pb2

    return _answer_examples(version, request, model_version, CLASSIFY_METHOD,
                            classification_pb2.ClassificationResponse())


def regress(version: LoadedVersion, request: Any, model_version: int) -> Any:
    from tensorflow_serving.apis import regression_pb2

    return _answer_examples(version, request, model_version, REGRESS_METHOD,
                            regression_pb2.RegressionResponse())


def _check_tasks(request: Any) -> None:
    if not request.tasks:
        raise InvalidInput("MultiInferenceRequest must specify at least one task")
    names = {task.model_spec.name for task in request.tasks}
    if len(names) != 1:
        raise InvalidInput(
            "All ModelSpecs in a MultiInferenceRequest must access the same model name."
        )
    seen: set[str] = set()
    for task in request.tasks:
        signature = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature in seen:
            raise InvalidInput(f"Duplicate evaluation of signature: {signature}")
        seen.add(signature)
        if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
            raise InvalidInput(f"Unsupported signature method_name: {task.method_name}")


def multi_inference(version: LoadedVersion, request: Any, model_version: int) -> Any:
    """Several classify/regress signatures over the same examples, one result per task."""
    from tensorflow_serving.apis import inference_pb2

    _check_tasks(request)
    for task in request.tasks:
        name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        _examples_signature(version, name, task.method_name, _EXAMPLE_TASKS[task.method_name][0])
    examples = serialized_examples(request.input)
    response = inference_pb2.MultiInferenceResponse()
    for task in request.tasks:
        name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        kind, fill = _EXAMPLE_TASKS[task.method_name]
        result = response.results.add()
        _fill_spec(result.model_spec, task.model_spec.name, model_version, name)
        fill(_run_examples(version, name, examples), len(examples),
             getattr(result, f"{kind}_result"))
    return response


def replay_warmup(version: LoadedVersion, records: list[Any], model_version: int) -> int:
    """Run each warmup PredictionLog once (as TF Serving); any failure fails the load."""
    handlers = {
        "predict_log": predict,
        "classify_log": classify,
        "regress_log": regress,
        "multi_inference_log": multi_inference,
    }
    for index, record in enumerate(records):
        kind = record.WhichOneof("log_type")
        if kind not in handlers:
            raise InvalidInput(f"Unsupported log_type for warmup: {kind}")
        try:
            handlers[kind](version, getattr(record, kind).request, model_version)
        except GatewayError as exc:
            raise type(exc)(f"Warmup request {index} failed: {exc.message}", exc.code) from None
    return len(records)
