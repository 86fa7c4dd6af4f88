"""``export_savedmodel``: write a SavedModel whose signature keys are the model's own names.

Keras 3's ``model.export()`` names a serving signature's tensors ``inputs``/``output_0``;
tfdeploy clients send ``{"image": ...}`` and expect ``{"prediction": ...}``. Here the
serving signature takes one argument per input, named after the input layer (a
Sequential model: its first layer), and returns a dict keyed by output layer names (a
Sequential model: its last layer). ``tf.Module``s, ``tf.function``s and concrete
functions are exported the same way from an explicit ``inputs={name: tf.TensorSpec}``.
Optional ``classify``/``regress`` signatures take serialized ``tf.Example``s, for TF
Serving's ``:classify``/``:regress``. TensorFlow is imported only when called.

The export is written to a hidden sibling directory and renamed into place, so a reader
never sees a half-written export.
"""

from __future__ import annotations

import inspect
import re
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import InvalidInput
from gateway.repository.layout import SAVED_MODEL_FILE
from gateway.signatures import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD

__all__ = ["ExportError", "export_savedmodel", "feature_model"]

CLASSIFY_SIGNATURE = "classification"
REGRESS_SIGNATURE = "regression"
_TENSOR_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-]*")


class ExportError(InvalidInput, ValueError):
    """The model cannot be exported as asked (unbuilt, unnamed inputs, bad options)."""


@dataclass
class _Plan:
    """What the serving function needs: named input specs, a call, output naming."""

    inputs: dict[str, Any]  # name -> tf.TensorSpec
    call: Callable[[dict[str, Any]], Any]
    output_names: list[str] | None
    track: Any


# --- naming the inputs and outputs -------------------------------------------------------


def _check_names(kind: str, names: Sequence[str]) -> list[str]:
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


def _keras_plan(model: Any, inputs: Any) -> _Plan:
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
    names = _check_names("input", names)
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

    return _Plan(specs, call, _keras_output_names(model), model)


def _python_function(fn: Any) -> Any:
    return getattr(fn, "python_function", fn)


def _callable_plan(model: Any, inputs: Mapping[str, Any] | None, *, track: Any) -> _Plan:
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
    names = _check_names("input", list(inputs))
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

    return _Plan(specs, call, None, track)


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


def _name_outputs(result: Any, plan: _Plan, outputs: Any) -> dict[str, Any]:
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
    _check_names("output", list(named))
    return {k: tf.convert_to_tensor(v) for k, v in named.items()}


# --- classify / regress signatures -------------------------------------------------------


def _feature_spec(plan: _Plan) -> dict[str, Any]:
    import tensorflow as tf

    spec = {}
    for name, tensor_spec in plan.inputs.items():
        dims = tensor_spec.shape.as_list()[1:]
        if any(d is None for d in dims):
            raise ExportError(f"input {name!r} has unknown dimensions: no tf.Example parsing")
        dtype = tensor_spec.dtype
        wire = tf.float32 if dtype.is_floating else tf.string if dtype == tf.string else tf.int64
        spec[name] = tf.io.FixedLenFeature(dims, wire)
    return spec


def _parse_examples(plan: _Plan, serialized: Any) -> dict[str, Any]:
    import tensorflow as tf

    features = tf.io.parse_example(serialized, _feature_spec(plan))
    return {n: tf.cast(features[n], s.dtype) for n, s in plan.inputs.items()}


def _pick(named: dict[str, Any], output: str | None, what: str) -> Any:
    if output is None:
        if len(named) != 1:
            raise ExportError(f"{what}: the model has outputs {list(named)}; pick score_output=")
        return next(iter(named.values()))
    if output not in named:
        raise ExportError(f"{what}: no output {output!r} (outputs: {list(named)})")
    return named[output]


def _classify_fn(plan: _Plan, outputs: Any, labels: Any, score_output: str | None) -> Any:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")], autograph=False)
    def classify(serialized: Any) -> dict[str, Any]:
        named = _name_outputs(plan.call(_parse_examples(plan, serialized)), plan, outputs)
        scores = tf.cast(_pick(named, score_output, "classify"), tf.float32)
        if scores.shape.rank != 2 or scores.shape[1] is None:
            raise ExportError(f"classify: scores must be [batch, classes], got {scores.shape}")
        names = [str(i) for i in range(scores.shape[1])] if labels is True else list(labels)
        if len(names) != scores.shape[1]:
            raise ExportError(f"classify: {len(names)} labels for {scores.shape[1]} classes")
        classes = tf.tile(tf.constant([names]), [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}

    return classify


def _regress_fn(plan: _Plan, outputs: Any, score_output: str | None) -> Any:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")], autograph=False)
    def regress(serialized: Any) -> dict[str, Any]:
        named = _name_outputs(plan.call(_parse_examples(plan, serialized)), plan, outputs)
        value = tf.cast(_pick(named, score_output, "regress"), tf.float32)
        if value.shape.rank not in (1, 2) or (value.shape.rank == 2 and value.shape[1] != 1):
            raise ExportError(f"regress: output must be [batch] or [batch, 1], got {value.shape}")
        return {"outputs": tf.reshape(value, [-1])}

    return regress


# --- writing -----------------------------------------------------------------------------


def _plan(model: Any, inputs: Any) -> _Plan:
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


def _captured_variables(functions: Any) -> list[Any]:
    """Variables the signatures read, tracked so a bare tf.function's state is saved."""
    seen: dict[int, Any] = {}
    for fn in functions:
        for var in fn.get_concrete_function().variables:
            seen.setdefault(id(var), var)
    return list(seen.values())


def _set_method_names(directory: Path, methods: Mapping[str, str]) -> None:
    """TF2 saves every signature as ``predict``; TF Serving's classify/regress check it."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb_path = directory / SAVED_MODEL_FILE
    saved = saved_model_pb2.SavedModel.FromString(pb_path.read_bytes())
    for meta_graph in saved.meta_graphs:
        for name, method in methods.items():
            meta_graph.signature_def[name].method_name = method
    pb_path.write_bytes(saved.SerializeToString())


def _signatures(plan: _Plan, signature_name: str, outputs: Any, classify: Any, regress: Any,
                score_output: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    import tensorflow as tf

    names = list(plan.inputs)

    @tf.function(input_signature=list(plan.inputs.values()), autograph=False)
    def serve(*args: Any) -> dict[str, Any]:
        return _name_outputs(plan.call(dict(zip(names, args, strict=True))), plan, outputs)

    signatures: dict[str, Any] = {signature_name: serve}
    methods: dict[str, str] = {}
    if classify:
        signatures[CLASSIFY_SIGNATURE] = _classify_fn(plan, outputs, classify, score_output)
        methods[CLASSIFY_SIGNATURE] = CLASSIFY_METHOD
    if regress:
        signatures[REGRESS_SIGNATURE] = _regress_fn(plan, outputs, score_output)
        methods[REGRESS_SIGNATURE] = REGRESS_METHOD
    return signatures, methods


def export_savedmodel(
    model: Any,
    path: str | Path,
    *,
    signature_name: str = DEFAULT_SIGNATURE,
    inputs: Mapping[str, Any] | Sequence[str] | None = None,
    outputs: str | Sequence[str] | Mapping[str, str] | None = None,
    classify: bool | Sequence[str] | None = None,
    regress: bool | None = None,
    score_output: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Export ``model`` as a SavedModel at ``path`` and return that path.

    - Keras models: input keys are the input layer names (Sequential: the first layer's),
      output keys the output layer names (Sequential: the last layer's); ``inputs`` (list)
      and ``outputs`` (str/list) rename them in order.
    - ``tf.Module``/``tf.function``: ``inputs={name: tf.TensorSpec}`` is required (a
      concrete function's named specs are used when omitted); a dict result keeps its
      keys (``outputs={old: new}`` renames), a single tensor needs ``outputs="name"``.
    - ``classify=True`` (labels ``"0".."n-1"``) or a list of labels adds a
      ``classification`` signature, ``regress=True`` a ``regression`` one; both take a
      ``[batch]`` string tensor ``inputs`` of serialized ``tf.Example`` whose features are
      the input names; ``score_output`` picks the output when there are several.
    """
    import tensorflow as tf

    target = Path(path)
    if target.exists() and not overwrite:
        raise ExportError(f"{target} already exists (pass overwrite=True to replace it)")
    plan = _plan(model, inputs)
    signatures, methods = _signatures(plan, signature_name, outputs, classify, regress,
                                      score_output)
    root = tf.Module()
    if plan.track is not None:
        root.model = plan.track
    root.captured = _captured_variables(signatures.values())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
    try:
        tf.saved_model.save(root, str(staging), signatures=signatures)
        if methods:
            _set_method_names(staging, methods)
        _replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _replace(staging: Path, target: Path) -> None:
    if not target.exists():
        staging.rename(target)
        return
    trash = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
    target.rename(trash)
    staging.rename(target)
    shutil.rmtree(trash, ignore_errors=True)


def feature_model(
    features: Sequence[str],
    output: str,
    *,
    hidden_units: Sequence[int] = (16,),
    data: Mapping[str, Any] | None = None,
) -> Any:
    """A Keras regressor with one ``(1,)`` float input per named feature (mtcars style).

    ``feature_model(["disp", "cyl"], "mpg")`` exported with :func:`export_savedmodel`
    accepts ``{"instances": [{"disp": [160], "cyl": [4]}]}``. ``data`` (feature name ->
    values) adapts a normalisation layer per feature.
    """
    import keras
    import numpy as np

    names = _check_names("feature", features)
    inputs = {n: keras.Input(shape=(1,), name=n, dtype="float32") for n in names}
    columns = []
    for name, tensor in inputs.items():
        norm = keras.layers.Normalization(name=f"{name}_norm")
        if data is not None:
            norm.adapt(np.asarray(data[name], dtype="float32").reshape(-1, 1))
        else:
            norm.build((None, 1))
        columns.append(norm(tensor))
    x = keras.layers.Concatenate()(columns) if len(columns) > 1 else columns[0]
    for units in hidden_units:
        x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name=output)(x))
