"""The browsable docs: ``GET /`` and ``GET /docs`` (HTML), ``GET /openapi.json``.

Like tfdeploy's ``serve_savedmodel(browse = TRUE)`` page: a short intro per model (its
signatures, dtypes, shapes and a ready-to-paste curl line, with a button that sends the
example) above Swagger UI. Everything is served by the gateway itself: Swagger UI's assets
come from the ``swagger_ui_bundle`` package, ours from ``gateway/http/static`` — no CDN, so the
page works offline. Model and signature names are user data and are always HTML-escaped.
"""

from __future__ import annotations

import html
import json
import shlex
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from gateway.codec.samples import example_request
from gateway.errors import GatewayError
from gateway.http.keys import ROUTE_KEY
from gateway.http.openapi import build_openapi, predict_path, public_signatures
from gateway.http.schemas import shape_text
from gateway.signatures import Signature, TensorSpec
from gateway.types import ModelEntry

__all__ = ["OPENAPI_PATH", "STATIC_PREFIX", "SWAGGER_PREFIX", "docs_routes"]

OPENAPI_PATH = "/openapi.json"
STATIC_PREFIX = "/docs/static"
SWAGGER_PREFIX = "/docs/swagger-ui"
_STATIC_DIR = Path(__file__).resolve().parent / "static"
# Swagger UI renders with inline styles; everything else comes from this origin only.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)

LoadModels = Callable[[], Awaitable[Sequence[ModelEntry]]]


def _swagger_dir() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _tensor_rows(specs: Mapping[str, TensorSpec]) -> str:
    rows = [
        f"<tr><td><code>{_esc(s.alias)}</code></td><td>{_esc(s.dtype_name)}</td>"
        f"<td>{_esc(shape_text(s))}</td></tr>"
        for s in specs.values()
    ]
    return "".join(rows) or '<tr><td colspan="3">none</td></tr>'


def _curl(base_url: str, path: str, body: str) -> str:
    return (
        f"curl -s -X POST -H 'Content-Type: application/json' "
        f"-d {shlex.quote(body)} {shlex.quote(base_url + path)}"
    )


def _tfdeploy_curl(sig: Signature, base_url: str) -> str:
    path = f"/{quote(sig.name, safe='')}/predict"
    body = json.dumps(example_request(sig, name_in_body=False), separators=(",", ":"))
    return f'\n  <pre class="tfgw-curl tfgw-tfdeploy">{_esc(_curl(base_url, path, body))}</pre>'


def _signature_html(model: ModelEntry, sig: Signature, base_url: str, default: bool) -> str:
    path = predict_path(model.name)
    body = json.dumps(example_request(sig), separators=(",", ":"))
    tfdeploy = _tfdeploy_curl(sig, base_url) if default else ""
    return f"""
<section class="tfgw-signature" data-model="{_esc(model.name)}" data-signature="{_esc(sig.name)}">
  <h3>Signature <code>{_esc(sig.name)}</code> <small>{_esc(sig.method_name)}</small></h3>
  <div class="tfgw-tensors">
    <table><caption>Inputs</caption><tr><th>alias</th><th>dtype</th><th>shape</th></tr>
      {_tensor_rows(sig.inputs)}</table>
    <table><caption>Outputs</caption><tr><th>alias</th><th>dtype</th><th>shape</th></tr>
      {_tensor_rows(sig.outputs)}</table>
  </div>
  <p>Example: <code>POST {_esc(path)}</code></p>
  <pre class="tfgw-body">{_esc(body)}</pre>
  <pre class="tfgw-curl">{_esc(_curl(base_url, path, body))}</pre>{tfdeploy}
  <button type="button" class="tfgw-send" data-path="{_esc(path)}">Send example</button>
  <pre class="tfgw-result" aria-live="polite"></pre>
</section>"""


def _model_html(model: ModelEntry, default: str | None, base_url: str) -> str:
    version = "unknown" if model.version is None else str(model.version)
    note = ""
    if model.name == default:
        note = (
            ' <span class="tfgw-default">default model: also at '
            "<code>POST /{signature}/predict</code> (tfdeploy)</span>"
        )
    sigs = "".join(
        _signature_html(model, s, base_url, model.name == default) for s in public_signatures(model)
    )
    return f"""
<article class="tfgw-model" data-model="{_esc(model.name)}">
  <h2>Model <code>{_esc(model.name)}</code> <small>version {_esc(version)}</small>{note}</h2>
  {sigs or "<p>No signatures.</p>"}
</article>"""


def _page(models: Sequence[ModelEntry], default: str | None, base_url: str, error: str) -> str:
    if error:
        intro = f'<p class="tfgw-error">Models unavailable: {_esc(error)}</p>'
    elif not models:
        intro = "<p>No models are loaded yet.</p>"
    else:
        intro = "".join(_model_html(m, default, base_url) for m in models)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>tfserving-gateway</title>
  <link rel="icon" type="image/png" href="{SWAGGER_PREFIX}/favicon-32x32.png">
  <link rel="stylesheet" href="{SWAGGER_PREFIX}/swagger-ui.css">
  <link rel="stylesheet" href="{STATIC_PREFIX}/docs.css">
</head>
<body data-openapi="{OPENAPI_PATH}">
  <header class="tfgw-header">
    <h1>tfserving-gateway</h1>
    <p>TF Serving REST, CloudML and tfdeploy predict APIs.
      <a href="{OPENAPI_PATH}">openapi.json</a> ·
      <a href="/metrics">metrics</a> · <a href="/readyz">readiness</a></p>
  </header>
  <main id="tfgw-models">{intro}</main>
  <div id="swagger-ui"></div>
  <script src="{SWAGGER_PREFIX}/swagger-ui-bundle.js"></script>
  <script src="{STATIC_PREFIX}/docs.js"></script>
</body>
</html>
"""


def docs_routes(
    load_models: LoadModels, default_model: Callable[[], str | None]
) -> list[web.AbstractRouteDef]:
    """Routes for the docs page, ``/openapi.json`` and the offline static assets.

    ``load_models`` is called on every request (the service caches metadata); a
    ``GatewayError`` from it becomes a JSON ``{"error": ...}`` for ``/openapi.json`` and a
    banner on the HTML page, both with the error's HTTP status.
    """

    async def page(request: web.Request) -> web.Response:
        request[ROUTE_KEY] = "docs"
        error, status, models = "", 200, []
        try:
            models = list(await load_models())
        except GatewayError as exc:
            error, status = exc.message, exc.http_status
        base_url = f"{request.scheme}://{request.host}"
        text = _page(models, default_model(), base_url, error)
        headers = {"Content-Security-Policy": _CSP, "Cache-Control": "no-store"}
        return web.Response(text=text, status=status, content_type="text/html", headers=headers)

    async def openapi(request: web.Request) -> web.Response:
        request[ROUTE_KEY] = "openapi"
        try:
            models = await load_models()
        except GatewayError as exc:
            return web.json_response({"error": exc.message}, status=exc.http_status)
        document = build_openapi(models, default_model=default_model())
        return web.json_response(document, headers={"Cache-Control": "no-store"})

    return [
        web.get("/", page),
        web.get("/docs", page),
        web.get(OPENAPI_PATH, openapi),
        web.static(SWAGGER_PREFIX, _swagger_dir()),
        web.static(STATIC_PREFIX, _STATIC_DIR),
    ]
