"""The docs routes on a bare aiohttp app: HTML page, offline assets, /openapi.json."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import validate
from support.paths import REPO_ROOT

from gateway.errors import BackendUnavailable
from gateway.http.docs import docs_routes
from gateway.pb import types_pb2 as t
from gateway.signatures import Signature, TensorSpec
from gateway.types import ModelEntry

STATIC_DIR = REPO_ROOT / "gateway" / "http" / "static"
HOSTILE_SIG = '<img src=x onerror="alert(1)">'
HOSTILE_ALIAS = "a'b</pre><script>alert(2)</script>"


def _spec(alias: str, dtype: int, shape: tuple[int, ...] | None) -> TensorSpec:
    return TensorSpec(alias=alias, name=f"{alias}:0", dtype=dtype, shape=shape)


DIGITS = ModelEntry("digits", 3, {
    "serving_default": Signature(
        "serving_default", "tensorflow/serving/predict",
        {"image": _spec("image", t.DT_FLOAT, (-1, 64))},
        {"prediction": _spec("prediction", t.DT_FLOAT, (-1, 10))}),
    HOSTILE_SIG: Signature(
        HOSTILE_SIG, "tensorflow/serving/predict",
        {HOSTILE_ALIAS: _spec(HOSTILE_ALIAS, t.DT_STRING, (-1,))},
        {"out_bytes": _spec("out_bytes", t.DT_STRING, (-1,))}),
})
MTCARS = ModelEntry("mtcars", None, {
    "serving_default": Signature(
        "serving_default", "tensorflow/serving/predict",
        {"disp": _spec("disp", t.DT_DOUBLE, (-1, 1)), "cyl": _spec("cyl", t.DT_INT64, (-1, 1))},
        {"mpg": _spec("mpg", t.DT_FLOAT, (-1, 1))}),
})


class _Assets(HTMLParser):
    """Collects every src/href and the text of <pre class=...> blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.pre: dict[str, list[str]] = {}
        self._pre: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in {"src", "href"} and v is not None]
        if tag == "pre":
            self._pre = dict(attrs).get("class") or ""
            self.pre.setdefault(self._pre, []).append("")
        if tag == "script" and self._pre is not None:
            raise AssertionError("script element inside a <pre>: escaping failed")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._pre = None

    def handle_data(self, data: str) -> None:
        if self._pre is not None:
            self.pre[self._pre][-1] += data


class _State:
    def __init__(self) -> None:
        self.models: list[ModelEntry] = [DIGITS]
        self.default: str | None = "digits"
        self.calls = 0
        self.fail = False

    async def load(self) -> list[ModelEntry]:
        self.calls += 1
        if self.fail:
            raise BackendUnavailable("backend 127.0.0.1:1 unreachable")
        return list(self.models)


@pytest.fixture
def state() -> _State:
    return _State()


@pytest.fixture
async def client(aiohttp_client: Any, state: _State) -> Any:
    app = web.Application()
    app.add_routes(docs_routes(state.load, lambda: state.default))
    return await aiohttp_client(app)


def _parse(text: str) -> _Assets:
    parser = _Assets()
    parser.feed(text)
    parser.close()
    return parser


@pytest.mark.parametrize("path", ["/", "/docs"])
async def test_page_lists_models_signatures_and_curl(client: Any, path: str) -> None:
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    text = await response.text()
    assert 'data-model="digits"' in text and "version 3" in text
    assert 'data-signature="serving_default"' in text
    assert "DT_FLOAT" in text and "[-1, 64]" in text and "[-1, 10]" in text
    assert 'id="swagger-ui"' in text and 'data-openapi="/openapi.json"' in text
    page = _parse(text)
    bodies = [json.loads(b) for b in page.pre["tfgw-body"]]
    assert {"instances": [{"image": [0.0] * 64}]} in bodies
    curl = page.pre["tfgw-curl"][0]
    host = f"http://{client.server.host}:{client.server.port}"
    assert curl.startswith("curl -s -X POST -H 'Content-Type: application/json' -d '")
    assert curl.endswith(f"{host}/v1/models/digits:predict")
    tfdeploy = page.pre["tfgw-curl tfgw-tfdeploy"]
    assert tfdeploy[0].endswith(f"{host}/serving_default/predict")
    hostile = next(c for c in tfdeploy if "signature_name" not in c and "%3Cimg" in c)
    assert hostile.endswith("/%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E/predict")


async def test_user_data_is_escaped(client: Any) -> None:
    text = await (await client.get("/")).text()
    assert HOSTILE_SIG not in text and "<script>alert(2)" not in text
    assert html.escape(HOSTILE_SIG, quote=True) in text
    page = _parse(text)  # raises if a <script> opened inside a <pre>
    bodies = [json.loads(b) for b in page.pre["tfgw-body"]]
    hostile = next(b for b in bodies if b.get("signature_name") == HOSTILE_SIG)
    assert hostile["instances"] == [{HOSTILE_ALIAS: ""}]
    assert all(u.startswith("/") for u in page.urls)


async def test_no_external_asset_urls(client: Any) -> None:
    text = await (await client.get("/docs")).text()
    page = _parse(text)
    assert page.urls, "page references its assets"
    for url in page.urls:
        assert url.startswith("/") and not url.startswith("//"), url
    external = re.findall(r"https?://[^\s\"'<>]+", text)
    assert all(re.match(r"https?://(127\.0\.0\.1|localhost)[:/]", u) for u in external), external
    for name in ("docs.js", "docs.css"):
        own = (STATIC_DIR / name).read_text()
        assert not re.search(r"https?://", own), name


async def test_every_referenced_asset_is_served(client: Any) -> None:
    page = _parse(await (await client.get("/docs")).text())
    assets = [u for u in page.urls if u.startswith("/docs/")]
    assert {"/docs/swagger-ui/swagger-ui-bundle.js", "/docs/swagger-ui/swagger-ui.css",
            "/docs/static/docs.js", "/docs/static/docs.css"} <= set(assets)
    for url in assets:
        response = await client.get(url)
        assert response.status == 200, url
        assert len(await response.read()) > 100, url
    bundle = await client.get("/docs/swagger-ui/swagger-ui-bundle.js")
    assert "javascript" in bundle.content_type
    assert "SwaggerUIBundle" in await bundle.text()


async def test_static_routes_do_not_escape_their_directory(client: Any) -> None:
    for url in ("/docs/static/../docs.py", "/docs/static/%2e%2e/docs.py",
                "/docs/swagger-ui/../../__init__.py"):
        response = await client.get(url)
        assert response.status in {403, 404}, url


async def test_openapi_json_is_rebuilt_from_load_models(client: Any, state: _State) -> None:
    first = await client.get("/openapi.json")
    assert first.status == 200
    doc = await first.json()
    validate(doc)
    assert "/v1/models/digits:predict" in doc["paths"]
    assert "/serving_default/predict" in doc["paths"]
    state.models = [DIGITS, MTCARS]
    state.default = None
    doc = await (await client.get("/openapi.json")).json()
    validate(doc)
    assert "/v1/models/mtcars:predict" in doc["paths"]
    assert "/serving_default/predict" not in doc["paths"]
    assert state.calls == 2
    page = await (await client.get("/")).text()
    assert 'data-model="mtcars"' in page and "version unknown" in page
    assert "tfgw-tfdeploy" not in page


async def test_backend_errors_become_json_and_a_banner(client: Any, state: _State) -> None:
    state.fail = True
    response = await client.get("/openapi.json")
    assert response.status == 503
    assert await response.json() == {"error": "backend 127.0.0.1:1 unreachable"}
    page = await client.get("/docs")
    assert page.status == 503
    assert "Models unavailable: backend 127.0.0.1:1 unreachable" in await page.text()


async def test_no_models_loaded(client: Any, state: _State) -> None:
    state.models = []
    text = await (await client.get("/")).text()
    assert "No models are loaded yet." in text
    doc = await (await client.get("/openapi.json")).json()
    validate(doc)
