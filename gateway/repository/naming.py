"""Which names a model's serving signature gets: its inputs' and outputs' own names.

Keras models: input layer names in, output layer names out (a Sequential model: its first
and last layers). ``tf.Module``s, ``tf.function``s and concrete functions: the names of an
explicit ``inputs={name: tf.TensorSpec}`` and of the dict they return (or ``outputs=``).
The result is a :class:`Plan` that ``gateway.repository.export`` turns into signatures.
TensorFlow is imported only when called.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidInput

__all__ = ["ExportError", "Plan", "check_names", "model_plan", "name_outputs"]

_TENSOR_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-]*")


class ExportError(InvalidInput, ValueError):
    """The model cannot be exported as asked (unbuilt, unnamed inputs, bad options)."""


@dataclass
class Plan:
    """What the serving function needs: named input specs, a call, output naming."""

    inputs: dict[str, Any]  # name -> tf.TensorSpec
    call: Callable[[dict[str, Any]], Any]
    output_names: list[str] | None
    track: Any


def check_names(kind: str, names: Sequence[str]) -> list[str]:
    names = list(names)
    for name in names:
        if not isinstance(name, str) or not _TENSOR_NAME.fullmatch(name):
            raise ExportError(
                f"cannot name {kind} {name!r}: use letters, digits, '_', '-' or '.'"
            )
    if len(set(names)) != len(names):
        raise ExportError(f"{kind} names are not unique: {names}")
    return names


def _is_keras(model: Any) -> bool:
    try:
        import keras
    except ImportError:  # pragma: no cover - keras ships with tensorflow
        return False
    return isinstance(model, keras.Model)


def _keras_input_structure(model: Any) -> tuple[list[str], list[Any], str]:
    """Input names, KerasTensors and the structure (``dict``/``list``/``single``) to call."""
    import keras

    if isinstance(model, keras.Sequential):
        if not model.layers:
            raise ExportError("the Sequential model has no layers")
        return [model.layers[0].name], list(model.inputs), "single"
    structure = model.input
    if isinstance(structure, dict):
        return list(structure), list(structure.values()), "dict"
    if isinstance(structure, list | tuple):
        return [t.name for t in structure], list(structure), "list"
    return [structure.name], [structure], "single"


def _keras_output_names(model: Any) -> list[str] | None:
    import keras

    if isinstance(model, keras.Sequential):
        return [model.layers[-1].name]
    structure = model.output
    if isinstance(structure, dict):
        return None  # the model returns a dict: its keys are the names
    return list(model.output_names)


def _keras_plan(model: Any, inputs: Any) -> Plan:
    import tensorflow as tf

    if not model.built:
        raise ExportError(
            f"Keras model {model.name!r} is not built: give it a keras.Input or call it on "
            "data once before exporting"
        )
    if isinstance(inputs, Mapping):
        return _callable_plan(model, inputs, track=model)
    try:
        names, tensors, structure = _keras_input_structure(model)
    except AttributeError:
        raise ExportError(
            f"Keras model {model.name!r} has no symbolic inputs to name (a subclassed model?): "
            "pass inputs={name: tf.TensorSpec(...)}"
        ) from None
    if inputs is not None:
        if isinstance(inputs, str) or len(list(inputs)) != len(names):
            raise ExportError(f"inputs: expected {len(names)} names, got {inputs!r}")
        names = list(inputs)
    names = check_names("input", names)
    specs = {
        n: tf.TensorSpec(tuple(t.shape), t.dtype, name=n)
        for n, t in zip(names, tensors, strict=True)
    }

    def call(args: dict[str, Any]) -> Any:
        values = [args[n] for n in names]
        if structure == "dict":
            return model(dict(zip(model.input, values, strict=True)), training=False)
        if structure == "list":
            return model(values, training=False)
        return model(values[0], training=False)

    return Plan(specs, call, _keras_output_names(model), model)


def _python_function(fn: Any) -> Any:
    return getattr(fn, "python_function", fn)


def _callable_plan(model: Any, inputs: Mapping[str, Any] | None, *, track: Any) -> Plan:
    import tensorflow as tf

    fn = model
    if isinstance(model, tf.types.experimental.ConcreteFunction):
        if inputs is None:
            inputs = _concrete_inputs(model)
    elif isinstance(model, tf.Module) and not callable(model):
        raise ExportError("the tf.Module has no __call__: export one of its tf.functions")
    if not inputs:
        raise ExportError(
            "cannot name the inputs: pass inputs={name: tf.TensorSpec(shape, dtype)}"
        )
    names = check_names("input", list(inputs))
    specs = {}
    for name in names:
        spec = inputs[name]
        if not isinstance(spec, tf.TensorSpec):
            raise ExportError(f"inputs[{name!r}] must be a tf.TensorSpec, got {spec!r}")
        specs[name] = tf.TensorSpec(spec.shape, spec.dtype, name=name)
    keras_model = _is_keras(model)
    by_keyword = not keras_model and _accepts_keywords(fn, names)

    def call(args: dict[str, Any]) -> Any:
        if keras_model:
            return fn(args[names[0]] if len(names) == 1 else args, training=False)
        if by_keyword:
            return fn(**args)
        return fn(*[args[n] for n in names])

    return Plan(specs, call, None, track)


def _concrete_inputs(fn: Any) -> dict[str, Any]:
    import tensorflow as tf

    flat = tf.nest.flatten(fn.structured_input_signature)
    if not all(isinstance(s, tf.TensorSpec) and s.name for s in flat):
        raise ExportError("the concrete function's inputs have no names: pass inputs=")
    return {s.name: s for s in flat}


def _accepts_keywords(fn: Any, names: Sequence[str]) -> bool:
    try:
        params = inspect.signature(_python_function(fn)).parameters
    except (TypeError, ValueError):
        return False
    return all(n in params for n in names)


def name_outputs(result: Any, plan: Plan, outputs: Any) -> dict[str, Any]:
    """The function's result as a dict keyed by output names (the signature's outputs)."""
    import tensorflow as tf

    if isinstance(result, Mapping):
        named = dict(result)
        if isinstance(outputs, Mapping):
            named = {outputs.get(k, k): v for k, v in named.items()}
    else:
        tensors = list(result) if isinstance(result, list | tuple) else [result]
        names = outputs if outputs is not None else plan.output_names
        if isinstance(names, str):
            names = [names]
        if names is None:
            raise ExportError(
                "the function returns unnamed tensors: name them with outputs='prediction' "
                "(or a list of names, or return a dict)"
            )
        if len(list(names)) != len(tensors):
            raise ExportError(f"outputs: {len(tensors)} tensors but names {list(names)}")
        named = dict(zip(names, tensors, strict=True))
    check_names("output", list(named))
    return {k: tf.convert_to_tensor(v) for k, v in named.items()}


# --- classify / regress signatures -------------------------------------------------------


def model_plan(model: Any, inputs: Any) -> Plan:
    import tensorflow as tf

    if _is_keras(model):
        return _keras_plan(model, inputs)
    if isinstance(inputs, Sequence) and not isinstance(inputs, str):
        raise ExportError("inputs for a tf.Module/function must be {name: tf.TensorSpec}")
    experimental = tf.types.experimental
    if isinstance(model, experimental.ConcreteFunction | experimental.PolymorphicFunction):
        return _callable_plan(model, inputs, track=None)
    if isinstance(model, tf.Module):
        return _callable_plan(model, inputs, track=model)
    raise ExportError(
        f"cannot export {type(model).__name__}: expected a Keras model, tf.Module, "
        "tf.function or concrete function"
    )
