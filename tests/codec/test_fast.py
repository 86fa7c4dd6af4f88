"""The simdjson fast path (``gateway.codec_fast``) builds exactly what the strict path does.

Every case is decoded twice — through ``read_predict_body`` as served, and with the fast
path switched off — and the two outcomes must match: the same arrays bit for bit (dtype,
shape, bytes), or the same ``InvalidInput`` message. Named cases pin down when the fast
path must step aside (ragged lists, lists hidden inside innermost lists, non-numbers,
duplicate keys, NaN literals, ...); hypothesis then mixes dtypes, shapes, formats and
corruptions.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway import codec
from gateway.codec import fast as codec_fast
from gateway.errors import InvalidInput
from gateway.pb import types_pb2
from gateway.signatures import Signature, TensorSpec

DT = types_pb2.DataType
NUMERIC = ["DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16", "DT_INT8", "DT_INT16",
           "DT_INT32", "DT_INT64", "DT_UINT8", "DT_UINT16", "DT_UINT32", "DT_UINT64"]


def sig(**inputs: tuple[str, tuple[int, ...] | None]) -> Signature:
    specs = {alias: TensorSpec(alias, f"{alias}:0", DT.Value(dtype), shape)
             for alias, (dtype, shape) in inputs.items()}
    return Signature("serving_default", "tensorflow/serving/predict", specs, {})


def strict(raw: bytes, signature: Signature, monkeypatch: pytest.MonkeyPatch,
           max_instances: int | None = None) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr(codec_fast, "parse", lambda _raw: None)
        return outcome(raw, signature, max_instances)


def outcome(raw: bytes, signature: Signature, max_instances: int | None = None) -> Any:
    """Arrays as (dtype, shape, bytes) per alias, or the error message."""
    try:
        body = codec.read_predict_body(raw)
        arrays = codec.decode_predict_inputs(body, signature, max_instances=max_instances)
    except InvalidInput as exc:
        return ("error", exc.message)
    return {alias: (a.dtype.str, a.shape, a.tobytes()) for alias, a in arrays.items()}


def took_fast(raw: bytes, signature: Signature, max_instances: int | None = None) -> bool:
    body = codec_fast.parse(raw)
    return body is not None and codec_fast.decode(body, signature, max_instances) is not None


def assert_same(raw: bytes, signature: Signature, monkeypatch: pytest.MonkeyPatch,
                max_instances: int | None = None) -> Any:
    served = outcome(raw, signature, max_instances)
    assert served == strict(raw, signature, monkeypatch, max_instances)
    return served


MNIST = sig(image=("DT_FLOAT", (-1, 784)))


def mnist_body(batch: int) -> bytes:
    rows = np.round(np.random.default_rng(0).random((batch, 784)), 4).tolist()
    return json.dumps({"instances": rows}).encode()


@pytest.mark.parametrize("batch", [1, 32, 256])
def test_mnist_rows_take_the_fast_path(batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = mnist_body(batch)
    assert took_fast(raw, MNIST)
    served = assert_same(raw, MNIST, monkeypatch)
    assert served["image"][:2] == ("<f4", (batch, 784))


TAKEN = [
    # (signature, body) the fast path must accept
    (sig(x=("DT_FLOAT", (-1, 4))), b'{"instances": [[1, 2.5, -3e2, 0.1], [5, 6, 7, 8]]}'),
    (sig(x=("DT_DOUBLE", None)), b'{"instances": [1, 2, 3]}'),
    (sig(x=("DT_INT64", (-1, 2, 4))),
     b'{"instances": [[[1,2,3,4],[5,6,7,8]], [[9,10,11,12],[-1,-2,-3,-4]]]}'),
    (sig(x=("DT_UINT64", None)), b'{"instances": [[18446744073709551615, 0, 1, 2]]}'),
    (sig(x=("DT_INT8", None)), b'{"instances": [[-128, 127, 0, 1]]}'),
    (sig(x=("DT_HALF", None)), b'{"inputs": [[1.5, 2, 3, 65504]]}'),
    (sig(a=("DT_FLOAT", (-1, 4)), b=("DT_INT32", (-1, 2))),
     b'{"instances": [{"a": [1,2,3,4], "b": [1,2]}, {"b": [3,4], "a": [5,6,7,8]}]}'),
    (sig(a=("DT_FLOAT", None), b=("DT_INT32", None)),
     b'{"signature_name": "serving_default", "inputs": {"a": [[1,2,3,4]], "b": [7,8]}}'),
    (sig(x=("DT_FLOAT", None)), b' {\n"instances" : [ [ 1 , 2 , 3 , 4 ] ] ,"extra": 5}\t'),
]


@pytest.mark.parametrize(("signature", "raw"), TAKEN)
def test_fast_path_accepts_dense_numbers(signature: Signature, raw: bytes,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert took_fast(raw, signature)
    served = assert_same(raw, signature, monkeypatch)
    assert not (isinstance(served, tuple) and served[0] == "error")


LEFT = [
    # ragged, and lists hiding inside innermost lists (as_buffer would flatten them)
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,2,3,4],[5,6,7]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,2,3,4],[5,6,7,8,9]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,[2,3],4,5],[[],6,7,8]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,2,3,4],5]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [1,[2]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[[1,2,3,4]],[[5,6,7,8],[1,2,3,4]]]}'),
    # not numbers, not finite, not in range
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,2,true,4]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,2,null,4]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,2,"3",4]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,2,NaN,4]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,2,3e39,4]]}'),
    (sig(x=("DT_INT32", None)), b'{"instances": [[1,2,3.0,4]]}'),
    (sig(x=("DT_INT8", None)), b'{"instances": [[1,2,128,4]]}'),
    (sig(x=("DT_UINT64", None)), b'{"instances": [[1,2,-1,4]]}'),
    (sig(x=("DT_INT64", None)), b'{"instances": [[1,2,9223372036854775808,4]]}'),
    (sig(x=("DT_BOOL", None)), b'{"instances": [[true,false,true,true]]}'),
    (sig(x=("DT_STRING", None)), b'{"instances": ["a", "b"]}'),
    # top level and objects the strict path must judge
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,2,3,4]], "instances": [[5,6,7,8]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,2,3,4]], "inputs": [[5,6,7,8]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": []}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"signature_name": 5, "instances": [[1,2,3,4]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"signature_name": null, "instances": [[1,2,3,4]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [{"x": [1,2,3,4], "x": [1,2,3,4]}]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [{"x": [1,2,3,4]}, [1,2,3,4]]}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [{"x": [1,2,3,4], "y": 1}]}'),
    (sig(a=("DT_FLOAT", None), b=("DT_FLOAT", None)), b'{"instances": [[1,2,3,4]]}'),
    (sig(a=("DT_FLOAT", None), b=("DT_FLOAT", None)), b'{"inputs": {"a": [1,2,3,4]}}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [{"x": 1.5}, {"x": 2}]}'),
    (sig(x=("DT_FLOAT", None)), b'{"inputs": 7}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,2,3,4]], "note": "[x]"}'),
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,2,3,4]]} trailing'),
    (sig(x=("DT_FLOAT", None)), b'[[1,2,3,4]]'),
    (sig(x=("DT_FLOAT", None)), b'\xef\xbb\xbf{"instances": [[1,2,3,4]]}'),  # BOM
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[1,2,3,4]]}\x00'),
    # thin innermost lists are walked more cheaply by the strict path
    (sig(x=("DT_FLOAT", None)), b'{"instances": [[[1],[2]],[[3],[4]]]}'),
]


@pytest.mark.parametrize(("signature", "raw"), LEFT)
def test_fast_path_leaves_the_rest_to_the_strict_path(
        signature: Signature, raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not took_fast(raw, signature)
    assert_same(raw, signature, monkeypatch)


@pytest.mark.parametrize(("raw", "thin"), [
    (b'{"instances": [[[0.1], [0.2]], [[0.3], [0.4]]]}', True),
    (b'{"instances": [[[1, 2, 3], [4, 5, 6]]]}', True),
    (b'{"instances": [{"x": [[1], [2]]}]}', True),
    (b'{"instances": [[1, 2, 3, 4], [5, 6, 7, 8]]}', False),
    (b'{"instances": [1, 2]}', False),
    (b'{"inputs": {"a": [1, 2], "b": [[1], [2]]}}', False),
    (b'{"signature_name": "]", "instances": [[1]]}', False),
    (b'{"instances": 5}', False),
])
def test_thin_innermost_lists_skip_the_parse(raw: bytes, thin: bool) -> None:
    assert codec_fast._thin_innermost(raw) is thin
    if thin:
        assert codec_fast.parse(raw) is None


def test_instance_limit_is_the_strict_paths_error(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = b'{"instances": [[1,2,3,4],[5,6,7,8],[1,2,3,4]]}'
    signature = sig(x=("DT_FLOAT", None))
    assert not took_fast(raw, signature, max_instances=2)
    assert assert_same(raw, signature, monkeypatch, max_instances=2)[0] == "error"


def test_columnar_batch_sizes_still_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    signature = sig(a=("DT_FLOAT", (-1, 4)), b=("DT_FLOAT", (-1, 4)))
    raw = b'{"inputs": {"a": [[1,2,3,4]], "b": [[1,2,3,4],[5,6,7,8]]}}'
    assert took_fast(raw, signature)
    assert assert_same(raw, signature, monkeypatch)[0] == "error"


def test_shape_mismatch_is_still_a_400(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = mnist_body(2).replace(b"[[", b"[[0.5, ", 1)  # first row has 785 numbers
    assert assert_same(raw, MNIST, monkeypatch)[0] == "error"


# -- hypothesis: random dtypes, shapes, layouts and corruptions --------------------------

SHAPES = st.tuples(st.lists(st.integers(1, 5), max_size=2), st.integers(1, 8)).map(
    lambda dims: (*dims[0], dims[1]))  # innermost often wide enough for the fast path


@st.composite
def requests(draw: st.DrawFn) -> tuple[Signature, bytes]:
    names = draw(st.lists(st.sampled_from("abc"), min_size=1, max_size=3, unique=True))
    dtypes = {n: draw(st.sampled_from(NUMERIC)) for n in names}
    row = draw(st.booleans())
    batch = draw(st.integers(1, 4))
    values: dict[str, Any] = {}
    for name in names:
        inner = draw(SHAPES)
        shape = (batch, *inner) if row else inner
        values[name] = _values(draw, dtypes[name], shape)
    ranked = draw(st.booleans())  # signature shapes all -1 (rank checked) or unknown
    signature = sig(**{n: (dtypes[n], (-1,) * np.ndim(values[n]) if ranked else None)
                       for n in names})
    if row:
        instances = (values[names[0]] if len(names) == 1 and draw(st.booleans()) else
                     [{n: values[n][i] for n in names} for i in range(batch)])
        doc: dict[str, Any] = {"instances": instances}
    else:
        doc = {"inputs": values[names[0]] if len(names) == 1 and draw(st.booleans())
               else values}
    name = draw(st.sampled_from(["absent", "serving_default", None, 5, ["x"], {"b64": ""}]))
    if name != "absent":
        doc["signature_name"] = name
    text = json.dumps(doc, indent=draw(st.sampled_from([None, 1])))
    return signature, _corrupt(draw, text).encode()


def _values(draw: st.DrawFn, dtype: str, shape: tuple[int, ...]) -> Any:
    count = int(np.prod(shape))
    if dtype in ("DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16"):
        leaf = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64),
                         st.integers(-(2**53), 2**53), st.sampled_from([0.1, 1e-5, 3e38, 7e4]))
    else:
        leaf = st.one_of(st.integers(-100, 127), st.integers(-(2**64), 2**64))
    leaves = draw(st.lists(leaf, min_size=count, max_size=count))
    return np.array(leaves, dtype=object).reshape(shape).tolist()


def _corrupt(draw: st.DrawFn, text: str) -> str:
    """Sometimes break one thing: a leaf, a bracket, a comma, the bytes around the document."""
    kind = draw(st.sampled_from(["none"] * 4 + ["leaf", "bracket", "drop", "wrap"]))
    positions = [i for i, ch in enumerate(text) if ch.isdigit()]
    if kind == "wrap":
        before = draw(st.sampled_from(["", "\ufeff", "\x0c", " \n"]))
        return before + text + draw(st.sampled_from(["", "\x00", " x", "\n", "]", "}"]))
    if kind == "none" or not positions:
        return text
    at = draw(st.sampled_from(positions))
    if kind == "leaf":
        return text[:at] + draw(st.sampled_from(["true", '"s"', "null", "NaN", "[1]", "[]"])) \
            + text[at + 1:]
    if kind == "bracket":
        return text[:at] + "[" + text[at:at + 1] + "]" + text[at + 1:]
    comma = text.find(",", at)
    return text if comma < 0 else text[:comma] + text[comma + 1:].replace(" ", "", 1)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=requests())
def test_fast_and_strict_paths_agree(case: tuple[Signature, bytes]) -> None:
    signature, raw = case
    event("fast path" if took_fast(raw, signature) else "strict path")
    with pytest.MonkeyPatch.context() as patch:
        assert outcome(raw, signature) == strict(raw, signature, patch)

