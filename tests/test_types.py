"""``gateway.types``: a ModelRef fills a ModelSpec as TF Serving reads it."""

from __future__ import annotations

from gateway.pb import model_pb2
from gateway.types import ModelRef


def test_model_ref_fills_spec() -> None:
    spec = model_pb2.ModelSpec()
    ModelRef("m", version=3).fill(spec, "sig")
    assert (spec.name, spec.version.value, spec.signature_name) == ("m", 3, "sig")
    spec = model_pb2.ModelSpec()
    ModelRef("m", label="canary").fill(spec)
    assert spec.WhichOneof("version_choice") == "version_label"
    assert spec.version_label == "canary"
    spec = model_pb2.ModelSpec()
    ModelRef("m").fill(spec)
    assert spec.WhichOneof("version_choice") is None
