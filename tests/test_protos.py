"""The generated protos are fresh, wire-identical to upstream, and coexist with it."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from support.paths import REPO_ROOT

import gateway.pb

REPO = REPO_ROOT
OFFICIAL_MODULES = [
    "tensorflow.core.framework.tensor_pb2",
    "tensorflow.core.framework.tensor_shape_pb2",
    "tensorflow.core.framework.types_pb2",
    "tensorflow.core.framework.resource_handle_pb2",
    "tensorflow.core.protobuf.meta_graph_pb2",
    "tensorflow.core.protobuf.error_codes_pb2",
    "tensorflow.core.example.example_pb2",
    "tensorflow.core.example.feature_pb2",
]
PREFIX = "tfgw."
# Open Inference Protocol (v2) messages: no official wheel fits this venv (tritonclient
# pins protobuf<7), so they are checked against a hand-transcribed golden table instead.
V2_PACKAGE = "tfgw.inference."
V2_GOLDEN = REPO / "tests" / "data" / "v2" / "grpc_predict_v2.json"

_F = FieldDescriptor
_I64 = "google.protobuf.Int64Value"
# Upstream messages that the tensorflow-serving-api wheel does not ship, transcribed from
# tensorflow_serving/servables/tensorflow/session_bundle_config.proto and
# tensorflow_serving/config/monitoring_config.proto: name -> (number, type, repeated, type).
SOURCE_ONLY: dict[str, dict[str, tuple[int, int, bool, str | None]]] = {
    "tensorflow.serving.BatchingParameters": {
        "max_batch_size": (1, _F.TYPE_MESSAGE, False, _I64),
        "batch_timeout_micros": (2, _F.TYPE_MESSAGE, False, _I64),
        "max_enqueued_batches": (3, _F.TYPE_MESSAGE, False, _I64),
        "num_batch_threads": (4, _F.TYPE_MESSAGE, False, _I64),
        "thread_pool_name": (5, _F.TYPE_MESSAGE, False, "google.protobuf.StringValue"),
        "allowed_batch_sizes": (6, _F.TYPE_INT64, True, None),
        "pad_variable_length_inputs": (7, _F.TYPE_BOOL, False, None),
    },
    "tensorflow.serving.PrometheusConfig": {
        "enable": (1, _F.TYPE_BOOL, False, None),
        "path": (2, _F.TYPE_STRING, False, None),
    },
    "tensorflow.serving.MonitoringConfig": {
        "prometheus_config": (
            1, _F.TYPE_MESSAGE, False, "tensorflow.serving.PrometheusConfig"
        ),
    },
}


def _our_modules() -> list[str]:
    return sorted(
        f"gateway.pb.{m.name}"
        for m in pkgutil.iter_modules(gateway.pb.__path__)
        if m.name.endswith("_pb2")
    )


def _official_pool() -> descriptor_pool.DescriptorPool:
    import tensorflow_serving.apis
    import tensorflow_serving.config

    for package in (tensorflow_serving.apis, tensorflow_serving.config):
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.endswith("_pb2"):
                importlib.import_module(f"{package.__name__}.{info.name}")
    for name in OFFICIAL_MODULES:
        importlib.import_module(name)
    return descriptor_pool.Default()


def _walk_messages(desc: Descriptor) -> list[Descriptor]:
    found = [desc]
    for nested in desc.nested_types:
        found.extend(_walk_messages(nested))
    return found


def _our_descriptors() -> tuple[list[Descriptor], list[EnumDescriptor]]:
    messages: list[Descriptor] = []
    enums: list[EnumDescriptor] = []
    for name in _our_modules():
        file_desc = importlib.import_module(name).DESCRIPTOR
        for message in file_desc.message_types_by_name.values():
            walked = _walk_messages(message)
            messages.extend(walked)
            for m in walked:
                enums.extend(m.enum_types)
        enums.extend(file_desc.enum_types_by_name.values())
    return messages, enums


def _upstream(name: str) -> str:
    assert name.startswith(PREFIX), f"{name} is not in the tfgw. package namespace"
    return name[len(PREFIX) :]


def _type_name(field: FieldDescriptor) -> str | None:
    if field.message_type is not None:
        return field.message_type.full_name
    if field.enum_type is not None:
        return field.enum_type.full_name
    return None


def _field_signature(field: FieldDescriptor, ours: bool) -> tuple:
    type_name = _type_name(field)
    if ours and type_name and type_name.startswith(PREFIX):
        type_name = _upstream(type_name)
    oneof = field.containing_oneof.name if field.containing_oneof else None
    return (
        field.name,
        field.number,
        field.type,
        field.is_repeated,
        field.is_packed,
        type_name,
        oneof,
        field.json_name,
    )


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    """``generate()`` into a temp dir (own process: in-process protoc and TensorFlow's
    bundled protobuf do not mix) must reproduce the committed files byte for byte."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, 'protos'); "
        f"import generate; generate.generate(Path({str(tmp_path)!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = tmp_path / "gateway" / "pb"
    committed = REPO / "gateway" / "pb"
    fresh_names = sorted(p.name for p in fresh.iterdir() if p.suffix in {".py", ".pyi"})
    committed_names = sorted(p.name for p in committed.iterdir() if p.suffix in {".py", ".pyi"})
    assert fresh_names == committed_names, "run: .venv/bin/python protos/generate.py"
    stale = [n for n in fresh_names if (fresh / n).read_bytes() != (committed / n).read_bytes()]
    assert not stale, f"stale generated files {stale}; run: .venv/bin/python protos/generate.py"


@pytest.fixture(scope="module")
def official_pool() -> descriptor_pool.DescriptorPool:
    return _official_pool()


def test_every_message_has_an_official_counterpart_with_identical_fields(
    official_pool: descriptor_pool.DescriptorPool,
) -> None:
    messages, _ = _our_descriptors()
    assert len(messages) > 30
    for ours in messages:
        if _upstream(ours.full_name) in SOURCE_ONLY or ours.full_name.startswith(V2_PACKAGE):
            continue
        theirs = official_pool.FindMessageTypeByName(_upstream(ours.full_name))
        for field in ours.fields:
            assert field.number in theirs.fields_by_number, (
                f"{ours.full_name}.{field.name} (#{field.number}) does not exist upstream"
            )
            official = theirs.fields_by_number[field.number]
            assert _field_signature(field, ours=True) == _field_signature(official, ours=False), (
                f"{ours.full_name}.{field.name} differs from {theirs.full_name}.{official.name}"
            )


def test_messages_missing_from_the_wheel_match_the_upstream_sources() -> None:
    messages, _ = _our_descriptors()
    by_name = {_upstream(m.full_name): m for m in messages}
    for name, fields in SOURCE_ONLY.items():
        if name not in by_name:
            continue  # not (yet) part of the project's protos
        ours = by_name[name]
        for field in ours.fields:
            assert field.name in fields, f"{name}.{field.name} is not an upstream field"
            sig = _field_signature(field, ours=True)
            number, ftype, repeated, type_name = fields[field.name]
            assert (sig[1], sig[2], sig[3], sig[5]) == (number, ftype, repeated, type_name), (
                f"{name}.{field.name}"
            )


def test_every_enum_value_matches_upstream(official_pool: descriptor_pool.DescriptorPool) -> None:
    _, enums = _our_descriptors()
    names = {e.full_name for e in enums}
    assert {"tfgw.tensorflow.DataType", "tfgw.tensorflow.error.Code"} <= names
    for ours in enums:
        theirs = official_pool.FindEnumTypeByName(_upstream(ours.full_name))
        for value in ours.values:
            assert value.name in theirs.values_by_name, f"{ours.full_name}.{value.name}"
            assert theirs.values_by_name[value.name].number == value.number, (
                f"{ours.full_name}.{value.name}"
            )


def test_key_upstream_fields_are_all_declared(
    official_pool: descriptor_pool.DescriptorPool,
) -> None:
    """The messages the codec reads carry every upstream field (nothing dropped)."""
    from gateway.pb import get_model_metadata_pb2, model_pb2, predict_pb2, tensor_pb2

    for ours in (
        tensor_pb2.TensorProto.DESCRIPTOR,
        predict_pb2.PredictResponse.DESCRIPTOR,
        model_pb2.ModelSpec.DESCRIPTOR,
        get_model_metadata_pb2.GetModelMetadataResponse.DESCRIPTOR,
    ):
        theirs = official_pool.FindMessageTypeByName(_upstream(ours.full_name))
        assert set(theirs.fields_by_number) == set(ours.fields_by_number), ours.full_name


def test_upstream_fields_we_do_not_declare_survive_a_round_trip(
    official_pool: descriptor_pool.DescriptorPool,
) -> None:
    """PredictRequest's streaming/client options are not declared but pass through."""
    from tensorflow_serving.apis import predict_pb2 as official

    from gateway.pb import predict_pb2

    request = official.PredictRequest(client_id=b"client-7")
    request.model_spec.name = "m"
    request.request_options.SetInParent()
    ours = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert ours.model_spec.name == "m"
    back = official.PredictRequest.FromString(ours.SerializeToString())
    assert back.client_id == b"client-7"
    assert back.HasField("request_options")


def test_packages_do_not_clash_in_one_process() -> None:
    """Ours first, then the official modules, then a round trip through both."""
    code = "\n".join([
        "import importlib, pkgutil",
        "import gateway.pb",
        "for m in pkgutil.iter_modules(gateway.pb.__path__):",
        "    importlib.import_module('gateway.pb.' + m.name)",
        "from tensorflow_serving.apis import predict_pb2 as official",
        "from tensorflow_serving.apis import get_model_metadata_pb2, model_service_pb2",
        "from tensorflow_serving.apis import prediction_service_pb2",
        "from tensorflow_serving.config import model_server_config_pb2",
        "from gateway.pb import predict_pb2 as ours",
        "req = ours.PredictRequest()",
        "req.model_spec.name = 'm'",
        "req.inputs['x'].dtype = 1",
        "back = official.PredictRequest.FromString(req.SerializeToString())",
        "assert back.model_spec.name == 'm' and back.inputs['x'].dtype == 1",
        "assert ours.PredictRequest.DESCRIPTOR.full_name == "
        "'tfgw.tensorflow.serving.PredictRequest'",
        "assert official.PredictRequest.DESCRIPTOR.full_name == "
        "'tensorflow.serving.PredictRequest'",
        "print('ok')",
    ])
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


_SCALAR_NAMES = {
    _F.TYPE_BOOL: "bool",
    _F.TYPE_INT32: "int32",
    _F.TYPE_INT64: "int64",
    _F.TYPE_UINT32: "uint32",
    _F.TYPE_UINT64: "uint64",
    _F.TYPE_FLOAT: "float",
    _F.TYPE_DOUBLE: "double",
    _F.TYPE_STRING: "string",
    _F.TYPE_BYTES: "bytes",
}


def _v2_row(field: FieldDescriptor) -> list:
    """A field as a golden row: [number, type, repeated, message-or-map type, oneof]."""
    oneof = field.containing_oneof.name if field.containing_oneof else None
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        key, value = message.fields_by_name["key"], message.fields_by_name["value"]
        value_name = _upstream(value.message_type.full_name)
        type_name = f"map<{_SCALAR_NAMES[key.type]}, {value_name}>"
        return [field.number, "map", True, type_name, oneof]
    if message is not None:
        return [field.number, "message", field.is_repeated, _upstream(message.full_name), oneof]
    return [field.number, _SCALAR_NAMES[field.type], field.is_repeated, None, oneof]


def test_v2_messages_match_the_upstream_golden_table() -> None:
    """Both ways: every upstream v2 message and field exists in ours, identically, and
    ours declares nothing else; repeated scalars are packed (proto3, as upstream)."""
    import json

    from gateway.pb import grpc_predict_v2_pb2

    golden = json.loads(V2_GOLDEN.read_text())["messages"]
    ours = {
        _upstream(m.full_name): m
        for top in grpc_predict_v2_pb2.DESCRIPTOR.message_types_by_name.values()
        for m in _walk_messages(top)
        if not m.GetOptions().map_entry
    }
    assert set(ours) == set(golden)
    for name, fields in golden.items():
        rows = {f.name: _v2_row(f) for f in ours[name].fields}
        assert rows == fields, name
        for field in ours[name].fields:
            if field.is_repeated and field.type not in (_F.TYPE_STRING, _F.TYPE_BYTES,
                                                        _F.TYPE_MESSAGE):
                assert field.is_packed, f"{name}.{field.name}"


def test_v2_service_is_declared_with_the_upstream_methods() -> None:
    import json

    from gateway.pb import grpc_predict_v2_pb2

    golden = json.loads(V2_GOLDEN.read_text())["service"]
    service = grpc_predict_v2_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert _upstream(service.full_name) == golden["name"]
    methods = {
        m.name: [_upstream(m.input_type.full_name), _upstream(m.output_type.full_name)]
        for m in service.methods
    }
    assert methods == golden["methods"]
    assert not any(m.client_streaming or m.server_streaming for m in service.methods)
    assert not hasattr(grpc_predict_v2_pb2, "GRPCInferenceServiceStub")
