"""Headless Chromium against a real ``tfgw serve`` (embedded model server + gateway).

The docs page must render the loaded model's signatures and Swagger UI offline, and both
the page's own "Send example" button and Swagger's "Try it out" → "Execute" must get a 200
with predictions. Uses Debian's ``/usr/bin/chromium`` through playwright (never
``playwright install``); skipped only when that browser is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.net import free_port, wait_for
from support.paths import REPO_ROOT
from support.servers import stop_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium not installed (apt-get install -y chromium)"
)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.models import build_multi_io_model

    return build_multi_io_model(tmp_path_factory.mktemp("docs-browser") / "multi")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def served(model_path: Path) -> Iterator[str]:
    """``tfgw serve PATH`` in a subprocess; yields its REST base URL."""
    port, grpc_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "gateway", "serve", str(model_path),
               "--port", str(port), "--grpc-port", str(grpc_port)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or _ready(url), timeout=180, interval=0.2)
        if process.poll() is not None:
            pytest.fail(f"tfgw serve exited {process.returncode}: {process.stdout.read()}")
        yield url
    finally:
        stop_process(process, grace=30)
        process.stdout.close()


@pytest.fixture
def page(served: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.requests = []  # type: ignore[attr-defined]
            page.problems = []  # type: ignore[attr-defined]
            page.on("request", lambda r: page.requests.append(r.url))
            page.on("pageerror", lambda e: page.problems.append(f"pageerror: {e}"))
            page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
            yield page
        finally:
            browser.close()


def _post(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_every_documented_predict_example_succeeds(served: str) -> None:
    """Each example in /openapi.json, sent to its own path, answers 200 with predictions."""
    with urllib.request.urlopen(f"{served}/openapi.json", timeout=30) as response:
        doc = json.loads(response.read())
    sent = set()
    for path, item in doc["paths"].items():
        body = item.get("post", {}).get("requestBody")
        if not body or "{label}" in path:  # no labels are configured for this model
            continue
        url = served + path.replace("{version}", "1").replace("{project}", "any-project")
        for name, example in body["content"]["application/json"]["examples"].items():
            status, answer = _post(url, example["value"])
            assert status == 200, (path, name, answer)
            assert "predictions" in answer or "outputs" in answer, (path, name, answer)
            sent.add((path, name))
    # 2 signatures x (2 TF Serving + 2 CloudML paths) + 2 tfdeploy paths
    assert len(sent) == 2 * 4 + 2, sorted(sent)


@needs_chromium
def test_docs_page_renders_models_and_sends_its_example(served: str, page: Any) -> None:
    page.goto(f"{served}/docs")
    model = page.locator('article.tfgw-model[data-model="multi"]')
    model.wait_for()
    signatures = model.locator("section.tfgw-signature")
    names = signatures.evaluate_all("els => els.map(e => e.dataset.signature)")
    assert sorted(names) == ["scale", "serving_default"]
    default = model.locator('section[data-signature="serving_default"]')
    assert "DT_INT64" in default.inner_text() and "DT_STRING" in default.inner_text()

    default.locator("button.tfgw-send").click()
    result = default.locator('pre.tfgw-result[data-status]')
    result.wait_for()
    assert result.get_attribute("data-status") == "200", result.inner_text()
    status_line, body = result.inner_text().split("\n", 1)
    assert status_line == "HTTP 200"
    prediction = json.loads(body)["predictions"][0]
    assert prediction == {"doubled": 0, "echo_bytes": {"b64": "IQ=="}, "flag": False,
                          "total": 0.0}

    scale = model.locator('section[data-signature="scale"]')
    scale.locator("button.tfgw-send").click()
    scale.locator('pre.tfgw-result[data-status="200"]').wait_for()
    assert json.loads(scale.locator("pre.tfgw-result").inner_text().split("\n", 1)[1]) == {
        "predictions": [0.0]}

    assert not page.problems, page.problems
    outside = [u for u in page.requests if not u.startswith(served)]
    assert not outside, outside


@needs_chromium
def test_swagger_try_it_out_executes_the_example(served: str, page: Any) -> None:
    page.goto(f"{served}/docs")
    operation = page.locator("#operations-multi-multi_predict")
    operation.wait_for()
    assert page.locator("#swagger-ui .opblock").count() >= 10
    assert page.locator("#operations-tfdeploy-tfdeploy_scale_predict").count() == 1
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    body = operation.locator("textarea.body-param__text")
    assert json.loads(body.input_value()) == {
        "instances": [{"a": [0.0, 0.0, 0.0], "b": 0, "c": ""}]}
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status")
    status.wait_for()
    assert status.inner_text().strip() == "200"
    answer = operation.locator(".live-responses-table .response-col_description pre").first
    assert json.loads(answer.inner_text())["predictions"][0]["total"] == 0.0

    assert not page.problems, page.problems
    outside = [u for u in page.requests if not u.startswith(served)]
    assert not outside, outside
