"""``export_savedmodel``: write a SavedModel whose signature keys are the model's own names.

Keras 3's ``model.export()`` names a serving signature's tensors ``inputs``/``output_0``;
tfdeploy clients send ``{"image": ...}`` and expect ``{"prediction": ...}``. Here the
serving signature takes one argument per input and returns a dict, named as
``gateway.repository.naming`` decides (layer names for Keras models, explicit
``inputs={name: tf.TensorSpec}`` for ``tf.Module``s and functions). Optional
``classify``/``regress`` signatures take serialized ``tf.Example``s, for TF Serving's
``:classify``/``:regress``. TensorFlow is imported only when called.

The export is written to a hidden sibling directory and renamed into place, so a reader
never sees a half-written export.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway.repository.layout import SAVED_MODEL_FILE
from gateway.repository.naming import ExportError, Plan, check_names, model_plan, name_outputs
from gateway.signatures import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD

__all__ = ["ExportError", "export_savedmodel", "feature_model"]

CLASSIFY_SIGNATURE = "classification"
REGRESS_SIGNATURE = "regression"


def _feature_spec(plan: Plan) -> dict[str, Any]:
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


def _parse_examples(plan: Plan, serialized: Any) -> dict[str, Any]:
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


def _classify_fn(plan: Plan, outputs: Any, labels: Any, score_output: str | None) -> Any:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")], autograph=False)
    def classify(serialized: Any) -> dict[str, Any]:
        named = name_outputs(plan.call(_parse_examples(plan, serialized)), plan, outputs)
        scores = tf.cast(_pick(named, score_output, "classify"), tf.float32)
        if scores.shape.rank != 2 or scores.shape[1] is None:
            raise ExportError(f"classify: scores must be [batch, classes], got {scores.shape}")
        names = [str(i) for i in range(scores.shape[1])] if labels is True else list(labels)
        if len(names) != scores.shape[1]:
            raise ExportError(f"classify: {len(names)} labels for {scores.shape[1]} classes")
        classes = tf.tile(tf.constant([names]), [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}

    return classify


def _regress_fn(plan: Plan, outputs: Any, score_output: str | None) -> Any:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")], autograph=False)
    def regress(serialized: Any) -> dict[str, Any]:
        named = name_outputs(plan.call(_parse_examples(plan, serialized)), plan, outputs)
        value = tf.cast(_pick(named, score_output, "regress"), tf.float32)
        if value.shape.rank not in (1, 2) or (value.shape.rank == 2 and value.shape[1] != 1):
            raise ExportError(f"regress: output must be [batch] or [batch, 1], got {value.shape}")
        return {"outputs": tf.reshape(value, [-1])}

    return regress


# --- writing -----------------------------------------------------------------------------


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


def _signatures(plan: Plan, signature_name: str, outputs: Any, classify: Any, regress: Any,
                score_output: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    import tensorflow as tf

    names = list(plan.inputs)

    @tf.function(input_signature=list(plan.inputs.values()), autograph=False)
    def serve(*args: Any) -> dict[str, Any]:
        return name_outputs(plan.call(dict(zip(names, args, strict=True))), plan, outputs)

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
    plan = model_plan(model, inputs)
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

    names = check_names("feature", features)
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
