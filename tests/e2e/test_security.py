"""Security: bearer auth on every route but health, CORS allow-list, body limits enforced
while streaming, gzip bombs, hostile names in both servers, publish and symlinks.

Real processes: ``tfgw gateway`` subprocesses in front of the shared ``tfgw modelserver``
(``support.servers``); the model server is also called directly over gRPC.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from support.paths import REPO_ROOT
from support.processes import GatewayProcess, build_request, http_json, raw_http
from support.servers import MODEL_NAMES

TOKENS = ("s3cret-token-alpha-9f8e7d", "s3cret-token-beta-1a2b3c")
WRONG = "wrong-token-0000-should-not-log"
GOOD_ORIGIN = "https://app.example.com"
EVIL_ORIGIN = "https://evil.example.net"
LIMIT = 1 << 20

PREDICT = b'{"instances": [1.0, 2.0]}'
EXAMPLES = b'{"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]}'
# (method, path, body, status with a valid token)
ROUTES = [
    ("POST", "/v1/models/half_plus_two:predict", PREDICT, 200),
    ("POST", "/v1/models/half_plus_two/versions/1:predict", PREDICT, 200),
    ("POST", "/v1/models/classify_regress:regress", EXAMPLES, 200),
    ("POST", "/v1/models/classify_regress:classify",
     b'{"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}]}', 200),
    ("GET", "/v1/models/half_plus_two", b"", 200),
    ("GET", "/v1/models/half_plus_two/versions/1", b"", 200),
    ("GET", "/v1/models/half_plus_two/metadata", b"", 200),
    ("POST", "/v1/projects/p/models/half_plus_two:predict", PREDICT, 200),
    ("POST", "/serving_default/predict", PREDICT, 200),
    ("GET", "/metrics", b"", 200),
    ("GET", "/openapi.json", b"", 200),
    ("GET", "/docs", b"", 200),
    ("GET", "/", b"", 200),
    ("GET", "/no/such/route", b"", 404),
    ("PUT", "/v1/models/half_plus_two:predict", PREDICT, 405),
]


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "tokens"
    path.write_text(f"# gateway tokens\n{TOKENS[0]}\n\n{TOKENS[1]}\n")
    return path


@pytest.fixture(scope="module")
def secured(modelserver_port: int, token_file: Path) -> Iterator[GatewayProcess]:
    env = {"TFGW_MAX_BODY_BYTES": str(LIMIT), "TFGW_MAX_DECOMPRESSED_BYTES": str(2 * LIMIT)}
    args = ["--token-file", str(token_file), "--cors-origin", GOOD_ORIGIN]
    with GatewayProcess(f"127.0.0.1:{modelserver_port}", MODEL_NAMES,
                        default_model="half_plus_two", args=args, env=env) as process:
        yield process


def _call(gateway: GatewayProcess, method: str, path: str, body: bytes,
          headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    answer = raw_http(gateway.port, build_request(
        method, path, body=body, headers={"Content-Type": "application/json", **headers}))
    return answer.status, answer.headers, answer.body


def _error(body: bytes) -> str:
    error = json.loads(body)["error"]
    assert isinstance(error, str) and error
    return error


@pytest.mark.parametrize(("method", "path", "body", "ok"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_auth_on_every_route(secured: GatewayProcess, method: str, path: str, body: bytes,
                             ok: int) -> None:
    status, headers, payload = _call(secured, method, path, body, {})
    assert status == 401 and headers.get("WWW-Authenticate") == "Bearer"
    _error(payload)
    for header in (f"Basic {TOKENS[0]}", "Bearer", "Bearer  ", TOKENS[0]):
        status, _, payload = _call(secured, method, path, body, {"Authorization": header})
        assert status == 401, header
    for wrong in (WRONG, TOKENS[0][:-1], TOKENS[0] + "x", TOKENS[0].upper()):
        status, _, payload = _call(secured, method, path, body,
                                   {"Authorization": f"Bearer {wrong}"})
        assert status == 403, wrong
        _error(payload)
    for token in TOKENS:
        status, _, payload = _call(secured, method, path, body,
                                   {"Authorization": f"bearer {token}"})
        assert status == ok, payload[:300]


def test_health_is_public_and_tokens_never_logged(secured: GatewayProcess) -> None:
    for path in ("/healthz", "/readyz"):
        status, _, payload = _call(secured, "GET", path, b"", {})
        assert status == 200, payload
    for token in (*TOKENS, WRONG):
        _call(secured, "POST", "/v1/models/half_plus_two:predict", PREDICT,
              {"Authorization": f"Bearer {token}"})
    _call(secured, "GET", "/no/such/route", b"", {"Authorization": f"Bearer {WRONG}"})
    time.sleep(0.3)
    log = secured.log()
    assert "/v1/models/half_plus_two:predict" in log  # the access log is on
    for secret in (*TOKENS, WRONG):
        assert secret not in log


def test_cors_only_for_configured_origins(secured: GatewayProcess) -> None:
    auth = {"Authorization": f"Bearer {TOKENS[0]}"}
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "Content-Type, Authorization"}
    status, headers, _ = _call(secured, "OPTIONS", "/v1/models/half_plus_two:predict", b"",
                               {"Origin": GOOD_ORIGIN, **preflight})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == GOOD_ORIGIN
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    status, headers, payload = _call(secured, "OPTIONS", "/v1/models/half_plus_two:predict",
                                     b"", {"Origin": EVIL_ORIGIN, **preflight})
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    _error(payload)
    for origin, allowed in ((GOOD_ORIGIN, True), (EVIL_ORIGIN, False), ("null", False),
                            (GOOD_ORIGIN + ".evil.net", False), ("http://app.example.com", False)):
        status, headers, _ = _call(secured, "POST", "/v1/models/half_plus_two:predict", PREDICT,
                                   {"Origin": origin, **auth})
        assert status == 200
        assert headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)


def test_no_cors_headers_when_not_configured(modelserver_port: int) -> None:
    with GatewayProcess(f"127.0.0.1:{modelserver_port}", ["half_plus_two"]) as gateway:
        answer = http_json(gateway.url + "/v1/models/half_plus_two:predict",
                           {"instances": [1.0]}, headers={"Origin": GOOD_ORIGIN})
        assert answer.status == 200 and "Access-Control-Allow-Origin" not in answer.headers


def _read_answer(sock: socket.socket) -> tuple[int, bytes]:
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


def test_declared_length_over_limit_refused_before_body(secured: GatewayProcess) -> None:
    """Content-Length of 1 GiB, 10 bytes sent: the 413 comes without waiting for the rest."""
    request = build_request("POST", "/v1/models/half_plus_two:predict", body=b'{"instance',
                            headers={"Authorization": f"Bearer {TOKENS[0]}",
                                     "Content-Length": str(1 << 30)})
    with socket.create_connection(("127.0.0.1", secured.port), timeout=10) as sock:
        sock.sendall(request)
        status, rest = _read_answer(sock)
    assert status == 413
    assert "exceeds" in rest.decode()


def test_chunked_stream_cut_off_at_limit(secured: GatewayProcess) -> None:
    """A slow chunked upload of 64 MiB gets its 413 once 1 MiB has arrived."""
    rss_before = secured.rss()
    head = build_request("POST", "/v1/models/half_plus_two:predict",
                         headers={"Authorization": f"Bearer {TOKENS[0]}",
                                  "Transfer-Encoding": "chunked"}, content_length=False)
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"[1.0," * (64 * 1024 // 5) + b"1.0]"[:64 * 1024 % 5])
    sent = 0
    with socket.create_connection(("127.0.0.1", secured.port), timeout=10) as sock:
        sock.sendall(head)
        answered = False
        for _ in range(1024):  # at most 64 MiB
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                answered = True
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                answered = True
                break
            sent += 64 * 1024
            time.sleep(0.002)
        assert answered, f"no answer after {sent} bytes"
        status, _ = _read_answer(sock)
    assert status == 413
    assert sent < 8 * LIMIT  # cut off near the 1 MiB limit, not at the end of the stream
    assert secured.rss() - rss_before < 16 << 20
    assert secured.healthy()


def _gzip_of_zeros(size: int) -> bytes:
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [deflater.compress(block) for _ in range(size >> 20)]
    return b"".join(parts) + deflater.flush()


def test_gzip_bomb_refused_by_inflated_size(secured: GatewayProcess) -> None:
    bomb = _gzip_of_zeros(512 << 20)  # 512 MiB of zeros in ~0.5 MiB
    assert len(bomb) < LIMIT
    rss_before = secured.rss()
    status, _, payload = _call(secured, "POST", "/v1/models/half_plus_two:predict", bomb,
                               {"Authorization": f"Bearer {TOKENS[0]}",
                                "Content-Encoding": "gzip"})
    assert status == 413 and "decompressed" in _error(payload)
    assert secured.rss() - rss_before < 16 << 20
    small = zlib.compress(PREDICT, wbits=16 + zlib.MAX_WBITS)  # a real gzip body still works
    status, _, payload = _call(secured, "POST", "/v1/models/half_plus_two:predict", small,
                               {"Authorization": f"Bearer {TOKENS[0]}",
                                "Content-Encoding": "gzip"})
    assert status == 200, payload


HOSTILE = ["..", "../mnist", "mnist/../mnist", "/etc/passwd", "mnist\x00", "./mnist",
           "..\\..\\mnist", "mnist/1", "%2e%2e", "a" * 5000, ""]


def test_model_server_never_resolves_hostile_names(modelserver_port: int,
                                                   model_base: Path) -> None:
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    (model_base.parent / "outside").mkdir(exist_ok=True)
    with grpc.insecure_channel(f"127.0.0.1:{modelserver_port}") as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        for name in [*HOSTILE, str(model_base / "mnist"), "../outside"]:
            calls = [
                lambda n=name: models.GetModelStatus(
                    get_model_status_pb2.GetModelStatusRequest(model_spec={"name": n}),
                    timeout=10),
                lambda n=name: predict.GetModelMetadata(
                    get_model_metadata_pb2.GetModelMetadataRequest(
                        model_spec={"name": n}, metadata_field=["signature_def"]), timeout=10),
                lambda n=name: predict.Predict(
                    predict_pb2.PredictRequest(model_spec={"name": n}), timeout=10),
            ]
            for call in calls:
                with pytest.raises(grpc.RpcError) as info:
                    call()
                assert info.value.code() in (grpc.StatusCode.NOT_FOUND,
                                             grpc.StatusCode.INVALID_ARGUMENT), name
        status = models.GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "mnist"}), timeout=10)
        assert [s.version for s in status.model_version_status] == [1]


def test_gateway_never_forwards_hostile_names(secured: GatewayProcess) -> None:
    auth = {"Authorization": f"Bearer {TOKENS[0]}"}
    for name in ("..", "%2e%2e", "..%2Fmnist", "mnist%2F..%2Fmnist", "%00", ".mnist",
                 "mnist%00", "%5C..%5Cmnist", "a" * 300):
        for method, suffix, body in (("POST", ":predict", PREDICT), ("GET", "", b""),
                                     ("GET", "/metadata", b"")):
            status, _, payload = _call(secured, method, f"/v1/models/{name}{suffix}", body, auth)
            assert status in (400, 404), (name, suffix, status)
            _error(payload)


def _publish(src: Path, base: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "gateway", "publish", str(src), str(base),
                           "--no-validate", "--quiet"], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=120)


def test_publish_refuses_symlinks_leaving_the_export(model_base: Path,
                                                     tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (tmp_path / "secret_dir").mkdir()
    links = {
        "assets/abs_file": secret,
        "assets/rel_escape": Path("../../secret.txt"),
        "assets/dir_link": tmp_path / "secret_dir",
        "variables/passwd": Path("/etc/passwd"),
        "assets/dangling": tmp_path / "missing",
    }
    base = tmp_path / "models" / "victim"
    for index, (where, target) in enumerate(links.items()):
        export = tmp_path / f"export{index}"
        shutil.copytree(model_base / "half_plus_two" / "1", export)
        (export / where).parent.mkdir(parents=True, exist_ok=True)
        (export / where).symlink_to(target)
        result = _publish(export, base)
        assert result.returncode != 0, where
        assert "symlink" in result.stderr, result.stderr
        assert not base.exists() or not [n for n in os.listdir(base) if not n.startswith(".")]
    inside = tmp_path / "export_ok"
    shutil.copytree(model_base / "half_plus_two" / "1", inside)
    (inside / "assets").mkdir(exist_ok=True)
    (inside / "assets" / "copy.pb").symlink_to(inside / "saved_model.pb")
    result = _publish(inside, base)
    assert result.returncode == 0, result.stderr
    copied = base / "1" / "assets" / "copy.pb"
    assert not copied.is_symlink()
    assert copied.read_bytes() == (inside / "saved_model.pb").read_bytes()
