"""Open Inference Protocol (v2) over REST: gateway.codec.v2.rest.

Requests are framed exactly as tritonclient frames them (``support.v2_framing``) and
responses are read back the way tritonclient reads them; hostile bodies must be a 400
naming the problem, never an exception of another kind or a giant allocation.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.v2_framing import Input, http_as_numpy, http_request
from support.v2_samples import BF16, DT, SAMPLES, expected, signature, tensors

from gateway.codec.v2.rest import (
    HEADER_LENGTH,
    InferRequest,
    RequestedOutput,
    check_signature,
    encode_infer_response,
    model_metadata,
    parse_header_length,
    parse_infer_request,
    server_metadata,
)
from gateway.errors import Code, GatewayError, InvalidInput, Unimplemented

JSON_DATATYPES = [d for d in SAMPLES if d != "BF16"]  # tritonclient refuses BF16 in JSON
TEXT = np.array([[b"abc", b""], [b"\x00", "é".encode()]], dtype=object)  # JSON BYTES: UTF-8


def parse(body: bytes, header_length: int | None = None) -> InferRequest:
    return parse_infer_request(body, header_length)


def json_body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def one_input(**fields: Any) -> bytes:
    item = {"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]} | fields
    return json_body({"inputs": [item]})


# --- requests as tritonclient sends them ---------------------------------------------


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_binary_inputs_round_trip_for_every_datatype(datatype: str) -> None:
    array = SAMPLES[datatype]
    body, header_length = http_request([Input("x", array, datatype)])
    assert header_length is not None
    request = parse(body, header_length)
    got = request.inputs["x"]
    assert got.shape == array.shape
    np.testing.assert_array_equal(got, expected(datatype, array))
    assert request.binary_output is True  # tritonclient's default without outputs


@pytest.mark.parametrize("datatype", JSON_DATATYPES)
def test_json_inputs_round_trip_for_every_datatype(datatype: str) -> None:
    array = TEXT if datatype == "BYTES" else SAMPLES[datatype]
    body, header_length = http_request([Input("x", array, datatype, binary=False)])
    assert header_length is None
    got = parse(body).inputs["x"]
    assert got.dtype == expected(datatype, array).dtype
    np.testing.assert_array_equal(got, array)


def test_bf16_binary_is_tritonclients_truncated_float32() -> None:
    value = np.array([1.0 + 2**-7 + 2**-8 + 2**-9], np.float32)  # rounds up, truncates down
    body, header_length = http_request([Input("x", value, "BF16")])
    got = parse(body, header_length).inputs["x"]
    assert got.dtype == BF16
    assert float(got[0]) == 1.0 + 2**-7


def test_mixed_binary_and_json_inputs_keep_request_order() -> None:
    inputs = [
        Input("a", SAMPLES["BYTES"], "BYTES"),
        Input("b", SAMPLES["INT8"], "INT8", binary=False),
        Input("c", SAMPLES["FP64"], "FP64"),
    ]
    body, header_length = http_request(inputs, [("y", True), ("z", False)], request_id="r1",
                                       parameters={"signature_name": "sig", "priority": 3})
    request = parse(body, header_length)
    assert list(request.inputs) == ["a", "b", "c"]
    np.testing.assert_array_equal(request.inputs["c"], SAMPLES["FP64"])
    assert request.outputs == (RequestedOutput("y", True), RequestedOutput("z", False))
    assert request.output_filter == ["y", "z"]
    assert (request.id, request.signature_name, request.binary_output) == ("r1", "sig", False)
    assert request.parameters["priority"] == 3


def test_binary_numeric_inputs_are_views_of_the_body() -> None:
    body, header_length = http_request([Input("x", np.arange(1000, dtype=np.float32), "FP32")])
    got = parse(body, header_length).inputs["x"]
    assert not got.flags.owndata and not got.flags.writeable
    assert got.base is not None


def test_memoryview_bodies_are_accepted() -> None:
    body, header_length = http_request([Input("x", SAMPLES["INT32"], "INT32")])
    got = parse_infer_request(memoryview(bytearray(body)), header_length).inputs["x"]
    np.testing.assert_array_equal(got, SAMPLES["INT32"])


def test_the_extension_docs_example_parses() -> None:
    """triton docs/protocol/extension_binary_data.md: UINT32 [2,2] and BOOL [3]."""
    header = json_body({
        "model_name": "mymodel",
        "inputs": [
            {"name": "input0", "shape": [2, 2], "datatype": "UINT32",
             "parameters": {"binary_data_size": 16}},
            {"name": "input1", "shape": [3], "datatype": "BOOL",
             "parameters": {"binary_data_size": 3}},
        ],
        "outputs": [{"name": "output0", "parameters": {"binary_data": True}}],
    })
    body = header + np.arange(4, dtype="<u4").tobytes() + b"\x01\x00\x01"
    request = parse(body, len(header))
    np.testing.assert_array_equal(request.inputs["input0"], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(request.inputs["input1"], [True, False, True])
    assert request.outputs == (RequestedOutput("output0", True),)


def test_the_kserve_docs_example_is_rejected_for_its_data_count() -> None:
    """required_api.md sends BOOL shape [3] with data [true]: one element for three."""
    body = json_body({"id": "42", "inputs": [
        {"name": "input0", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]},
        {"name": "input1", "shape": [3], "datatype": "BOOL", "data": [True]},
    ], "outputs": [{"name": "output0"}]})
    with pytest.raises(InvalidInput, match=r"input 'input1'.*3 elements but data has 1"):
        parse(body)


@pytest.mark.parametrize("data", [[1, 2, 3, 4, 5, 6], [[1, 2, 3], [4, 5, 6]],
                                  [[1, 2], [3, 4], [5, 6]], [[[1], [2]], [[3], [4]], [[5], [6]]]])
def test_flat_and_nested_data_are_the_same_row_major_tensor(data: list[Any]) -> None:
    got = parse(one_input(shape=[3, 2], datatype="INT64", data=data)).inputs["x"]
    np.testing.assert_array_equal(got, [[1, 2], [3, 4], [5, 6]])


def test_scalars_empty_tensors_and_zero_sized_binary() -> None:
    assert parse(one_input(shape=[], data=[7.5])).inputs["x"].shape == ()
    assert parse(one_input(shape=[0, 3], data=[])).inputs["x"].shape == (0, 3)
    assert parse(one_input(shape=[2, 0], data=[[], []])).inputs["x"].shape == (2, 0)
    header = one_input(shape=[0], datatype="BYTES", data=None, parameters={"binary_data_size": 0})
    header = header.replace(b'"data": null, ', b"")
    assert parse(header, len(header)).inputs["x"].shape == (0,)


def test_json_floats_follow_tf_servings_cast() -> None:
    body = one_input(shape=[4], data=[1e39, -1e39, 1e-50, 0.1])
    got = parse(body).inputs["x"]
    assert got.dtype == np.float32
    assert got[0] == np.inf and got[1] == -np.inf and got[2] == 0.0
    assert got[3] == np.float32(0.1)


def test_nan_and_infinity_literals_are_accepted() -> None:
    body = (b'{"inputs":[{"name":"x","shape":[3],"datatype":"FP64",'
            b'"data":[NaN,Infinity,-Infinity]}]}')
    got = parse(body).inputs["x"]
    assert math.isnan(got[0]) and got[1] == math.inf and got[2] == -math.inf
    big = b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[1e400]}]}'
    assert parse(big).inputs["x"][0] == math.inf


# --- hostile requests --------------------------------------------------------------------

FRAGMENTS: list[tuple[str, bytes, str]] = [
    ("empty body", b"", "malformed"),
    ("not JSON", b"nope", "malformed"),
    ("trailing garbage", b'{"inputs": []} x', "malformed"),
    ("not UTF-8", b'{"inputs": [], "id": "\xff"}', "malformed"),
    ("not an object", b"[]", "must be a JSON object"),
    ("inputs missing", b"{}", "needs 'inputs'"),
    ("inputs not a list", b'{"inputs": {}}', "needs 'inputs'"),
    ("input not an object", b'{"inputs": [1]}', r"inputs\[0\] must be an object"),
    ("name missing", json_body({"inputs": [{"shape": [1]}]}), r"inputs\[0\].name"),
    ("name empty", one_input(name=""), r"inputs\[0\].name"),
    ("name not a string", one_input(name=3), r"inputs\[0\].name"),
    ("unknown datatype", one_input(datatype="FLOAT32"), "unsupported datatype \"FLOAT32\""),
    ("lower-case datatype", one_input(datatype="fp32"), "unsupported datatype"),
    ("datatype missing", one_input(datatype=None), "unsupported datatype null"),
    ("shape missing", one_input(shape=None), "'shape' must be an array"),
    ("shape a string", one_input(shape="2"), "'shape' must be an array"),
    ("negative dim", one_input(shape=[-2]), "negative or huge"),
    ("float dim", one_input(shape=[2.0]), "must hold integers"),
    ("bool dim", one_input(shape=[True, 2]), "must hold integers"),
    ("dim beyond int64", one_input(shape=[2**63]), "negative or huge"),
    ("dim beyond uint64", one_input(shape=[2**64 + 1]), "must hold integers"),
    ("too many elements", one_input(shape=[2**20, 2**20, 2**20]), "more than"),
    ("zero hides huge", one_input(shape=[0, 2**33], data=[]), "more than"),
    ("rank 33", one_input(shape=[1] * 33, data=[1]), "at most 32"),
    ("count mismatch", one_input(shape=[3]), "3 elements but data has 2"),
    ("nested count mismatch", one_input(shape=[2], data=[[1, 2], [3, 4]]), "data has 4"),
    ("scalar data", one_input(shape=[], data=5), "must be a JSON array"),
    ("object data", one_input(data={"b64": "AA=="}), "must be a JSON array"),
    ("ragged lengths", one_input(shape=[3], data=[[1, 2], [3]]), "ragged"),
    ("ragged depth", one_input(shape=[3], data=[[1, 2], 3]), "ragged"),
    ("bool as number", one_input(datatype="BOOL", data=[1, 0]), "true or false, got 1"),
    ("number as bool", one_input(datatype="INT32", data=[True, 1]), "integers, got true"),
    ("float for int", one_input(datatype="INT32", data=[1, 2.0]), "integers, got 2.0"),
    ("fraction for int", one_input(datatype="UINT8", data=[1, 1.5]), "integers, got 1.5"),
    ("int8 overflow", one_input(datatype="INT8", data=[1, 128]), "128 is out of range for INT8"),
    ("uint8 negative", one_input(datatype="UINT8", data=[-1, 0]), "out of range for UINT8"),
    ("uint8 300", one_input(datatype="UINT8", data=[300, 0]), "300 is out of range"),
    ("int64 overflow", one_input(datatype="INT64", data=[2**63, 0]), "out of range for INT64"),
    ("uint64 overflow", one_input(datatype="UINT64", data=[2**64, 0]), "integers, got"),
    ("string for float", one_input(data=["1", 2]), "must be numbers, got \"1\""),
    ("null in data", one_input(data=[None, 2]), "must be numbers, got null"),
    ("number for bytes", one_input(datatype="BYTES", data=["a", 1]), "must be strings, got 1"),
    ("object for bytes", one_input(datatype="BYTES", shape=[1], data=[{"b64": "AA=="}]),
     "must be strings"),
    ("duplicate inputs", json_body({"inputs": [
        {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},
        {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}), "given twice"),
    ("no data", json_body({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}),
     "neither 'data' nor"),
    ("binary without header", one_input(data=None, parameters={"binary_data_size": 8})
     .replace(b'"data": null, ', b""), "no Inference-Header-Content-Length"),
    ("parameters not an object", one_input(parameters=[1]), "'parameters' must be an object"),
    ("parameter null", one_input(parameters={"a": None}), "parameters.a must be a string"),
    ("request parameter list", json_body({"inputs": [], "parameters": {"a": [1]}}),
     "parameters.a must be"),
    ("binary_data_output not bool", json_body({"inputs": [],
     "parameters": {"binary_data_output": 1}}), "binary_data_output must be true or false"),
    ("signature_name not a string", json_body({"inputs": [],
     "parameters": {"signature_name": 1}}), "signature_name must be a non-empty string"),
    ("id a number", json_body({"inputs": [], "id": 42}), "'id' must be a string"),
    ("outputs not a list", json_body({"inputs": [], "outputs": {}}), "'outputs' must be"),
    ("output not an object", json_body({"inputs": [], "outputs": ["y"]}),
     r"outputs\[0\] must be an object"),
    ("output without name", json_body({"inputs": [], "outputs": [{}]}), r"outputs\[0\].name"),
    ("duplicate outputs", json_body({"inputs": [], "outputs": [{"name": "y"}, {"name": "y"}]}),
     "requested twice"),
    ("binary_data not bool", json_body({"inputs": [], "outputs": [
        {"name": "y", "parameters": {"binary_data": "yes"}}]}), "binary_data must be true"),
    ("too deep", b'{"inputs": [{"data": ' + b"[" * 2000 + b"]" * 2000 + b"}]}", "malformed"),
    ("too deep with NaN", b'{"a": NaN, "b": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "malformed"),
    ("lone surrogate via NaN path", b'{"inputs": [{"name": "\\ud800", "shape": [1], '
     b'"datatype": "FP32", "data": [NaN]}]}', "not valid UTF-8"),
    ("invalid UTF-8 via NaN path", b'{"id": "\xff", "a": NaN}', "malformed"),
]


@pytest.mark.parametrize(("body", "message"), [(b, m) for _, b, m in FRAGMENTS],
                         ids=[name for name, _, _ in FRAGMENTS])
def test_malformed_json_requests_are_400(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        parse(body)
    assert info.value.http_status == 400


def binary_body(inputs: list[dict[str, Any]], *chunks: bytes) -> tuple[bytes, int]:
    header = json_body({"inputs": inputs})
    return header + b"".join(chunks), len(header)


def binary_input(size: Any, datatype: str = "FP32", shape: list[int] | None = None,
                 name: str = "x") -> dict[str, Any]:
    return {"name": name, "shape": shape or [2], "datatype": datatype,
            "parameters": {"binary_data_size": size}}


def frame(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in items)


BINARY: list[tuple[str, tuple[bytes, int], str]] = [
    ("size too small for shape", binary_body([binary_input(4)], b"\0" * 4),
     "4 bytes of binary data, but FP32 \\[2\\] takes 8"),
    ("size too big for shape", binary_body([binary_input(12)], b"\0" * 12), "takes 8"),
    ("truncated body", binary_body([binary_input(8)], b"\0" * 5), "runs past the end"),
    ("second input truncated", binary_body([binary_input(8), binary_input(8, name="z")],
                                           b"\0" * 12), "input 'z'.*runs past the end"),
    ("trailing bytes", binary_body([binary_input(8)], b"\0" * 9), "1 bytes after the JSON"),
    ("binary but no binary input", binary_body([{"name": "x", "shape": [1],
     "datatype": "FP32", "data": [1]}], b"\0"), "not claimed"),
    ("negative size", binary_body([binary_input(-8)], b"\0" * 8), "non-negative integer"),
    ("string size", binary_body([binary_input("8")], b"\0" * 8), "non-negative integer"),
    ("float size", binary_body([binary_input(8.0)], b"\0" * 8), "non-negative integer"),
    ("bool size", binary_body([binary_input(True)], b"\0"), "non-negative integer"),
    ("data and size", binary_body([binary_input(8) | {"data": [1, 2]}], b"\0" * 8),
     "both 'data' and"),
    ("bool byte 2", binary_body([binary_input(2, "BOOL")], b"\x01\x02"), "bytes 0 or 1"),
    ("bytes: short length", binary_body([binary_input(9, "BYTES", [2])],
                                        frame(b"abcd") + b"\0"), "element 1 has no 4-byte"),
    ("bytes: length too long", binary_body([binary_input(9, "BYTES", [1])],
                                           struct.pack("<I", 9) + b"abcde"), "claims 9 bytes"),
    ("bytes: huge length", binary_body([binary_input(8, "BYTES", [1])],
                                       b"\xff\xff\xff\xff" + b"abcd"), "claims 4294967295"),
    ("bytes: more elements", binary_body([binary_input(10, "BYTES", [1])], frame(b"a", b"b")),
     "5 bytes left after 1 BYTES"),
    ("bytes: fewer elements", binary_body([binary_input(5, "BYTES", [2])], frame(b"a")),
     "cannot hold 2 BYTES elements"),
    ("bytes: giant shape", binary_body([binary_input(4, "BYTES", [2**32])], frame(b"")),
     "cannot hold 4294967296"),
    ("numeric: giant shape", binary_body([binary_input(8, "FP64", [2**31, 2])], b"\0" * 8),
     "takes 34359738368"),
]


@pytest.mark.parametrize(("case", "message"), [(c, m) for _, c, m in BINARY],
                         ids=[name for name, _, _ in BINARY])
def test_malformed_binary_requests_are_400(case: tuple[bytes, int], message: str) -> None:
    body, header_length = case
    with pytest.raises(InvalidInput, match=message):
        parse(body, header_length)


@pytest.mark.parametrize("header_length", [-1, 10_000])
def test_header_length_outside_the_body_is_400(header_length: int) -> None:
    with pytest.raises(InvalidInput, match="does not fit"):
        parse(one_input(), header_length)


def test_header_length_zero_or_cutting_the_json_is_400() -> None:
    body = one_input()
    for cut in (0, len(body) - 1):
        with pytest.raises(InvalidInput, match="malformed"):
            parse(body, cut)


def test_header_length_equal_to_the_body_is_plain_json() -> None:
    body = one_input()
    np.testing.assert_array_equal(parse(body, len(body)).inputs["x"], [1, 2])


@pytest.mark.parametrize("value", ["abc", "-1", "+5", "1e3", "١٢", "", "1" * 19, "0x10"])
def test_header_length_header_must_be_plain_digits(value: str) -> None:
    with pytest.raises(InvalidInput, match=HEADER_LENGTH):
        parse_header_length(value)


def test_header_length_header_parses() -> None:
    assert parse_header_length(None) is None
    assert parse_header_length(" 123 ") == 123
    assert parse_header_length("0") == 0


@pytest.mark.parametrize(("params", "feature"), [
    ({"shared_memory_region": "r", "shared_memory_byte_size": 8}, "shared memory"),
])
def test_shared_memory_inputs_are_501(params: dict[str, Any], feature: str) -> None:
    with pytest.raises(Unimplemented, match=feature) as info:
        parse(one_input(data=None, parameters=params).replace(b'"data": null, ', b""))
    assert info.value.http_status == 501


def test_classification_outputs_are_501() -> None:
    body = json_body({"inputs": [], "outputs": [
        {"name": "y", "parameters": {"classification": 3, "binary_data": True}}]})
    with pytest.raises(Unimplemented, match="classification"):
        parse(body)


def test_empty_outputs_list_means_every_output() -> None:
    request = parse(json_body({"inputs": [], "outputs": []}))
    assert request.outputs is None and request.output_filter == []


# --- the signature -----------------------------------------------------------------------


def request_of(**arrays: np.ndarray) -> InferRequest:
    return InferRequest(inputs=dict(arrays))


def test_signature_accepts_any_shape_of_the_right_datatype() -> None:
    sig = signature({"x": (DT.DT_FLOAT, (-1, 1))})
    check_signature(request_of(x=np.zeros(3, np.float32)), sig)  # TF1 half_plus_two


@pytest.mark.parametrize(("request_", "message"), [
    (request_of(x=np.zeros(1, np.float32), z=np.zeros(1, np.float32)), "unknown input 'z'"),
    (request_of(), "missing input 'x'"),
    (request_of(x=np.zeros(1, np.float64)), "has datatype FP64 but .* expects FP32"),
    (request_of(x=np.zeros(1, BF16)), "has datatype BF16"),
    (InferRequest({"x": np.zeros(1, np.float32)}, outputs=(RequestedOutput("q"),)),
     "unknown output 'q'.*outputs: y"),
])
def test_signature_mismatches_are_400(request_: InferRequest, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_signature(request_, signature({"x": (DT.DT_FLOAT, None)}))


def test_signature_input_v2_cannot_carry_is_400() -> None:
    sig = signature({"c": (DT.DT_COMPLEX64, None)})
    with pytest.raises(InvalidInput, match=r"DT_COMPLEX64.*cannot carry"):
        check_signature(request_of(c=np.zeros(1, np.float32)), sig)


def test_every_datatype_matches_its_tensorflow_type() -> None:
    from gateway.codec.v2.tensors import DATATYPES

    for datatype, tf_type in DATATYPES.items():
        body, header_length = http_request([Input("x", SAMPLES[datatype], datatype)])
        check_signature(parse(body, header_length), signature({"x": (tf_type, None)}))


# --- responses ---------------------------------------------------------------------------


def decode(result: tuple[bytes, int | None]) -> dict[str, Any]:
    body, header_length = result
    return json.loads(body if header_length is None else body[:header_length])


def test_json_response_shape_and_float_formatting() -> None:
    outputs = {
        "f": np.array([[2.0, 0.1], [np.nan, -np.inf]], np.float32),
        "i": np.array([1, -2], np.int64),
        "b": np.array([True, False]),
        "s": np.array([b"caf\xc3\xa9", b""], dtype=object),
    }
    body, header_length = encode_infer_response("m", 3, "req-1", outputs)
    assert header_length is None
    assert body.startswith(b'{"model_name":"m","model_version":"3","id":"req-1","outputs":[')
    assert b'"data":[2.0,0.1,NaN,-Infinity]' in body
    assert b'"data":[1,-2]' in body and b'"data":[true,false]' in body
    assert '"data":["café",""]'.encode() in body
    doc = json.loads(body)
    assert [o["name"] for o in doc["outputs"]] == ["f", "i", "b", "s"]
    assert doc["outputs"][0] == {"name": "f", "datatype": "FP32", "shape": [2, 2],
                                 "data": doc["outputs"][0]["data"]}


def test_half_precision_json_is_numbers_that_read_back_exactly() -> None:
    fp16 = np.array([0.1, 65504, np.inf], np.float16)
    bf16 = np.array([0.1, 3.0e38], BF16)
    body, _ = encode_infer_response("m", 1, None, {"h": fp16, "b": bf16})
    doc = json.loads(body)
    assert "id" not in doc
    np.testing.assert_array_equal(np.array(doc["outputs"][0]["data"], np.float16), fp16)
    np.testing.assert_array_equal(np.array(doc["outputs"][1]["data"], np.float32),
                                  bf16.astype(np.float32))
    assert doc["outputs"][1]["datatype"] == "BF16"


def test_non_utf8_bytes_in_json_are_400_with_a_hint() -> None:
    with pytest.raises(InvalidInput, match="binary_data"):
        encode_infer_response("m", 1, None, {"s": np.array([b"\xff"], dtype=object)})


@pytest.mark.parametrize("datatype", list(SAMPLES))
@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_reads_every_datatype_back(datatype: str, binary: bool) -> None:
    sample = TEXT if datatype == "BYTES" and not binary else SAMPLES[datatype]
    array = expected(datatype, sample)
    result = encode_infer_response("m", 1, None, {"y": array}, [RequestedOutput("y", binary)])
    assert (result[1] is not None) == binary
    if datatype == "BF16" and binary:
        # tritonclient.http reads binary BF16 as float32: a client limitation (its gRPC
        # reader and its JSON path handle BF16). The bytes are the protocol's 2 per element.
        assert len(result[0]) - result[1] == 2 * array.size
        with pytest.raises(ValueError, match="reshape"):
            http_as_numpy(*result, "y")
        return
    want = array.astype(np.float32) if datatype == "BF16" else sample
    if datatype == "BYTES" and not binary:
        want = np.array([[b.decode() for b in row] for row in sample], dtype=object)
    np.testing.assert_array_equal(http_as_numpy(*result, "y"), want)


def test_binary_flags_default_and_override() -> None:
    outputs = {"a": np.arange(3, dtype=np.int32), "b": np.ones(2, np.float64),
               "c": np.array([b"xy"], dtype=object)}
    requested = [RequestedOutput("c"), RequestedOutput("a", False), RequestedOutput("b", True)]
    body, header_length = encode_infer_response("m", "7", None, outputs, requested, True)
    assert header_length is not None
    doc = json.loads(body[:header_length])
    assert [o["name"] for o in doc["outputs"]] == ["c", "a", "b"]
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 6}
    assert doc["outputs"][1]["data"] == [0, 1, 2]
    assert doc["outputs"][2]["parameters"] == {"binary_data_size": 16}
    assert body[header_length:] == b"\x02\x00\x00\x00xy" + np.ones(2, "<f8").tobytes()


def test_no_requested_outputs_use_the_request_default_for_all() -> None:
    outputs = {"a": np.arange(3, dtype=np.int32), "b": np.ones(2, np.float16)}
    body, header_length = encode_infer_response("m", 1, None, outputs, None, True)
    assert header_length is not None
    assert len(body) - header_length == 12 + 4
    assert decode(encode_infer_response("m", 1, None, outputs, None, False))["outputs"][1][
        "data"] == [1.0, 1.0]


def test_non_contiguous_and_big_endian_outputs_are_row_major_little_endian() -> None:
    base = np.arange(6, dtype=">i4").reshape(2, 3)
    transposed = base.T
    result = encode_infer_response("m", 1, None, {"t": transposed},
                                   [RequestedOutput("t", True)])
    np.testing.assert_array_equal(http_as_numpy(*result, "t"), transposed)
    doc = decode(encode_infer_response("m", 1, None, {"t": transposed}))
    assert doc["outputs"][0]["data"] == transposed.ravel().tolist()
    assert doc["outputs"][0]["datatype"] == "INT32"


def test_zero_sized_outputs() -> None:
    outputs = {"e": np.zeros((0, 4), np.float32)}
    assert decode(encode_infer_response("m", 1, None, outputs))["outputs"][0]["data"] == []
    body, header_length = encode_infer_response("m", 1, None, outputs, None, True)
    assert header_length == len(body)
    assert http_as_numpy(body, header_length, "e").shape == (0, 4)


def test_outputs_the_backend_did_not_return_are_internal_errors() -> None:
    with pytest.raises(GatewayError) as info:
        encode_infer_response("m", 1, None, {}, [RequestedOutput("y")])
    assert info.value.code == Code.INTERNAL


def test_complex_outputs_are_501() -> None:
    with pytest.raises(Unimplemented, match="complex64"):
        encode_infer_response("m", 1, None, {"c": np.zeros(1, np.complex64)})


# --- metadata ----------------------------------------------------------------------------


def test_model_metadata() -> None:
    sig = signature(
        {"image": (DT.DT_FLOAT, (-1, 8, 8)), "any": (DT.DT_STRING, None)},
        {"prediction": (DT.DT_INT64, (-1,)), "z": (DT.DT_COMPLEX64, ())},
    )
    doc = model_metadata("digits", [1, 3], sig)
    assert doc == {
        "name": "digits",
        "versions": ["1", "3"],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 8, 8]},
                   {"name": "any", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": "prediction", "datatype": "INT64", "shape": [-1]},
                    {"name": "z", "datatype": "DT_COMPLEX64", "shape": []}],
    }
    orjson.dumps(doc)


def test_server_metadata() -> None:
    assert server_metadata("0.1.0") == {
        "name": "tfserving-gateway", "version": "0.1.0", "extensions": ["binary_tensor_data"]}


# --- properties --------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(st.lists(tensors(), min_size=1, max_size=4), st.booleans())
def test_tritonclient_requests_round_trip(items: list[tuple[str, np.ndarray]],
                                          binary: bool) -> None:
    inputs = [Input(f"in{i}", a, d, binary) for i, (d, a) in enumerate(items)]
    request = parse(*http_request(inputs))
    for item in inputs:
        got = request.inputs[item.name]
        assert got.shape == item.array.shape
        np.testing.assert_array_equal(got, item.array)


@settings(max_examples=150, deadline=None)
@given(st.lists(tensors(), min_size=1, max_size=4), st.booleans())
def test_responses_round_trip_through_tritonclients_reader(
    items: list[tuple[str, np.ndarray]], binary: bool
) -> None:
    outputs = {f"out{i}": a for i, (_, a) in enumerate(items)}
    result = encode_infer_response("m", 1, "id", outputs, None, binary)
    for name, array in outputs.items():
        got = http_as_numpy(*result, name)
        assert got is not None and got.shape == array.shape
        if array.dtype == object and not binary:  # tritonclient keeps JSON strings as str
            array = np.vectorize(bytes.decode, otypes=[object])(array) if array.size else array
        np.testing.assert_array_equal(got, array)
