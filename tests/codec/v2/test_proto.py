"""Open Inference Protocol (v2) over gRPC: gateway.codec.v2.proto on the generated messages.

Raw requests are built as ``tritonclient.grpc`` builds them and responses read back as
it reads them (``support.v2_framing``); typed ``contents`` follow the KServe proto.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.v2_framing import Input, grpc_as_numpy, grpc_request, http_request
from support.v2_samples import BF16, DT, SAMPLES, expected, signature, tensors

from gateway.codec.v2.proto import (
    infer_request_from_proto,
    infer_response_to_proto,
    model_metadata_to_proto,
    server_metadata_to_proto,
)
from gateway.codec.v2.rest import RequestedOutput, model_metadata, parse_infer_request
from gateway.errors import InvalidInput, Unimplemented
from gateway.pb import grpc_predict_v2_pb2 as pb

TYPED = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def typed_request(name: str, datatype: str, shape: list[int], field: str | None,
                  values: list[Any]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
    if field is not None:
        getattr(tensor.contents, field).extend(values)
    return request


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_tritonclient_raw_requests_for_every_datatype(datatype: str) -> None:
    array = SAMPLES[datatype]
    request = infer_request_from_proto(grpc_request([("x", array, datatype)]))
    assert request.raw is True
    np.testing.assert_array_equal(request.inputs["x"], expected(datatype, array))
    assert request.inputs["x"].shape == array.shape


@pytest.mark.parametrize("datatype", list(TYPED))
def test_typed_contents_for_every_typed_datatype(datatype: str) -> None:
    array = SAMPLES[datatype]
    request = typed_request("x", datatype, list(array.shape), TYPED[datatype],
                            array.ravel().tolist())
    got = infer_request_from_proto(request)
    assert got.raw is False
    assert got.inputs["x"].dtype == array.dtype
    np.testing.assert_array_equal(got.inputs["x"], array)


@settings(max_examples=100, deadline=None)
@given(st.lists(tensors(), min_size=1, max_size=4))
def test_rest_and_grpc_decode_the_same_request(items: list[tuple[str, np.ndarray]]) -> None:
    named = [(f"in{i}", a, d) for i, (d, a) in enumerate(items)]
    over_grpc = infer_request_from_proto(grpc_request(named))
    over_rest = parse_infer_request(*http_request([Input(n, a, d) for n, a, d in named]))
    assert list(over_grpc.inputs) == list(over_rest.inputs)
    for name, array in over_rest.inputs.items():
        assert over_grpc.inputs[name].dtype == array.dtype
        np.testing.assert_array_equal(over_grpc.inputs[name], array)


def hostile() -> list[tuple[str, pb.ModelInferRequest, str]]:
    cases = []

    def add(name: str, request: pb.ModelInferRequest, message: str) -> None:
        cases.append((name, request, message))

    add("int8 out of range", typed_request("x", "INT8", [2], "int_contents", [1, 200]),
        "200 is out of range for INT8")
    add("uint16 out of range", typed_request("x", "UINT16", [1], "uint_contents", [70000]),
        "out of range for UINT16")
    add("wrong field", typed_request("x", "FP32", [1], "fp64_contents", [1.0]),
        "goes in contents.fp32_contents, not contents.fp64_contents")
    two = typed_request("x", "INT32", [1], "int_contents", [1])
    two.inputs[0].contents.int64_contents.append(1)
    add("two fields", two, "not contents.int64_contents")
    add("fp16 typed", typed_request("x", "FP16", [1], "fp32_contents", [1.0]),
        "FP16 data must come in raw_input_contents")
    add("bf16 without data", typed_request("x", "BF16", [2], None, []),
        "BF16 data must come in raw_input_contents")
    add("count mismatch", typed_request("x", "INT64", [3], "int64_contents", [1, 2]),
        "3 elements but data has 2")
    add("no contents", typed_request("x", "INT64", [3], None, []), "data has 0")
    add("negative dim", typed_request("x", "INT64", [-1], "int64_contents", [1]),
        "negative or huge")
    add("huge shape", typed_request("x", "INT64", [2**40, 2**40], "int64_contents", [1]),
        "more than")
    add("unknown datatype", typed_request("x", "FLOAT", [1], "fp32_contents", [1.0]),
        "unsupported datatype")
    add("empty name", typed_request("", "FP32", [1], "fp32_contents", [1.0]),
        r"inputs\[0\].name")
    raw_short = grpc_request([("x", np.zeros(2, np.float32), "FP32")])
    raw_short.raw_input_contents[0] = b"\0" * 7
    add("raw size", raw_short, "7 bytes of binary data, but FP32 \\[2\\] takes 8")
    raw_count = grpc_request([("x", np.zeros(2, np.float32), "FP32"),
                              ("z", np.zeros(2, np.float32), "FP32")])
    del raw_count.raw_input_contents[1]
    add("raw count", raw_count, "raw_input_contents has 1 entries for 2 inputs")
    mixed = grpc_request([("x", np.zeros(1, np.float32), "FP32")])
    mixed.inputs[0].contents.fp32_contents.append(1.0)
    add("raw and contents", mixed, "has 'contents' but the request uses raw")
    bad_bytes = grpc_request([("x", np.array([b"ab"], dtype=object), "BYTES")])
    bad_bytes.raw_input_contents[0] = b"\x05\0\0\0ab"
    add("raw bytes framing", bad_bytes, "claims 5 bytes")
    twice = grpc_request([("x", np.zeros(1, np.float32), "FP32")] * 2)
    add("duplicate inputs", twice, "given twice")
    outputs = pb.ModelInferRequest()
    outputs.outputs.add(name="y")
    outputs.outputs.add(name="y")
    add("duplicate outputs", outputs, "requested twice")
    unnamed = pb.ModelInferRequest()
    unnamed.outputs.add()
    add("unnamed output", unnamed, r"outputs\[0\].name")
    sig = pb.ModelInferRequest()
    sig.parameters["signature_name"].int64_param = 3
    add("signature_name not a string", sig, "signature_name must be")
    return cases


HOSTILE = hostile()


@pytest.mark.parametrize(("request_", "message"), [(r, m) for _, r, m in HOSTILE],
                         ids=[n for n, _, _ in HOSTILE])
def test_hostile_requests_are_invalid_argument(request_: pb.ModelInferRequest,
                                                message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        infer_request_from_proto(request_)


def test_zero_element_half_precision_needs_no_contents() -> None:
    got = infer_request_from_proto(typed_request("x", "FP16", [0, 3], None, []))
    assert got.inputs["x"].shape == (0, 3) and got.inputs["x"].dtype == np.float16


def test_shared_memory_and_classification_are_unimplemented() -> None:
    request = typed_request("x", "FP32", [1], "fp32_contents", [1.0])
    request.inputs[0].parameters["shared_memory_region"].string_param = "r"
    with pytest.raises(Unimplemented, match="shared memory"):
        infer_request_from_proto(request)
    request = pb.ModelInferRequest()
    request.outputs.add(name="y").parameters["classification"].int64_param = 2
    with pytest.raises(Unimplemented, match="classification"):
        infer_request_from_proto(request)


def test_parameters_ids_and_requested_outputs() -> None:
    request = pb.ModelInferRequest(id="abc")
    request.parameters["signature_name"].string_param = "sig"
    request.parameters["sequence_start"].bool_param = True
    request.parameters["timeout"].int64_param = -5
    request.parameters["priority"].uint64_param = 2**64 - 1  # tritonclient's priority
    request.parameters["temperature"].double_param = 0.5
    request.parameters["unset"].SetInParent()
    request.outputs.add(name="b").parameters["binary_data"].bool_param = True
    request.outputs.add(name="a")
    got = infer_request_from_proto(request)
    assert got.id == "abc" and got.signature_name == "sig"
    assert got.parameters == {"signature_name": "sig", "sequence_start": True, "timeout": -5,
                              "priority": 2**64 - 1, "temperature": 0.5}
    assert got.outputs == (RequestedOutput("b"), RequestedOutput("a"))
    assert got.output_filter == ["b", "a"]
    assert infer_request_from_proto(pb.ModelInferRequest()).id is None


def test_hand_encoded_upstream_wire_bytes_decode() -> None:
    """ModelInferRequest{model_name=1, inputs=5{name=1, datatype=2, shape=3 packed},
    raw_input_contents=7}, written byte by byte from the upstream field numbers."""
    tensor = b"\x0a\x01x" + b"\x12\x04INT8" + b"\x1a\x02\x01\x02"
    wire = b"\x0a\x01m" + b"\x2a" + bytes([len(tensor)]) + tensor + b"\x3a\x02\x05\xfb"
    message = pb.ModelInferRequest.FromString(wire)
    assert message.model_name == "m"
    got = infer_request_from_proto(message)
    np.testing.assert_array_equal(got.inputs["x"], [[5, -5]])
    assert message.SerializeToString() == wire


# --- responses ---------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_raw_responses_read_back_by_tritonclient(datatype: str) -> None:
    array = expected(datatype, SAMPLES[datatype])
    response = infer_response_to_proto("m", 4, "id-1", {"y": array}, None, raw=True)
    assert (response.model_name, response.model_version, response.id) == ("m", "4", "id-1")
    assert len(response.raw_output_contents) == 1
    assert not response.outputs[0].HasField("contents")
    got = grpc_as_numpy(response, "y")
    want = array.astype(np.float32) if datatype == "BF16" else array
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("datatype", list(TYPED))
def test_typed_responses_when_the_request_was_typed(datatype: str) -> None:
    array = SAMPLES[datatype]
    response = infer_response_to_proto("m", 1, None, {"y": array}, None, raw=False)
    assert not response.raw_output_contents and response.id == ""
    output = response.outputs[0]
    assert (output.datatype, list(output.shape)) == (datatype, list(array.shape))
    values = list(getattr(output.contents, TYPED[datatype]))
    assert values == array.ravel().tolist()
    assert [f.name for f, _ in output.contents.ListFields()] == [TYPED[datatype]]


def test_one_half_precision_output_makes_every_output_raw() -> None:
    outputs = {"a": np.arange(3, dtype=np.int32), "h": np.ones(2, np.float16),
               "s": np.array([b"q"], dtype=object)}
    requested = [RequestedOutput("h"), RequestedOutput("a"), RequestedOutput("s")]
    response = infer_response_to_proto("m", 1, None, outputs, requested, raw=False)
    assert [o.name for o in response.outputs] == ["h", "a", "s"]
    assert len(response.raw_output_contents) == 3
    assert not any(o.HasField("contents") for o in response.outputs)
    np.testing.assert_array_equal(grpc_as_numpy(response, "a"), [0, 1, 2])
    assert grpc_as_numpy(response, "s").tolist() == [b"q"]


def test_bf16_output_is_raw_bytes_tritonclient_reads() -> None:
    bf16 = np.array([1.5, -2.0], BF16)
    response = infer_response_to_proto("m", 1, None, {"y": bf16})
    assert response.raw_output_contents[0] == bf16.tobytes()
    np.testing.assert_array_equal(grpc_as_numpy(response, "y"), [1.5, -2.0])


def test_typed_zero_sized_outputs_have_no_contents() -> None:
    response = infer_response_to_proto("m", 1, None, {"y": np.zeros((0, 2), np.float32)})
    assert list(response.outputs[0].shape) == [0, 2]
    assert not response.outputs[0].HasField("contents")


# --- metadata ----------------------------------------------------------------------------


def test_model_metadata_proto_matches_the_rest_document() -> None:
    sig = signature({"image": (DT.DT_FLOAT, (-1, 8, 8)), "any": (DT.DT_STRING, None)},
                    {"prediction": (DT.DT_INT64, (-1,))})
    message = model_metadata_to_proto("digits", [1, 2], sig)
    doc = model_metadata("digits", [1, 2], sig)
    assert message.name == doc["name"] and list(message.versions) == doc["versions"]
    assert message.platform == "tensorflow_savedmodel"
    for side in ("inputs", "outputs"):
        rows = [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
                for t in getattr(message, side)]
        assert rows == doc[side]


def test_server_metadata_proto() -> None:
    message = server_metadata_to_proto("0.1.0")
    assert (message.name, message.version, list(message.extensions)) == (
        "tfserving-gateway", "0.1.0", ["binary_tensor_data"])
