"""Signatures as the gateway sees them: aliases, dtypes and shapes of inputs and outputs.

Built from a ``GetModelMetadataResponse`` (the ``signature_def`` entry is an ``Any`` of
``type.googleapis.com/tensorflow.serving.SignatureDefMap``, the upstream type name, which
we parse with the project's wire-identical ``SignatureDefMap``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.errors import GatewayError, InvalidInput
from gateway.pb import get_model_metadata_pb2, meta_graph_pb2, types_pb2

__all__ = [
    "CLASSIFY_METHOD",
    "DEFAULT_SIGNATURE",
    "PREDICT_METHOD",
    "REGRESS_METHOD",
    "SIGNATURE_DEF_FIELD",
    "SIGNATURE_DEF_MAP_TYPE_URL",
    "Signature",
    "TensorSpec",
    "is_signature_def_map",
    "select_signature",
    "signatures_from_metadata",
    "signatures_from_signature_defs",
]

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
SIGNATURE_DEF_FIELD = "signature_def"
"""The GetModelMetadata field (the only one TF Serving serves) holding a SignatureDefMap."""
SIGNATURE_DEF_MAP_TYPE_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
"""The ``Any`` type URL of that field, upstream's type name (our protos are wire-identical)."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output: its alias (the JSON key), graph tensor name, dtype and shape.

    ``dtype`` is a ``DataType`` enum number; ``shape`` is ``None`` for unknown rank, and
    uses ``-1`` for unknown dimensions.
    """

    alias: str
    name: str
    dtype: int
    shape: tuple[int, ...] | None

    @property
    def dtype_name(self) -> str:
        """``DT_FLOAT`` style name (as in metadata JSON)."""
        return types_pb2.DataType.Name(self.dtype)


@dataclass(frozen=True, slots=True)
class Signature:
    """A SignatureDef: ``inputs``/``outputs`` keyed by alias, sorted by alias."""

    name: str
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]


def _tensor_spec(alias: str, info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    shape_proto = info.tensor_shape
    shape = None if shape_proto.unknown_rank else tuple(d.size for d in shape_proto.dim)
    return TensorSpec(alias=alias, name=info.name, dtype=info.dtype, shape=shape)


def _signature(name: str, sig: meta_graph_pb2.SignatureDef) -> Signature:
    return Signature(
        name=name,
        method_name=sig.method_name,
        inputs={k: _tensor_spec(k, sig.inputs[k]) for k in sorted(sig.inputs)},
        outputs={k: _tensor_spec(k, sig.outputs[k]) for k in sorted(sig.outputs)},
    )


def signatures_from_signature_defs(
    defs: Mapping[str, meta_graph_pb2.SignatureDef],
) -> dict[str, Signature]:
    return {name: _signature(name, defs[name]) for name in sorted(defs)}


def signatures_from_metadata(
    response: get_model_metadata_pb2.GetModelMetadataResponse,
) -> dict[str, Signature]:
    """Signatures keyed by name from a GetModelMetadata response (any type-URL prefix)."""
    packed = response.metadata.get(SIGNATURE_DEF_FIELD)
    if packed is None:
        raise GatewayError("backend metadata has no signature_def")
    if not is_signature_def_map(packed.type_url):
        raise GatewayError(f"unexpected signature_def type {packed.type_url!r}")
    sig_map = get_model_metadata_pb2.SignatureDefMap.FromString(packed.value)
    return signatures_from_signature_defs(sig_map.signature_def)


def is_signature_def_map(type_url: str) -> bool:
    """Whether an ``Any`` holds a SignatureDefMap (any type-URL prefix, as protobuf allows)."""
    return type_url.rsplit("/", 1)[-1] == SIGNATURE_DEF_MAP_TYPE_URL.rsplit("/", 1)[-1]


def select_signature(signatures: Mapping[str, Signature], name: str | None) -> Signature:
    """The signature called ``name`` (default ``serving_default``), or a 400 as TF Serving."""
    key = name or DEFAULT_SIGNATURE
    try:
        return signatures[key]
    except KeyError:
        raise InvalidInput(
            f"Serving signature name: \"{key}\" not found in signature def"
        ) from None
