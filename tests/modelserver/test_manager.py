"""Version lifecycle of the embedded model server: polling, policies, labels, hot swap.

Each test runs its own in-process server (background thread) over a fresh base path
polled every 0.1 s; versions are published as real copies of test SavedModels.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from google.protobuf import text_format  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from support.net import wait_for  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

POLL = 0.1
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END


class Client:
    """Official stubs on one channel to a test server."""

    def __init__(self, port: int, **options: Any) -> None:
        opts = list(options.items())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=opts)
        self.predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model_stub = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    def predict(self, model: str, x: Any = (1.0,), **spec: Any) -> Any:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        if "version" in spec:
            request.model_spec.version.value = spec["version"]
        if "label" in spec:
            request.model_spec.version_label = spec["label"]
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(x, np.float32)))
        return self.predict_stub.Predict(request, timeout=30)

    def served_version(self, model: str) -> int:
        return self.predict(model).model_spec.version.value

    def states(self, model: str) -> dict[int, tuple[int, int, str]]:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        response = self.model_stub.GetModelStatus(request, timeout=30)
        return {
            row.version: (row.state, row.status.error_code, row.status.error_message)
            for row in response.model_version_status
        }

    def state_of(self, model: str) -> dict[int, int]:
        try:
            return {v: s[0] for v, s in self.states(model).items()}
        except grpc.RpcError:
            return {}

    def health(self, service: str) -> int:
        request = health_pb2.HealthCheckRequest(service=service)
        return self.health_stub.Check(request, timeout=10).status

    def reload(self, config_text: str) -> Any:
        request = model_management_pb2.ReloadConfigRequest()
        text_format.Parse(config_text, request.config)
        return self.model_stub.HandleReloadConfigRequest(request, timeout=60)


def rpc_error(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


def publish(source: Path, base: Path, version: int) -> Path:
    """Copy a SavedModel into ``base/.tmp-N`` then rename to ``base/N`` (atomic publish)."""
    staging = base / f".tmp-{version}"
    shutil.copytree(source, staging)
    target = base / str(version)
    os.rename(staging, target)
    return target


def publish_broken(base: Path, version: int) -> Path:
    staging = base / f".tmp-{version}"
    staging.mkdir(parents=True)
    (staging / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    target = base / str(version)
    os.rename(staging, target)
    return target


@pytest.fixture(scope="module")
def hp2(model_base: Path) -> Path:
    """A half_plus_two SavedModel (float32 ``x`` → ``y``) to publish copies of."""
    return model_base / "half_plus_two" / "1"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """``serve(config_text | base_path, wait=True, **options)`` → ``(server, Client)``."""
    from support.servers import modelserver_in_thread

    stack: list[Any] = []

    def start(source: str | Path, *, wait: bool = True, **options: Any) -> tuple[Any, Client]:
        client_options = options.pop("client_options", {})
        if isinstance(source, Path):
            options.update(model_name="hp", model_base_path=str(source))
        else:
            config = tmp_path / "models.config"
            config.write_text(source)
            options.update(model_config_file=str(config))
        options.setdefault("file_system_poll_wait_seconds", POLL)
        manager = modelserver_in_thread(wait=wait, **options)
        server = manager.__enter__()
        stack.append(manager)
        return server, Client(server.port, **client_options)

    yield start
    for manager in reversed(stack):
        manager.__exit__(None, None, None)


def config_text(base: Path, extra: str = "", name: str = "hp") -> str:
    return (
        "model_config_list { config { "
        f'name: "{name}" base_path: "{base}" model_platform: "tensorflow" {extra} '
        "} }"
    )


def test_new_version_replaces_old(serve: Any, hp2: Path, tmp_path: Path) -> None:
    base = tmp_path / "hp"
    publish(hp2, base, 1)
    _, client = serve(base)
    assert client.served_version("hp") == 1
    publish(hp2, base, 2)
    wait_for(lambda: client.state_of("hp") == {2: AVAILABLE, 1: END}, timeout=30)
    response = client.predict("hp", [4.0])
    assert response.model_spec.version.value == 2
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), [4.0])
    assert client.states("hp")[1] == (END, 0, "")


def test_removed_version_falls_back(serve: Any, hp2: Path, tmp_path: Path) -> None:
    base = tmp_path / "hp"
    publish(hp2, base, 1)
    publish(hp2, base, 2)
    _, client = serve(base)
    assert client.state_of("hp") == {2: AVAILABLE}
    shutil.rmtree(base / "2")
    wait_for(lambda: client.state_of("hp") == {2: END, 1: AVAILABLE}, timeout=30)
    assert client.served_version("hp") == 1


def test_model_without_versions_becomes_serving_when_published(
    serve: Any, hp2: Path, tmp_path: Path
) -> None:
    base = tmp_path / "hp"
    base.mkdir()
    (base / "notes").mkdir()  # non-numeric entries are ignored
    _, client = serve(base, wait=False)
    assert client.health("") == health_pb2.HealthCheckResponse.NOT_SERVING
    assert client.health("hp") == health_pb2.HealthCheckResponse.NOT_SERVING
    error = rpc_error(client.predict, "hp")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    publish(hp2, base, 3)
    wait_for(lambda: client.health("hp") == health_pb2.HealthCheckResponse.SERVING, timeout=30)
    assert client.health("") == health_pb2.HealthCheckResponse.SERVING
    assert client.served_version("hp") == 3


def test_broken_version_never_takes_the_serving_one_down(
    serve: Any, hp2: Path, tmp_path: Path
) -> None:
    base = tmp_path / "hp"
    publish(hp2, base, 1)
    _, client = serve(base)
    publish_broken(base, 2)
    wait_for(lambda: client.state_of("hp").get(2) == END, timeout=30)
    _, code, message = client.states("hp")[2]
    assert code != 0 and message
    assert client.states("hp")[1][0] == AVAILABLE
    assert client.served_version("hp") == 1
    assert client.health("hp") == health_pb2.HealthCheckResponse.SERVING
    publish(hp2, base, 3)
    wait_for(lambda: client.state_of("hp").get(3) == AVAILABLE, timeout=30)
    wait_for(lambda: client.state_of("hp").get(1) == END, timeout=30)
    assert client.served_version("hp") == 3


def test_broken_only_version_reports_error(serve: Any, tmp_path: Path) -> None:
    from gateway.errors import GatewayError

    base = tmp_path / "hp"
    publish_broken(base, 1)
    server, client = serve(base, wait=False)
    with pytest.raises(GatewayError, match="failed to load"):
        server.call(lambda s: s.wait_until_available(30), timeout=40)
    state, code, message = client.states("hp")[1]
    assert state == END and code != 0 and message
    assert client.health("hp") == health_pb2.HealthCheckResponse.NOT_SERVING


def test_concurrent_predict_during_swap_has_no_failures(
    serve: Any, hp2: Path, tmp_path: Path
) -> None:
    base = tmp_path / "hp"
    publish(hp2, base, 1)
    _, client = serve(base)
    stop = threading.Event()
    versions: Counter[int] = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(20_000):  # bounded; normally ends via ``stop``
            if stop.is_set():
                return
            try:
                version = client.served_version("hp")
            except grpc.RpcError as exc:
                with lock:
                    failures.append(f"{exc.code()}: {exc.details()}")
                continue
            with lock:
                versions[version] += 1

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: versions[1] >= 20, timeout=30)
        publish(hp2, base, 2)
        wait_for(lambda: client.state_of("hp") == {2: AVAILABLE, 1: END}, timeout=30)
        seen = versions[2]
        wait_for(lambda: versions[2] >= seen + 20, timeout=30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    assert versions[1] > 0 and versions[2] > 0


def test_reload_config_policies_and_labels(serve: Any, hp2: Path, tmp_path: Path) -> None:
    base = tmp_path / "hp"
    publish(hp2, base, 1)
    publish(hp2, base, 2)
    _, client = serve(config_text(base))
    assert client.state_of("hp") == {2: AVAILABLE}

    response = client.reload(config_text(base, "model_version_policy { all {} }"))
    assert response.status.error_code == 0
    assert client.state_of("hp") == {2: AVAILABLE, 1: AVAILABLE}
    assert client.predict("hp", version=1).model_spec.version.value == 1
    assert client.served_version("hp") == 2

    labels = 'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 }'
    client.reload(config_text(base, "model_version_policy { all {} } " + labels))
    assert client.predict("hp", label="stable").model_spec.version.value == 1
    assert client.predict("hp", label="canary").model_spec.version.value == 2
    error = rpc_error(client.predict, "hp", label="beta")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Unrecognized servable version label: beta"

    specific = (
        "model_version_policy { specific { versions: 1 } } "
        'version_labels { key: "stable" value: 1 }'
    )
    client.reload(config_text(base, specific))
    assert client.state_of("hp") == {2: END, 1: AVAILABLE}
    assert client.served_version("hp") == 1
    error = rpc_error(client.predict, "hp", version=2)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Servable not found for request: Specific(hp, 2)"

    client.reload(config_text(base, "model_version_policy { latest { num_versions: 2 } }"))
    assert client.state_of("hp") == {2: AVAILABLE, 1: AVAILABLE}


def test_reload_config_adds_and_removes_models(
    serve: Any, hp2: Path, model_base: Path, tmp_path: Path
) -> None:
    base = tmp_path / "hp"
    publish(hp2, base, 1)
    _, client = serve(config_text(base))
    client.reload(config_text(model_base / "multi", name="other"))
    error = rpc_error(client.predict, "hp")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert client.health("hp") == health_pb2.HealthCheckResponse.NOT_SERVING
    assert client.health("other") == health_pb2.HealthCheckResponse.SERVING
    assert client.state_of("other") == {1: AVAILABLE}


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ('custom_model_config { type_url: "x" }', "Only ModelConfigList"),
        (
            'model_config_list { config { name: "a" base_path: "/x" model_platform: "pytorch" } }',
            "unsupported model_platform",
        ),
        ('model_config_list { config { name: "../a" base_path: "/x" } }', "invalid model name"),
        (
            'model_config_list { config { name: "missing" base_path: "/nonexistent/x" } }',
            "Some models did not become available: {missing}",
        ),
    ],
    ids=["custom", "platform", "name", "unavailable"],
)
def test_reload_config_errors(
    serve: Any, hp2: Path, tmp_path: Path, config: str, fragment: str
) -> None:
    base = tmp_path / "hp"
    publish(hp2, base, 1)
    _, client = serve(config_text(base))
    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(config, request.config)
    error = rpc_error(client.model_stub.HandleReloadConfigRequest, request, timeout=60)
    assert fragment in error.details()
    unavailable = "did not become" in fragment
    expected = grpc.StatusCode.UNKNOWN if unavailable else grpc.StatusCode.INVALID_ARGUMENT
    assert error.code() == expected


def test_savedmodel_directory_is_version_1(serve: Any, model_base: Path) -> None:
    _, client = serve(model_base / "half_plus_two" / "1")
    assert client.state_of("hp") == {1: AVAILABLE}
    assert client.served_version("hp") == 1


def write_warmup(version_dir: Path, x: Any, alias: str = "x") -> None:
    log = prediction_log_pb2.PredictionLog()
    request = log.predict_log.request
    request.model_spec.name = "hp"
    request.inputs[alias].CopyFrom(tf.make_tensor_proto(np.asarray(x, np.float32)))
    target = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(target)) as writer:
        for _ in range(3):
            writer.write(log.SerializeToString())


def test_warmup_records_are_replayed_before_available(
    serve: Any, hp2: Path, tmp_path: Path
) -> None:
    base = tmp_path / "hp"
    staging = tmp_path / "staging"
    shutil.copytree(hp2, staging / "good")
    write_warmup(staging / "good", [1.0, 2.0])
    shutil.copytree(hp2, staging / "bad")
    write_warmup(staging / "bad", [1.0], alias="wrong")
    publish(staging / "good", base, 1)
    _, client = serve(base)
    assert client.state_of("hp") == {1: AVAILABLE}
    publish(staging / "bad", base, 2)
    wait_for(lambda: client.state_of("hp").get(2) == END, timeout=30)
    _, code, message = client.states("hp")[2]
    assert code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert message.startswith("Warmup request 0 failed:") and "wrong" in message
    assert client.served_version("hp") == 1


def test_max_message_size_is_enforced(serve: Any, hp2: Path, tmp_path: Path) -> None:
    base = tmp_path / "hp"
    publish(hp2, base, 1)
    limit = 1 << 20
    big = {"grpc.max_send_message_length": 8 << 20, "grpc.max_receive_message_length": 8 << 20}
    _, client = serve(base, max_message_bytes=limit, client_options=big)
    fits = np.ones((limit - 4096) // 4, np.float32)
    response = client.predict("hp", fits)
    assert tf.make_ndarray(response.outputs["y"]).shape == fits.shape
    error = rpc_error(client.predict, "hp", np.ones(limit // 4 + 1024))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
