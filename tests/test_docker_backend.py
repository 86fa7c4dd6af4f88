"""``gateway.docker_backend``: the TF Serving container spec, the health check, the errors.

The spec tests and the health check (against a real gRPC server built on the official
``tensorflow_serving.apis`` servicer) always run. The end-to-end test against a real
Docker engine runs only where one answers a ping; this machine has none.
"""

from __future__ import annotations

import io
import json
import re
import socketserver
import tarfile
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import text_format
from support.net import free_port
from support.paths import REPO_ROOT

from gateway import docker_backend
from gateway.docker_backend import (
    TFSERVING_IMAGE,
    ContainerFailed,
    DockerTFServing,
    DockerUnavailable,
    container_spec,
    model_status_problem,
)
from gateway.errors import BackendUnavailable, InvalidInput

BATCHING = REPO_ROOT / "deploy" / "tf_serving" / "batching_parameters.txt"


def _savedmodel(path: Path) -> Path:
    """A directory that looks like a SavedModel to the spec builder (it only checks files)."""
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"\x08\x01")
    return path


@pytest.fixture
def base_path(tmp_path: Path) -> Path:
    base = tmp_path / "models" / "digits"
    _savedmodel(base / "1")
    _savedmodel(base / "2")
    return base


# --- single model ------------------------------------------------------------------


def test_base_path_is_mounted_read_only_and_named_after_its_directory(base_path: Path) -> None:
    spec = container_spec(base_path)
    assert spec["image"] == TFSERVING_IMAGE
    assert spec["volumes"] == {str(base_path): {"bind": "/models/digits", "mode": "ro"}}
    assert spec["command"] == [
        "--port=8500",
        "--rest_api_port=8501",
        "--model_name=digits",
        "--model_base_path=/models/digits",
    ]
    assert spec["ports"] == {"8500/tcp": ("127.0.0.1", 8500)}
    assert spec["models"] == ["digits"]
    assert spec["files"] == {}
    assert spec["labels"]["org.tfserving-gateway.models"] == "digits"


def test_savedmodel_dir_is_served_as_version_1_under_its_own_name(tmp_path: Path) -> None:
    export = _savedmodel(tmp_path / "export" / "mnist")
    spec = container_spec(export)
    assert spec["volumes"] == {str(export): {"bind": "/models/mnist/1", "mode": "ro"}}
    assert "--model_base_path=/models/mnist" in spec["command"]
    assert spec["models"] == ["mnist"]


def test_numbered_savedmodel_dir_keeps_its_version_and_parent_name(base_path: Path) -> None:
    spec = container_spec(base_path / "2")
    assert spec["volumes"] == {str(base_path / "2"): {"bind": "/models/digits/2", "mode": "ro"}}
    assert "--model_name=digits" in spec["command"]


def test_model_name_override_and_ports(base_path: Path) -> None:
    spec = container_spec(
        base_path, model_name="mnist", grpc_port=0, rest_port=9501, host="0.0.0.0"
    )
    assert spec["volumes"][str(base_path)]["bind"] == "/models/mnist"
    assert "--model_name=mnist" in spec["command"]
    # Port 0: Docker picks the host port (docker-py turns None into an empty HostPort).
    assert spec["ports"] == {"8500/tcp": ("0.0.0.0", None), "8501/tcp": ("0.0.0.0", 9501)}


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "-x"])
def test_unsafe_model_name_is_refused(base_path: Path, name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid model name"):
        container_spec(base_path, model_name=name)


def test_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is not a directory"):
        container_spec(tmp_path / "nope")


def test_path_and_config_are_exclusive(base_path: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"either a model PATH or a models\.config"):
        container_spec(base_path, model_config_file=tmp_path / "models.config")
    with pytest.raises(InvalidInput, match=r"either a model PATH or a models\.config"):
        container_spec()


# --- models.config -----------------------------------------------------------------


def _write_config(tmp_path: Path, other_base: Path) -> Path:
    config = tmp_path / "models.config"
    config.write_text(
        f"""
        model_config_list {{
          config {{
            name: "digits"
            base_path: "models/digits"
            model_platform: "tensorflow"
            model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
            version_labels {{ key: "stable" value: 1 }}
          }}
          config {{ name: "mtcars" base_path: "{other_base}" model_platform: "tensorflow" }}
        }}
        """
    )
    return config


def test_models_config_base_paths_are_mounted_and_rewritten(
    base_path: Path, tmp_path: Path
) -> None:
    from tensorflow_serving.config import model_server_config_pb2 as official

    other = tmp_path / "elsewhere" / "mtcars"
    _savedmodel(other / "7")
    spec = container_spec(model_config_file=_write_config(tmp_path, other))
    assert spec["models"] == ["digits", "mtcars"]
    assert spec["volumes"] == {
        str(base_path): {"bind": "/models/digits", "mode": "ro"},
        str(other): {"bind": "/models/mtcars", "mode": "ro"},
    }
    assert "--model_config_file=/tfgw/models.config" in spec["command"]
    assert not any(flag.startswith("--model_name") for flag in spec["command"])
    # The rewritten file is what the real server parses: check it with the official proto.
    config = text_format.Parse(spec["files"]["/tfgw/models.config"], official.ModelServerConfig())
    digits, mtcars = config.model_config_list.config
    assert (digits.name, digits.base_path) == ("digits", "/models/digits")
    assert list(digits.model_version_policy.specific.versions) == [1, 2]
    assert dict(digits.version_labels) == {"stable": 1}
    assert (mtcars.name, mtcars.base_path) == ("mtcars", "/models/mtcars")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_config_list { config { name: 'x' base_path: 'nope' } }", "not a directory"),
        ("model_config_list { config { nme: 'x' } }", "invalid ModelServerConfig"),
        ("", "has no model_config_list"),
        ("model_config_list { }", "lists no models"),
        (
            "model_config_list { config { name: 'a' base_path: 'models/digits' }"
            " config { name: 'a' base_path: 'models/digits' } }",
            "configured twice",
        ),
        ("model_config_list { config { name: '..' base_path: 'models' } }", "invalid model"),
    ],
)
def test_bad_models_config_is_refused(
    base_path: Path, tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "models.config"
    config.write_text(text)
    with pytest.raises(InvalidInput, match=message):
        container_spec(model_config_file=config)


def test_models_config_with_model_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="drop the model name"):
        container_spec(model_config_file=tmp_path / "models.config", model_name="x")


# --- batching ----------------------------------------------------------------------


def test_batching_parameters_are_copied_in_and_enabled(base_path: Path) -> None:
    spec = container_spec(base_path, batching_parameters_file=BATCHING)
    assert spec["files"] == {"/tfgw/batching_parameters.txt": BATCHING.read_text()}
    assert "--enable_batching=true" in spec["command"]
    assert "--batching_parameters_file=/tfgw/batching_parameters.txt" in spec["command"]


def test_invalid_batching_parameters_are_refused(base_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "batching.txt"
    bad.write_text("max_batch_size: 32\n")  # a wrapper message, not a scalar
    with pytest.raises(InvalidInput, match="cannot read batching parameters"):
        container_spec(base_path, batching_parameters_file=bad)


def test_files_archive_unpacks_at_absolute_paths() -> None:
    files = {"/tfgw/models.config": "model_config_list {}\n", "/tfgw/b.txt": "x"}
    with tarfile.open(fileobj=io.BytesIO(docker_backend._tar(files))) as tar:
        assert tar.getmember("tfgw").isdir()
        for path, text in files.items():
            member = tar.extractfile(path.lstrip("/"))
            assert member is not None and member.read().decode() == text


# --- no engine ---------------------------------------------------------------------


def test_unreachable_engine_is_a_one_line_backend_error(
    base_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-docker.sock'}")
    server = DockerTFServing(container_spec(base_path))
    with pytest.raises(DockerUnavailable) as caught:
        server.start()
    message = str(caught.value)
    assert message.startswith("Docker engine not reachable: ")
    assert "\n" not in message
    assert isinstance(caught.value, BackendUnavailable)
    assert caught.value.http_status == 503
    server.stop()  # nothing started: still safe


# --- health check against a real gRPC ModelService ----------------------------------


@pytest.fixture
def status_server() -> Iterator[tuple[str, dict[str, list[int]]]]:
    """A ModelService built on the official servicer; ``states[name]`` drives answers."""
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    states: dict[str, list[int]] = {}

    class Service(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):
            if request.model_spec.name not in states:
                context.abort(grpc.StatusCode.NOT_FOUND, "Could not find any versions")
            response = get_model_status_pb2.GetModelStatusResponse()
            for version, state in enumerate(states[request.model_spec.name], start=1):
                response.model_version_status.add(version=version, state=state)
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", states
    finally:
        server.stop(grace=None)


def test_health_check_waits_for_every_model_to_be_available(status_server) -> None:
    target, states = status_server
    states["digits"] = [30]  # AVAILABLE
    states["mtcars"] = [20]  # LOADING
    assert model_status_problem(target, ["digits"], timeout=5) is None
    problem = model_status_problem(target, ["digits", "mtcars"], timeout=5)
    assert problem == "model 'mtcars' has no AVAILABLE version (states: ['LOADING'])"
    states["mtcars"] = [50, 30]  # END, AVAILABLE: a newer version took over
    assert model_status_problem(target, ["digits", "mtcars"], timeout=5) is None


def test_health_check_reports_unknown_model_and_dead_server(status_server) -> None:
    target, _ = status_server
    problem = model_status_problem(target, ["ghost"], timeout=5)
    assert problem == "model 'ghost': NOT_FOUND: Could not find any versions"
    problem = model_status_problem(f"127.0.0.1:{free_port()}", ["digits"], timeout=10)
    assert problem is not None and problem.startswith("model 'digits': UNAVAILABLE")


# --- the Docker SDK against a stand-in Engine API on a unix socket -----------------


class _Engine:
    """State and request log of the stand-in Docker Engine (a subset of API v1.45)."""

    def __init__(self) -> None:
        self.image_present = False
        self.start_error: str | None = None
        self.status = "running"
        self.grpc_port = 0
        self.requests: list[tuple[str, str, bytes]] = []
        self.created: dict[str, Any] = {}

    def inspect(self) -> dict[str, Any]:
        binding = [{"HostIp": "127.0.0.1", "HostPort": str(self.grpc_port)}]
        return {
            "Id": "c0ffee" * 8,
            "Name": "/tfserving",
            "State": {"Status": self.status},
            "Config": {"Tty": False, "Labels": self.created.get("Labels", {})},
            "NetworkSettings": {"Ports": {"8500/tcp": binding}},
        }

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, bytes, str]:
        self.requests.append((method, path, body))
        route = _route(path)
        cid = "c0ffee" * 8
        as_json = "application/json"
        if route == "/version":
            return 200, json.dumps({"ApiVersion": "1.45", "Version": "stand-in"}).encode(), as_json
        if route == "/_ping":
            return 200, b"OK", "text/plain"
        if route == "/containers/create":
            if not self.image_present:
                return 404, b'{"message": "No such image: tensorflow/serving:2.19.1"}', as_json
            self.created = json.loads(body)
            return 201, json.dumps({"Id": cid, "Warnings": []}).encode(), as_json
        if route == "/images/create":
            self.image_present = True
            return 200, b'{"status": "Downloaded newer image"}\n', as_json
        if route.startswith("/images/"):
            return 200, b'{"Id": "sha256:0123", "RepoTags": ["tensorflow/serving:2.19.1"]}', as_json
        if route == f"/containers/{cid}/json":
            return 200, json.dumps(self.inspect()).encode(), as_json
        if route == f"/containers/{cid}/start":
            if self.start_error:
                return 500, json.dumps({"message": self.start_error}).encode(), as_json
            return 204, b"", as_json
        if route == f"/containers/{cid}/logs":
            line = b"E external/...: Failed to start server: models.config parse error\n"
            return 200, bytes([2, 0, 0, 0]) + len(line).to_bytes(4, "big") + line, "x/raw"
        if route in (f"/containers/{cid}/archive", f"/containers/{cid}"):
            return 200, b"", as_json
        return 404, json.dumps({"message": f"stand-in has no {method} {route}"}).encode(), as_json


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Engine]:
    state = _Engine()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, data, content_type = state.answer(self.command, self.path, body)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        def log_message(self, *args: object) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    sock = tmp_path / "engine.sock"
    server = Server(str(sock), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _calls(engine: _Engine) -> list[str]:
    return [f"{m} {_route(p)}" for m, p, _ in engine.requests]


def _route(path: str) -> str:
    """``/v1.45/containers/x?force=True`` → ``/containers/x``."""
    return re.sub(r"^/v[\d.]+", "", path.split("?")[0])


def test_start_pulls_creates_copies_starts_waits_and_removes(
    engine: _Engine, status_server, base_path: Path
) -> None:
    target, states = status_server
    states["digits"] = [30]
    engine.grpc_port = int(target.rsplit(":", 1)[1])  # "published" port = the status server
    spec = container_spec(base_path, grpc_port=0, batching_parameters_file=BATCHING)
    server = DockerTFServing(spec)
    server.start()
    assert server.target == target  # port 0: read back from the container's bindings
    server.wait_healthy(timeout=10)
    server.stop()

    created = engine.created
    assert created["Image"] == TFSERVING_IMAGE and created["Cmd"] == spec["command"]
    assert created["HostConfig"]["Binds"] == [f"{base_path}:/models/digits:ro"]
    assert created["HostConfig"]["PortBindings"] == {
        "8500/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]
    }
    assert created["Labels"]["org.tfserving-gateway.models"] == "digits"
    (archive,) = [b for m, p, b in engine.requests if m == "PUT" and "/archive" in p]
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        copied = tar.extractfile("tfgw/batching_parameters.txt")
        assert copied is not None and copied.read().decode() == BATCHING.read_text()
    calls = _calls(engine)
    cid = "c0ffee" * 8
    assert calls.index("POST /containers/create") < calls.index("POST /images/create")
    assert calls.index(f"PUT /containers/{cid}/archive") < calls.index(
        f"POST /containers/{cid}/start"
    )
    assert calls[-1] == f"DELETE /containers/{cid}"
    assert "force=True" in engine.requests[-1][1]


def test_failed_start_removes_the_container_and_says_why(engine: _Engine, base_path: Path) -> None:
    engine.image_present = True
    engine.start_error = "driver failed: Bind for 127.0.0.1:8500 failed:\nport is already allocated"
    server = DockerTFServing(container_spec(base_path))
    with pytest.raises(ContainerFailed) as caught:
        server.start()
    assert "port is already allocated" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert _calls(engine)[-1] == f"DELETE /containers/{'c0ffee' * 8}"


def test_exited_container_fails_the_wait_with_its_last_log_line(
    engine: _Engine, base_path: Path
) -> None:
    engine.image_present = True
    engine.grpc_port = free_port()
    server = DockerTFServing(container_spec(base_path))
    server.start()
    try:
        engine.status = "exited"
        with pytest.raises(ContainerFailed, match=r"exited: .*models\.config parse error"):
            server.wait_healthy(timeout=10)
    finally:
        server.stop()


def test_unhealthy_container_times_out_with_the_reason(
    engine: _Engine, status_server, base_path: Path
) -> None:
    target, states = status_server
    states["digits"] = [20]  # stays LOADING
    engine.image_present = True
    server = DockerTFServing(container_spec(base_path, grpc_port=int(target.rsplit(":", 1)[1])))
    server.start()
    try:
        with pytest.raises(ContainerFailed, match=r"not healthy after 1s: model 'digits'"):
            server.wait_healthy(timeout=1)
    finally:
        server.stop()


# --- a real engine (skipped here: this machine has no Docker engine) -----------------


def _engine_reachable() -> bool:
    try:
        docker_backend._connect().close()
    except DockerUnavailable:
        return False
    return True


@pytest.mark.skipif(
    not _engine_reachable(),
    reason="no Docker engine reachable: the real tensorflow/serving container test needs one",
)
def test_real_tfserving_container_serves_a_savedmodel(tmp_path: Path) -> None:
    import numpy as np
    import tensorflow as tf
    from support.models import build_half_plus_two
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    base = tmp_path / "half_plus_two"
    build_half_plus_two(base / "1")
    server = DockerTFServing(container_spec(base, grpc_port=0))
    try:
        server.start()
        server.wait_healthy(timeout=300)
        with grpc.insecure_channel(server.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "half_plus_two"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([2.0, 4.0], np.float32)))
            response = stub.Predict(request, timeout=30)
        assert tf.make_ndarray(response.outputs["y"]).tolist() == [3.0, 4.0]
        container_id = server._container.id
    finally:
        server.stop()
    client = docker_backend._connect()
    try:
        assert not client.containers.list(all=True, filters={"id": container_id})
    finally:
        client.close()
