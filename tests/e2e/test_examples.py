"""Every file in ``examples/`` runs: the scripts as a user runs them (subprocess, defaults
that start and stop what they need), ``requests.http`` and its curl lines against a live
digits model, and ``grpc_official_stub.py --target`` as a plain TF Serving client."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.paths import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"
DEFAULT_HOST = "http://127.0.0.1:8089"
pytestmark = pytest.mark.timeout(300)


def _run_example(name: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
           "CUDA_VISIBLE_DEVICES": "", "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=REPO_ROOT,
                            env=env, capture_output=True, timeout=280)
    out = result.stdout.decode()
    assert result.returncode == 0, (out + result.stderr.decode())[-4000:]
    return out


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("keras_digits.py", ["--epochs", "5"], r"^REST and gRPC agree$"),
        ("mtcars_named_features.py", [], r"^4 cylinders / 160 cu\.in\.: \d+\.\d mpg"),
        ("core_tf_module.py", [], r"^all three agree with the formula$"),
        ("grpc_official_stub.py", [], r"^\d+/10 correct over gRPC"),
    ],
)
def test_example_script_runs_standalone(script: str, args: list[str], expected: str) -> None:
    assert re.search(expected, _run_example(script, *args), re.M)


def test_mtcars_csv_is_the_public_dataset() -> None:
    lines = (EXAMPLES / "mtcars.csv").read_text().splitlines()
    assert lines[0] == "model,mpg,cyl,disp,hp,drat,wt,qsec,vs,am,gear,carb"
    assert len(lines) == 33
    assert lines[1] == "Mazda RX4,21.0,6,160.0,110,3.9,2.62,16.46,0,1,4,4"


# -- a live digits model for requests.http and the --target client --------------------------
@dataclass
class Stack:
    rest_url: str
    grpc_target: str


@pytest.fixture(scope="module")
def digits_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    import gateway
    from gateway.demo import load_digits_split, train_digits
    from gateway.runtime import LocalStack

    workdir = tmp_path_factory.mktemp("examples_digits")
    exported = gateway.export_savedmodel(train_digits(load_digits_split(), 3),
                                         workdir / "export")
    gateway.publish(exported, workdir / "models" / "digits", progress=False)
    with LocalStack(workdir / "models" / "digits", "digits") as stack:
        yield Stack(stack.rest_url, stack.grpc_target)


def test_grpc_official_stub_against_a_target(digits_stack: Stack) -> None:
    out = _run_example("grpc_official_stub.py", "--target", digits_stack.grpc_target,
                       "--model", "digits")
    assert "model digits version 1: AVAILABLE" in out
    assert "signature serving_default: inputs {'image': 'float32'}" in out
    assert re.search(rf"^\d+/10 correct over gRPC \({re.escape(digits_stack.grpc_target)}\)",
                     out, re.M)


@dataclass
class HttpRequest:
    title: str
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    expect: int = 200
    curl: str | None = None


def _parse_http_file(path: Path) -> tuple[dict[str, str], list[HttpRequest]]:
    text = path.read_text()
    variables = dict(re.findall(r"^@(\w+)\s*=\s*(\S+)\s*$", text, re.M))
    requests = []
    for block in re.split(r"^###", text, flags=re.M)[1:]:
        lines = block.splitlines()
        title, rest = lines[0].strip(), lines[1:]
        comments = [ln[1:].strip() for ln in rest if ln.startswith("#")]
        code = [ln for ln in rest if not ln.startswith("#")]
        while code and not code[0].strip():
            code.pop(0)
        method, url = code[0].split()
        blank = next((i for i, ln in enumerate(code) if not ln.strip()), len(code))
        headers = dict(ln.split(":", 1) for ln in code[1:blank])
        body = "\n".join(code[blank:]).strip() or None
        request = HttpRequest(title, method, url, {k.strip(): v.strip() for k, v in
                                                    headers.items()}, body)
        for comment in comments:
            if comment.startswith("expect:"):
                request.expect = int(comment.split(":", 1)[1])
            elif comment.startswith("curl "):
                request.curl = comment
        requests.append(request)
    return variables, requests


def _send(method: str, url: str, headers: dict[str, str], body: str | None) -> tuple[int, bytes]:
    data = body.encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _curl_to_request(line: str, base: str) -> tuple[str, str, dict[str, str], str | None]:
    words = shlex.split(line)
    assert words[0] == "curl"
    method, headers, body, url = "GET", {}, None, None
    it = iter(words[1:])
    for word in it:
        if word == "-X":
            method = next(it)
        elif word == "-H":
            key, value = next(it).split(":", 1)
            headers[key.strip()] = value.strip()
        elif word == "-d":
            body = next(it)
        elif word.startswith("http"):
            url = word.replace(DEFAULT_HOST, base)
    assert url is not None
    return method, url, headers, body


def test_requests_http_and_curl_lines(digits_stack: Stack) -> None:
    variables, requests = _parse_http_file(EXAMPLES / "requests.http")
    assert variables["host"] == DEFAULT_HOST
    assert len(requests) >= 10
    for request in requests:
        url = request.url.replace("{{host}}", digits_stack.rest_url)
        status, answer = _send(request.method, url, request.headers, request.body)
        assert status == request.expect, (request.title, answer[:500])
        assert request.curl is not None, request.title
        c_method, c_url, c_headers, c_body = _curl_to_request(request.curl, digits_stack.rest_url)
        assert (c_method, c_url) == (request.method, url), request.title
        if request.body is not None:
            assert json.loads(c_body or "") == json.loads(request.body), request.title
        c_status, c_answer = _send(c_method, c_url, c_headers, c_body)
        assert c_status == status, request.title
        if request.method == "POST":
            assert json.loads(c_answer) == json.loads(answer), request.title
            if status != 200:
                assert set(json.loads(answer)) == {"error"}
