"""Every PredictionService/ModelService RPC of the embedded model server, official stubs.

One in-process server (background thread) over the session's test models; clients are the
official ``tensorflow_serving.apis`` stubs on a real gRPC channel.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from support.models import make_example  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

SLOW_SECONDS = 2.0  # support.servers.SLOW_SECONDS (not imported: it is a pytest plugin)

CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


@pytest.fixture(scope="module")
def channel(inprocess_modelserver: Any) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{inprocess_modelserver.port}") as chan:
        yield chan


@pytest.fixture(scope="module")
def predict_stub(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def model_stub(channel: grpc.Channel) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(channel)


def predict_request(model: str, signature: str = "", **inputs: Any) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if signature:
        request.model_spec.signature_name = signature
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return request


def rpc_error(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30)
    return info.value


def outputs(response: Any) -> dict[str, np.ndarray]:
    return {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}


# --- Predict ---------------------------------------------------------------------------


def test_predict_mnist_matches_savedmodel(predict_stub: Any, model_base: Path) -> None:
    images = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    response = predict_stub.Predict(predict_request("mnist", image=images), timeout=30)
    expected = (
        tf.saved_model.load(str(model_base / "mnist" / "1"))
        .signatures["serving_default"](image=tf.constant(images))["prediction"]
        .numpy()
    )
    got = outputs(response)["prediction"]
    assert got.shape == (3, 10)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert response.model_spec.name == "mnist"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"


def test_predict_several_dtypes_and_outputs(predict_stub: Any) -> None:
    request = predict_request(
        "multi",
        a=np.array([[1, 2, 3], [4, 5, 6]], np.float32),
        b=np.array([3, -1], np.int64),
        c=np.array([b"x", b"\xff"], object),
    )
    got = outputs(predict_stub.Predict(request, timeout=30))
    assert set(got) == {"total", "doubled", "echo_bytes", "flag"}
    np.testing.assert_array_equal(got["total"], np.array([6, 15], np.float32))
    assert got["doubled"].dtype == np.int64
    np.testing.assert_array_equal(got["doubled"], [6, -2])
    assert list(got["echo_bytes"]) == [b"x!", b"\xff!"]
    np.testing.assert_array_equal(got["flag"], [True, False])


def test_predict_output_filter(predict_stub: Any) -> None:
    request = predict_request(
        "multi",
        a=np.ones((1, 3), np.float32),
        b=np.array([2], np.int64),
        c=np.array([b"q"], object),
    )
    request.output_filter.extend(["doubled"])
    response = predict_stub.Predict(request, timeout=30)
    assert list(response.outputs) == ["doubled"]
    request.output_filter[:] = ["nope"]
    error = rpc_error(predict_stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "output tensor alias not found in signature: nope" in error.details()


def test_predict_named_signature(predict_stub: Any) -> None:
    request = predict_request("multi", "scale", x=np.array([1.0, 2.5], np.float32))
    response = predict_stub.Predict(request, timeout=30)
    np.testing.assert_array_equal(outputs(response)["y"], [3.0, 7.5])
    assert response.model_spec.signature_name == "scale"


def test_predict_integer_model(predict_stub: Any) -> None:
    request = predict_request("half_plus_two_int", x=np.array([4, 7, -3], np.int32))
    got = outputs(predict_stub.Predict(request, timeout=30))["y"]
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, [4, 5, 0])


def test_predict_explicit_version(predict_stub: Any) -> None:
    request = predict_request("half_plus_two", x=np.array([2.0], np.float32))
    request.model_spec.version.value = 1
    response = predict_stub.Predict(request, timeout=30)
    assert response.model_spec.version.value == 1
    np.testing.assert_array_equal(outputs(response)["y"], [3.0])


@pytest.mark.parametrize(
    ("mutate", "code", "message"),
    [
        (
            lambda r: setattr(r.model_spec, "name", "unknown"),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(unknown)",
        ),
        (
            lambda r: r.model_spec.version.__setattr__("value", 7),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Specific(half_plus_two, 7)",
        ),
        (
            lambda r: setattr(r.model_spec, "version_label", "stable"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Unrecognized servable version label: stable",
        ),
        (
            lambda r: setattr(r.model_spec, "signature_name", "x"),
            grpc.StatusCode.INVALID_ARGUMENT,
            'Serving signature name: "x" not found in signature def',
        ),
        (
            lambda r: r.ClearField("model_spec"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Missing ModelSpec",
        ),
    ],
    ids=["model", "version", "label", "signature", "no-spec"],
)
def test_predict_resolution_errors(predict_stub: Any, mutate: Any, code: Any, message: str) -> None:
    request = predict_request("half_plus_two", x=np.array([1.0], np.float32))
    mutate(request)
    error = rpc_error(predict_stub.Predict, request)
    assert error.code() == code
    assert error.details() == message


@pytest.mark.parametrize(
    ("inputs", "fragments"),
    [
        ({}, ["Missing but required: {x}"]),
        ({"x": np.ones(2, np.float32), "z": np.ones(2, np.float32)}, ["Sent extra: {z}"]),
        ({"x": np.ones(2, np.int32)}, ['Input "x"', "DT_INT32", "DT_FLOAT"]),
        ({"x": np.ones((2, 2), np.float32)}, ['Input "x"', "[2, 2]", "[-1]"]),
        ({"x": np.array([b"a"], object)}, ['Input "x"', "DT_STRING"]),
    ],
    ids=["missing", "extra", "dtype", "shape", "string"],
)
def test_predict_bad_tensors(predict_stub: Any, inputs: dict, fragments: list[str]) -> None:
    error = rpc_error(predict_stub.Predict, predict_request("half_plus_two", **inputs))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    for fragment in fragments:
        assert fragment in error.details()


def test_predict_malformed_tensor_content(predict_stub: Any) -> None:
    request = predict_request("half_plus_two", x=np.ones(4, np.float32))
    request.inputs["x"].tensor_content = b"\x00" * 7
    error = rpc_error(predict_stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'Input "x"' in error.details()


def test_slow_predict_deadline_and_loop_stays_responsive(
    predict_stub: Any, model_stub: Any
) -> None:
    slow = predict_request("slow", x=np.array([5.0], np.float32))
    error = rpc_error(lambda r, timeout: predict_stub.Predict(r, timeout=0.3), slow)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "mnist"
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(predict_stub.Predict, slow, timeout=SLOW_SECONDS * 10)
        model_stub.GetModelStatus(status_request, timeout=30)
        answered_while_busy = not pending.done()
        response = pending.result()
    assert answered_while_busy  # the status call was served while TF was sleeping
    np.testing.assert_array_equal(outputs(response)["y"], [5.0])


def test_large_message_over_4mb_default(inprocess_modelserver: Any) -> None:
    images = np.zeros((2000, 784), np.float32)  # ~6.3 MB request
    limit = 64 << 20
    options = [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]
    target = f"127.0.0.1:{inprocess_modelserver.port}"
    with grpc.insecure_channel(target, options=options) as big:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(big)
        response = stub.Predict(predict_request("mnist", image=images), timeout=60)
    assert outputs(response)["prediction"].shape == (2000, 10)


# --- Metadata and status -------------------------------------------------------------


def stored_signature_defs(path: Path) -> dict[str, Any]:
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    return dict(saved.meta_graphs[0].signature_def)


def metadata_request(model: str, *fields: str) -> Any:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model
    request.metadata_field.extend(fields)
    return request


def test_metadata_is_the_stored_signature_defs(predict_stub: Any, model_base: Path) -> None:
    response = predict_stub.GetModelMetadata(metadata_request("multi", "signature_def"), timeout=30)
    packed = response.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert packed.Unpack(signature_map)
    assert dict(signature_map.signature_def) == stored_signature_defs(model_base / "multi" / "1")
    serving = signature_map.signature_def["serving_default"]
    assert serving.inputs["b"].dtype == tf.int64.as_datatype_enum
    assert [d.size for d in serving.inputs["a"].tensor_shape.dim] == [-1, 3]
    assert response.model_spec.name == "multi"
    assert response.model_spec.version.value == 1


def test_metadata_is_readable_by_project_signatures(predict_stub: Any) -> None:
    from gateway.pb import get_model_metadata_pb2 as project_pb2
    from gateway.signatures import signatures_from_metadata

    response = predict_stub.GetModelMetadata(metadata_request("mnist", "signature_def"), timeout=30)
    ours = project_pb2.GetModelMetadataResponse.FromString(response.SerializeToString())
    signature = signatures_from_metadata(ours)["serving_default"]
    assert list(signature.inputs) == ["image"]
    assert signature.inputs["image"].shape == (-1, 784)
    assert list(signature.outputs) == ["prediction"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((), "GetModelMetadataRequest must specify at least one metadata_field"),
        (("signature_def", "other"), "Metadata field other is not supported"),
    ],
)
def test_metadata_field_errors(predict_stub: Any, fields: tuple, message: str) -> None:
    error = rpc_error(predict_stub.GetModelMetadata, metadata_request("mnist", *fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == message


def test_metadata_unknown_model(predict_stub: Any) -> None:
    error = rpc_error(predict_stub.GetModelMetadata, metadata_request("nope", "signature_def"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_model_status(model_stub: Any) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "mnist"
    response = model_stub.GetModelStatus(request, timeout=30)
    (row,) = response.model_version_status
    assert row.version == 1
    assert row.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert row.status.error_code == 0
    assert row.status.error_message == ""


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("nope", None, "Could not find any versions of model nope"),
        ("mnist", 9, "Could not find version 9 of model mnist"),
    ],
)
def test_model_status_not_found(model_stub: Any, name: str, version: Any, message: str) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    error = rpc_error(model_stub.GetModelStatus, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == message


# --- Classify / Regress / MultiInference ---------------------------------------------


def with_examples(request: Any, *examples: Any, context: Any = None) -> Any:
    if context is None:
        request.input.example_list.examples.extend(examples)
    else:
        request.input.example_list_with_context.examples.extend(examples)
        request.input.example_list_with_context.context.CopyFrom(context)
    request.model_spec.name = "classify_regress"
    return request


def test_classify(predict_stub: Any) -> None:
    request = with_examples(
        classification_pb2.ClassificationRequest(), make_example(x=0.0), make_example(x=2.0)
    )
    request.model_spec.signature_name = "classify_x_to_y"
    response = predict_stub.Classify(request, timeout=30)
    first, second = response.result.classifications
    assert [c.label for c in first.classes] == ["neg", "pos"]
    assert [c.score for c in first.classes] == pytest.approx([0.5, 0.5])
    sigmoid = 1 / (1 + np.exp(-2.0))
    assert [c.score for c in second.classes] == pytest.approx([1 - sigmoid, sigmoid], rel=1e-6)
    assert response.model_spec.signature_name == "classify_x_to_y"
    assert response.model_spec.version.value == 1


def test_regress_merges_context(predict_stub: Any) -> None:
    context = make_example(bias=10.0, x=100.0)
    request = with_examples(
        regression_pb2.RegressionRequest(),
        make_example(x=2.0),
        make_example(x=4.0, bias=1.0),
        context=context,
    )
    request.model_spec.signature_name = "regress_x_to_y"
    response = predict_stub.Regress(request, timeout=30)
    values = [r.value for r in response.result.regressions]
    # example features win over the context's; context fills the missing ``bias``
    assert values == pytest.approx([2 / 2 + 2 + 10, 4 / 2 + 2 + 1])
    assert response.model_spec.signature_name == "regress_x_to_y"


def test_classify_on_predict_signature_is_invalid(predict_stub: Any) -> None:
    request = with_examples(classification_pb2.ClassificationRequest(), make_example(x=1.0))
    error = rpc_error(predict_stub.Classify, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict"
    )


def test_regress_on_classify_signature_and_empty_input(predict_stub: Any) -> None:
    request = with_examples(regression_pb2.RegressionRequest(), make_example(x=1.0))
    request.model_spec.signature_name = "classify_x_to_y"
    error = rpc_error(predict_stub.Regress, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Expected regression signature method_name" in error.details()
    empty = with_examples(regression_pb2.RegressionRequest())
    empty.model_spec.signature_name = "regress_x_to_y"
    error = rpc_error(predict_stub.Regress, empty)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Input is empty."


def multi_request(*tasks: tuple[str, str, str]) -> Any:
    request = inference_pb2.MultiInferenceRequest()
    for model, signature, method in tasks:
        task = request.tasks.add()
        task.model_spec.name = model
        task.model_spec.signature_name = signature
        task.method_name = method
    request.input.example_list.examples.extend([make_example(x=0.0), make_example(x=6.0)])
    return request


def test_multi_inference(predict_stub: Any) -> None:
    request = multi_request(
        ("classify_regress", "classify_x_to_y", CLASSIFY),
        ("classify_regress", "regress_x_to_y", REGRESS),
    )
    response = predict_stub.MultiInference(request, timeout=30)
    classified, regressed = response.results
    assert classified.model_spec.signature_name == "classify_x_to_y"
    assert classified.model_spec.version.value == 1
    assert len(classified.classification_result.classifications) == 2
    assert [r.value for r in regressed.regression_result.regressions] == pytest.approx([2, 5])


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ((), "MultiInferenceRequest must specify at least one task"),
        (
            (
                ("classify_regress", "classify_x_to_y", CLASSIFY),
                ("mnist", "regress_x_to_y", REGRESS),
            ),
            "All ModelSpecs in a MultiInferenceRequest must access the same model name.",
        ),
        (
            (("classify_regress", "regress_x_to_y", REGRESS),) * 2,
            "Duplicate evaluation of signature: regress_x_to_y",
        ),
        (
            (("classify_regress", "serving_default", "tensorflow/serving/predict"),),
            "Unsupported signature method_name: tensorflow/serving/predict",
        ),
    ],
    ids=["empty", "two-models", "duplicate", "predict"],
)
def test_multi_inference_errors(predict_stub: Any, tasks: tuple, message: str) -> None:
    error = rpc_error(predict_stub.MultiInference, multi_request(*tasks))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == message


# --- Health and reflection -----------------------------------------------------------


def test_health_checks(channel: grpc.Channel, inprocess_modelserver: Any) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ["", "mnist", "classify_regress"]:
        request = health_pb2.HealthCheckRequest(service=service)
        assert stub.Check(request, timeout=10).status == serving
    error = rpc_error(stub.Check, health_pb2.HealthCheckRequest(service="nope"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    watch = stub.Watch(health_pb2.HealthCheckRequest(service="mnist"), timeout=10)
    assert next(watch).status == serving
    watch.cancel()


def test_reflection_lists_services(channel: grpc.Channel) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (response,) = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    names = {service.name for service in response.list_services_response.service}
    assert {
        "tensorflow.serving.PredictionService",
        "tensorflow.serving.ModelService",
        "grpc.health.v1.Health",
    } <= names
    symbol = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="tensorflow.serving.PredictionService"
    )
    (described,) = list(stub.ServerReflectionInfo(iter([symbol]), timeout=10))
    assert described.file_descriptor_response.file_descriptor_proto
