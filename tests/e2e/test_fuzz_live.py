"""Property fuzzing through the live path: HTTP → ``tfgw gateway`` → gRPC →
``tfgw modelserver`` → TensorFlow identity → back, for every dtype.

One SavedModel ``identity`` has a signature per dtype (``x`` of unknown rank → ``y``,
``y_bytes`` for strings so bytes come back as b64). Valid random tensors must come back
unchanged; near-valid ones (``test_fuzz_codec.near_valid``) must get a 400, never a 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fuzz import DTYPES, arrays, dumps, from_output_json, json_value, near_valid, same
from support.processes import GatewayProcess, ModelServerProcess, http_json

LIVE = settings(max_examples=15, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def _out_alias(name: str) -> str:
    return "y_bytes" if name == "string" else "y"


def build_identity_model(path: Path) -> Path:
    """``identity`` with one ``x`` → ``y`` signature per dtype name in ``DTYPES``."""
    import tensorflow as tf

    module = tf.Module()
    signatures = {}
    for name in DTYPES:
        dtype = tf.string if name == "string" else tf.as_dtype(name)

        @tf.function(input_signature=[tf.TensorSpec(None, dtype, name="x")])
        def identity(x: Any, alias: str = _out_alias(name)) -> dict[str, Any]:
            return {alias: tf.identity(x)}

        setattr(module, f"f_{name}", identity)
        signatures[name] = identity
    signatures["serving_default"] = signatures["float32"]
    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


@pytest.fixture(scope="module")
def identity_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    base = tmp_path_factory.mktemp("identity") / "identity"
    build_identity_model(base / "1")
    server = ModelServerProcess(["--model-name", "identity", "--model-base-path", str(base)])
    with server, GatewayProcess(server.target, ["identity"]) as gateway:
        yield gateway


def _predict(gateway: GatewayProcess, doc: dict[str, Any]) -> Any:
    return http_json(gateway.url + "/v1/models/identity:predict", dumps(doc), timeout=60)


@pytest.mark.parametrize("name", sorted(DTYPES))
@LIVE
@given(data=st.data())
def test_live_round_trip(identity_gateway: GatewayProcess, name: str,
                         data: st.DataObject) -> None:
    array = data.draw(arrays(name))
    value = json_value(array, name, b64_all=data.draw(st.booleans()))
    row = data.draw(st.booleans())
    doc = {"signature_name": name, **({"instances": value} if row else {"inputs": value})}
    answer = _predict(identity_gateway, doc)
    assert answer.status == 200, answer.body[:500]
    if row:
        rows = answer.json()["predictions"]
        back = [from_output_json(r, name, array.shape[1:]) for r in rows]
        got = _stack(back, name, array.shape)
    else:
        got = from_output_json(answer.json()["outputs"], name, array.shape)
    assert same(got, array, name)


def _stack(rows: list[np.ndarray], name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name != "string":
        return np.stack(rows)
    flat = [v for row in rows for v in row.ravel()]
    return np.array([*flat, b""], dtype=object)[:-1].reshape(shape)


@pytest.mark.parametrize("name", sorted(DTYPES))
@LIVE
@given(data=st.data())
def test_live_near_valid_gets_400(identity_gateway: GatewayProcess, name: str,
                                  data: st.DataObject) -> None:
    array = data.draw(arrays(name).filter(lambda a: a.size > 1))  # so "deeper" is ragged
    doc = near_valid(name, json_value(array, name), data)
    if data.draw(st.booleans()) and "not_an_input" not in doc["inputs"]:
        doc = {"instances": doc["inputs"]["x"]}
    answer = _predict(identity_gateway, {"signature_name": name, **doc})
    assert answer.status == 400, (doc, answer.body[:300])
    assert answer.json()["error"]
