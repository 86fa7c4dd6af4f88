"""Our generated protos against the official tensorflow / tensorflow_serving ones.

Both directions, in one process: project bytes parse with the official pb2 and give the
same arrays via ``tf.make_ndarray``; official ``tf.make_tensor_proto`` bytes give the
same arrays via ``gateway.tensors.to_ndarray``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import wrappers_pb2
from tensorflow.core.framework import tensor_pb2 as official_tensor_pb2
from tensorflow.core.framework import types_pb2 as official_types_pb2
from tensorflow.core.protobuf import meta_graph_pb2 as official_meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2 as official_metadata_pb2
from tensorflow_serving.apis import predict_pb2 as official_predict_pb2

from gateway.codec import decode_predict_inputs, encode_predict_response, read_predict_body
from gateway.pb import get_model_metadata_pb2, predict_pb2, tensor_pb2, types_pb2
from gateway.signatures import signatures_from_metadata
from gateway.tensors import numpy_dtype, to_ndarray, to_tensor_proto

DT = types_pb2.DataType
NUMERIC = [
    DT.DT_FLOAT, DT.DT_DOUBLE, DT.DT_HALF, DT.DT_BFLOAT16,
    DT.DT_INT8, DT.DT_INT16, DT.DT_INT32, DT.DT_INT64,
    DT.DT_UINT8, DT.DT_UINT16, DT.DT_UINT32, DT.DT_UINT64,
    DT.DT_BOOL, DT.DT_COMPLEX64, DT.DT_COMPLEX128,
]


def sample(dtype: int, shape: tuple[int, ...] = (2, 3)) -> np.ndarray:
    target = numpy_dtype(dtype)
    size = int(np.prod(shape))
    if dtype == DT.DT_STRING:
        values = np.empty(size, dtype=object)
        values[:] = [b"a", b"\xff\x00", b"", b"hello", "\u00e9".encode(), b"z"][:size]
        return values.reshape(shape)
    if dtype == DT.DT_BOOL:
        return (np.arange(size) % 2 == 0).reshape(shape)
    if target.kind in "iu":
        info = np.iinfo(target)
        values = [int(info.min), int(info.max), 0, 1, 7, int(info.max) // 3]
        return np.array(values[:size], dtype=target).reshape(shape)
    if target.kind == "c":
        return (np.arange(size) - 1j * np.arange(size)).astype(target).reshape(shape)
    return (np.arange(size, dtype=np.float64) * 0.75 - 2.0).astype(target).reshape(shape)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype == object or b.dtype == object:
        return a.shape == b.shape and a.ravel().tolist() == b.ravel().tolist()
    return a.shape == b.shape and a.tobytes() == np.asarray(b).astype(a.dtype).tobytes()


ALL = [*NUMERIC, DT.DT_STRING]
IDS = [DT.Name(d) for d in ALL]


@pytest.mark.parametrize("dtype", ALL, ids=IDS)
def test_our_tensor_proto_parses_officially(dtype: int) -> None:
    array = sample(dtype)
    raw = to_tensor_proto(array, dtype).SerializeToString()
    official = official_tensor_pb2.TensorProto.FromString(raw)
    assert official.dtype == dtype
    back = tf.make_ndarray(official)
    assert back.shape == array.shape
    if dtype == DT.DT_BFLOAT16:
        back = back.view(np.uint16).view(numpy_dtype(dtype))
    assert same(array, back)


@pytest.mark.parametrize("dtype", ALL, ids=IDS)
def test_official_tensor_proto_parses_with_ours(dtype: int) -> None:
    array = sample(dtype)
    official = tf.make_tensor_proto(array, dtype=tf.dtypes.as_dtype(dtype))
    ours = tensor_pb2.TensorProto.FromString(official.SerializeToString())
    assert same(array, to_ndarray(ours))


@pytest.mark.parametrize("dtype", ALL, ids=IDS)
def test_official_typed_fields_parse_with_ours(dtype: int) -> None:
    """Single values go in the typed *_val fields (what TF Serving sends by default)."""
    array = sample(dtype, shape=(1,))
    official = tf.make_tensor_proto(array, dtype=tf.dtypes.as_dtype(dtype))
    assert not official.tensor_content
    ours = tensor_pb2.TensorProto.FromString(official.SerializeToString())
    assert same(array, to_ndarray(ours))


@pytest.mark.parametrize("dtype", [DT.DT_FLOAT, DT.DT_INT32, DT.DT_INT64, DT.DT_BOOL,
                                   DT.DT_STRING, DT.DT_HALF, DT.DT_UINT64])
def test_official_broadcast_parses_with_ours(dtype: int) -> None:
    value = sample(dtype, shape=(1,))
    official = tf.make_tensor_proto(value[0], dtype=tf.dtypes.as_dtype(dtype), shape=[2, 3])
    ours = to_ndarray(tensor_pb2.TensorProto.FromString(official.SerializeToString()))
    assert same(tf.make_ndarray(official), ours)
    assert ours.shape == (2, 3)


def test_official_field_encoding_of_tf_serving_outputs() -> None:
    """TF Serving's AsProtoField output (float_val) -> our JSON."""
    tensor = tf.constant([[0.1, 0.2], [np.nan, -np.inf]], dtype=tf.float32)
    response = official_predict_pb2.PredictResponse()
    response.outputs["scores"].CopyFrom(tf.make_tensor_proto(tensor.numpy()))
    response.outputs["scores"].ClearField("tensor_content")
    response.outputs["scores"].float_val.extend(tensor.numpy().ravel().tolist())
    ours = predict_pb2.PredictResponse.FromString(response.SerializeToString())
    array = to_ndarray(ours.outputs["scores"])
    assert encode_predict_response({"scores": array}, row=True, keyed=False) == (
        b'{"predictions":[[0.1,0.2],[NaN,-Infinity]]}'
    )


def test_predict_request_from_json_parses_officially() -> None:
    metadata = official_metadata_pb2.GetModelMetadataResponse()
    metadata.model_spec.name = "mnist"
    sig_map = official_metadata_pb2.SignatureDefMap()
    sig = sig_map.signature_def["serving_default"]
    sig.method_name = "tensorflow/serving/predict"
    image = sig.inputs["image"]
    image.name = "serving_default_image:0"
    image.dtype = official_types_pb2.DT_FLOAT
    image.tensor_shape.dim.add(size=-1)
    image.tensor_shape.dim.add(size=4)
    label = sig.inputs["label"]
    label.name = "serving_default_label:0"
    label.dtype = official_types_pb2.DT_STRING
    label.tensor_shape.dim.add(size=-1)
    sig.outputs["prediction"].CopyFrom(
        official_meta_graph_pb2.TensorInfo(name="out:0", dtype=official_types_pb2.DT_FLOAT)
    )
    metadata.metadata["signature_def"].Pack(sig_map)
    ours_meta = get_model_metadata_pb2.GetModelMetadataResponse.FromString(
        metadata.SerializeToString()
    )
    signature = signatures_from_metadata(ours_meta)["serving_default"]
    assert signature.inputs["image"].shape == (-1, 4)
    assert signature.inputs["label"].dtype == DT.DT_STRING

    body = read_predict_body(
        b'{"instances": [{"image": [1, 2, 3, 4.5], "label": {"b64": "aGk="}},'
        b' {"image": [0, 0, 0, 1], "label": "cat"}]}'
    )
    arrays = decode_predict_inputs(body, signature)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mnist"
    request.model_spec.signature_name = "serving_default"
    request.model_spec.version.CopyFrom(wrappers_pb2.Int64Value(value=3))
    for alias, array in arrays.items():
        request.inputs[alias].CopyFrom(to_tensor_proto(array, signature.inputs[alias].dtype))
    official = official_predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert official.model_spec.name == "mnist"
    assert official.model_spec.version.value == 3
    image_array = tf.make_ndarray(official.inputs["image"])
    assert image_array.dtype == np.float32
    assert image_array.tolist() == [[1, 2, 3, 4.5], [0, 0, 0, 1]]
    assert tf.make_ndarray(official.inputs["label"]).tolist() == [b"hi", b"cat"]


def test_official_metadata_with_unknown_rank_and_version_label() -> None:
    metadata = official_metadata_pb2.GetModelMetadataResponse()
    metadata.model_spec.name = "m"
    metadata.model_spec.version_label = "stable"
    sig_map = official_metadata_pb2.SignatureDefMap()
    info = sig_map.signature_def["other"].inputs["x"]
    info.dtype = official_types_pb2.DT_INT64
    info.tensor_shape.unknown_rank = True
    metadata.metadata["signature_def"].Pack(sig_map)
    ours = get_model_metadata_pb2.GetModelMetadataResponse.FromString(metadata.SerializeToString())
    assert ours.model_spec.version_label == "stable"
    spec = signatures_from_metadata(ours)["other"].inputs["x"]
    assert spec.shape is None and spec.dtype == DT.DT_INT64


def test_our_predict_response_parses_officially() -> None:
    outputs: dict[str, Any] = {
        "probabilities": np.array([[0.25, 0.75]], np.float32),
        "classes": np.array([1], np.int64),
    }
    response = predict_pb2.PredictResponse()
    response.model_spec.name = "m"
    response.outputs["probabilities"].CopyFrom(to_tensor_proto(outputs["probabilities"], 1))
    response.outputs["classes"].CopyFrom(to_tensor_proto(outputs["classes"], 9))
    official = official_predict_pb2.PredictResponse.FromString(response.SerializeToString())
    for name, array in outputs.items():
        assert same(array, tf.make_ndarray(official.outputs[name]))
