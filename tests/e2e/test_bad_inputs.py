"""Bad-input corpus: > 300 malformed requests over every route of a real gateway process.

The gateway is ``tfgw gateway`` (subprocess) in front of the shared ``tfgw modelserver``
(``support.servers``). Cases are families × variants: the JSON table in
``tests/data/bad_inputs/table.json`` (bodies × routes) plus the generators below (deep
nesting, encodings, sizes, content types, headers, hostile names/paths, methods). Every
request must get its expected 4xx with a JSON ``{"error": "..."}`` body; the process must
answer ``/healthz`` after every family, and its RSS must come back within
``RSS_BOUND`` of the baseline taken after one warm-up pass.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from support.paths import DATA_DIR
from support.processes import GatewayProcess, HttpAnswer, build_request, raw_http
from support.servers import MODEL_NAMES

TABLE = DATA_DIR / "bad_inputs" / "table.json"
MAX_BODY = 1 << 20
MAX_INFLATED = 2 << 20
RSS_BOUND = 32 << 20  # bytes over the warmed-up baseline after the whole corpus


@dataclass
class Case:
    family: str
    method: str
    path: str | bytes
    status: int | tuple[int, ...]
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes | None = None  # exact request bytes (overrides the rest)

    def request(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return build_request(self.method, self.path, body=self.body, headers=self.headers)

    def expects(self, status: int) -> bool:
        wanted = self.status if isinstance(self.status, tuple) else (self.status,)
        return status in wanted


JSON = [("Content-Type", "application/json")]
GOOD = b'{"instances": [1.0, 2.0]}'
HPT = "/v1/models/half_plus_two"


def _body(text: str) -> bytes:
    return bytes.fromhex(text[4:]) if text.startswith("hex:") else text.encode()


def table_cases() -> Iterator[Case]:
    table = json.loads(TABLE.read_text())
    for family, spec in table["families"].items():
        for route in table[spec["routes"]]:
            for body in spec["bodies"]:
                yield Case(family, "POST", route, spec["status"], _body(body), JSON)


def deep_nesting() -> Iterator[Case]:
    for depth in (10_000, 100_000):
        nested = b"[" * depth + b"1.0" + b"]" * depth
        yield Case("deep_nesting", "POST", f"{HPT}:predict", 400,
                   b'{"instances": [' + nested + b"]}", JSON)
        yield Case("deep_nesting", "POST", f"{HPT}:predict", 400,
                   b'{"inputs": ' + b"[" * depth + b"]}", JSON)
        yield Case("deep_nesting", "POST", "/v1/models/classify_regress:regress", 400,
                   b'{"examples": [{"x": ' + b"[" * depth + b"]" * depth + b"}]}", JSON)
        objects = b'{"a":' * depth + b"1" + b"}" * depth
        yield Case("deep_nesting", "POST", "/serving_default/predict", 400,
                   b'{"instances": [' + objects + b"]}", JSON)
    yield Case("deep_nesting", "POST", f"{HPT}:predict", 400,
               b'{"instances": [' + b"[" * 10_000 + b"NaN" + b"]" * 10_000 + b"]}", JSON)


def non_utf8() -> Iterator[Case]:
    bodies = [
        b'{"instances": ["\xff\xfe"]}', b"\xff\xfe{\x00}\x00", b'{"instances": [1.0]}\xff',
        b'{"inst\xc0\xafances": [1.0]}', b'{"instances": [\x80]}',
        '{"instances": [1.0]}'.encode("utf-16"), b"\x00" * 16,
    ]
    for body in bodies:
        for route in (f"{HPT}:predict", "/v1/models/multi:predict",
                      "/v1/models/classify_regress:classify"):
            yield Case("non_utf8", "POST", route, 400, body, JSON)


def empty_and_oversized() -> Iterator[Case]:
    routes = [f"{HPT}:predict", f"{HPT}/versions/1:predict",
              "/v1/projects/p/models/half_plus_two:predict", "/serving_default/predict",
              "/v1/models/classify_regress:classify", "/v1/models/classify_regress:regress"]
    big = b'{"instances": [' + b"1.0," * (MAX_BODY // 4) + b"1.0]}"
    for route in routes:
        yield Case("empty_body", "POST", route, 400, b"", JSON)
        yield Case("empty_body", "POST", route, 400, b" \r\n\t ", JSON)
        yield Case("oversized_body", "POST", route, 413, big, JSON)
        yield Case("oversized_body", "POST", route, 413, b"{}",
                   [*JSON, ("Content-Length", str(10 * MAX_BODY))])
        bomb = gzip.compress(b'{"instances": [' + b" " * (4 * MAX_INFLATED) + b"1]}", 9)
        yield Case("gzip_bomb", "POST", route, 413, bomb, [*JSON, ("Content-Encoding", "gzip")])


def content_types_and_encodings() -> Iterator[Case]:
    routes = [f"{HPT}:predict", "/v1/projects/p/models/half_plus_two:predict",
              "/serving_default/predict", "/v1/models/classify_regress:regress"]
    bodies = [
        ("application/x-www-form-urlencoded", b"instances=1&instances=2"),
        ("multipart/form-data; boundary=xx",
         b'--xx\r\nContent-Disposition: form-data; name="instances"\r\n\r\n[1]\r\n--xx--\r\n'),
        ("text/xml", b"<instances><i>1</i></instances>"),
        ("application/octet-stream", bytes(range(256))),
    ]
    for route in routes:
        for ctype, body in bodies:
            yield Case("wrong_content_type", "POST", route, 400, body, [("Content-Type", ctype)])
        yield Case("bad_content_encoding", "POST", route, 415, GOOD,
                   [*JSON, ("Content-Encoding", "br")])
        yield Case("bad_content_encoding", "POST", route, 415, GOOD,
                   [*JSON, ("Content-Encoding", "deflate, gzip")])
        yield Case("bad_content_encoding", "POST", route, 400, GOOD,
                   [*JSON, ("Content-Encoding", "gzip")])
        yield Case("bad_content_encoding", "POST", route, 400, gzip.compress(GOOD)[:-6],
                   [*JSON, ("Content-Encoding", "gzip")])


def timeout_headers() -> Iterator[Case]:
    values = [("Request-Timeout", v) for v in ("abc", "-1", "nan", "1e999", "inf", "5Z", "1,5")]
    values += [("grpc-timeout", v) for v in ("10X", "-5S", "S", "1e999H", "0x10m")]
    for name, value in values:
        yield Case("bad_timeout_header", "POST", f"{HPT}:predict", 400, GOOD,
                   [*JSON, (name, value)])
        yield Case("bad_timeout_header", "GET", f"{HPT}/metadata", 400, b"", [(name, value)])


HOSTILE_NAMES = [
    "..", "..%2F..%2Fetc%2Fpasswd", "..%2f..%2f..%2f", "%2e%2e", "%00", "a%00b", "a" * 300,
    ".hidden", "-rf", "a%20b", "%C3%A9t%C3%A9", "a%2Fb", "%5C..%5Cwin", "~root", "$(id)",
]


def _name_status(name: str) -> int:
    """An encoded ``/`` decodes into extra path segments: no route matches (404)."""
    return 404 if "%2f" in name.lower() else 400


def hostile_names() -> Iterator[Case]:
    for name in HOSTILE_NAMES:
        for suffix, method in ((":predict", "POST"), (":classify", "POST"), (":regress", "POST"),
                               ("", "GET"), ("/metadata", "GET"),
                               ("/versions/1:predict", "POST"), ("/labels/stable", "GET")):
            body = GOOD if method == "POST" else b""
            yield Case("hostile_model_name", method, f"/v1/models/{name}{suffix}",
                       _name_status(name), body, JSON)
        yield Case("hostile_model_name", "POST", f"/v1/projects/p/models/{name}:predict",
                   _name_status(name), GOOD, JSON)


def hostile_paths() -> Iterator[Case]:
    cases = [
        ("POST", f"{HPT}/labels/..:predict", 400), ("POST", f"{HPT}/labels/%2e%2e:predict", 400),
        ("POST", f"{HPT}/labels/a%00:predict", 400), ("GET", f"{HPT}/labels/{'l' * 300}", 400),
        ("POST", f"{HPT}/versions/abc:predict", 400), ("POST", f"{HPT}/versions/-1:predict", 400),
        ("POST", f"{HPT}/versions/1.5:predict", 400), ("GET", f"{HPT}/versions/%31%00", 400),
        ("POST", f"{HPT}/versions/99999999999999999999999:predict", 400),
        ("GET", f"{HPT}/versions/18446744073709551616/metadata", 400),
        ("POST", f"{HPT}/versions/%D9%A3:predict", 400),
        ("POST", f"{HPT}/versions/7:predict", 404), ("GET", f"{HPT}/versions/7", 404),
        ("GET", f"{HPT}/versions/7/metadata", 404),
        ("POST", "/v1/models/no_such_model:predict", 404), ("GET", "/v1/models/no_such_model", 404),
        ("GET", "/v1/models/no_such_model/metadata", 404),

        ("POST", "/v1/projects/p/models/no_such_model:predict", 404),
        ("POST", f"{HPT}:explain", 404), ("POST", f"{HPT}:", 404),
        ("POST", f"{HPT}:predict/extra", 404), ("GET", f"{HPT}/metadata/extra", 404),
        ("POST", "/v1/projects/p/models/half_plus_two:classify", 404),
        ("GET", "/../../etc/passwd", 404), ("GET", "/%2e%2e/%2e%2e/etc/passwd", 404),
        ("GET", "/static/../../../../etc/passwd", 404), ("GET", "/v2/models/half_plus_two", 404),
        ("GET", "/nope", 404), ("GET", "/" + "x" * 4000, 404),
        ("POST", "/a/b/c/predict", 404), ("GET", "/docs/%00", 404),
    ]
    for method, path, status in cases:
        yield Case("hostile_path", method, path, status, GOOD if method == "POST" else b"", JSON)
    for verb in ("classify", "regress"):
        yield Case("hostile_path", "POST", f"/v1/models/no_such_model:{verb}", 404,
                   b'{"examples": [{"x": 1.0}]}', JSON)


def wrong_methods() -> Iterator[Case]:
    post_only = [f"{HPT}:predict", f"{HPT}/versions/1:predict", f"{HPT}/labels/stable:predict",
                 "/v1/models/classify_regress:classify", "/v1/models/classify_regress:regress",
                 "/v1/projects/p/models/half_plus_two:predict", "/serving_default/predict"]
    get_only = [HPT, f"{HPT}/versions/1", f"{HPT}/metadata", f"{HPT}/versions/1/metadata",
                "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/"]
    for path in post_only:
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            yield Case("wrong_method", method, path, 405, b"", JSON)
    for path in get_only:
        for method in ("POST", "PUT", "DELETE"):
            yield Case("wrong_method", method, path, 405, GOOD, JSON)


TOO_LARGE = (400, 431)  # aiohttp's parser answers 400 (some versions 431)


def header_abuse() -> Iterator[Case]:
    path = f"{HPT}:predict".encode()
    head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    raws = [
        ("huge_header", head + b"X-Big: " + b"a" * 20_000 + b"\r\n\r\n", TOO_LARGE),
        ("many_headers", head + b"".join(b"X-%d: v\r\n" % i for i in range(2000)) + b"\r\n",
         TOO_LARGE),
        ("huge_request_line", b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
         (*TOO_LARGE, 414)),
        ("bad_content_length", head + b"Content-Length: abc\r\n\r\n" + GOOD, 400),
        ("bad_content_length", head + b"Content-Length: -1\r\n\r\n" + GOOD, 400),
        ("bad_content_length", head + b"Content-Length: 5\r\nContent-Length: 9\r\n\r\n" + GOOD,
         400),
        ("bad_content_length", head + b"Content-Length: 1e3\r\n\r\n" + GOOD, 400),
        ("bad_content_length", head + b"Content-Length: 99999999999999999999999\r\n\r\n", 400),
        ("cl_and_te", head + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400),
        ("bad_transfer_encoding", head + b"Transfer-Encoding: gzip\r\n\r\n" + GOOD, 400),
        ("bad_chunk", head + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n", 400),
        ("header_nul", head + b"X-A: a\x00b\r\nContent-Length: 0\r\n\r\n", 400),
        ("header_name_space", head + b"Bad Name: v\r\nContent-Length: 0\r\n\r\n", 400),
        ("obs_fold", head + b"X-A: a\r\n  folded\r\nContent-Length: 0\r\n\r\n", 400),
        ("bad_version", b"POST " + path + b" HTTP/9.9\r\nHost: x\r\n\r\n", 400),
        ("bad_method", b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("no_crlf", b"GET /healthz HTTP/1.1\nHost: x\n\n\x00\x00garbage", 400),
    ]
    for name, raw, status in raws:
        yield Case(f"header_abuse:{name}", "RAW", "", status, raw=raw)


GENERATORS = [table_cases, deep_nesting, non_utf8, empty_and_oversized,
              content_types_and_encodings, timeout_headers, hostile_names, hostile_paths,
              wrong_methods, header_abuse]


def all_cases() -> list[Case]:
    return [case for generate in GENERATORS for case in generate()]


def family_of(case: Case) -> str:
    return case.family.split(":")[0]


@pytest.fixture(scope="module")
def gateway(modelserver_port: int) -> Iterator[GatewayProcess]:
    env = {"TFGW_MAX_BODY_BYTES": str(MAX_BODY), "TFGW_MAX_DECOMPRESSED_BYTES": str(MAX_INFLATED)}
    with GatewayProcess(f"127.0.0.1:{modelserver_port}", MODEL_NAMES,
                        default_model="half_plus_two", env=env) as process:
        yield process


def send(gateway: GatewayProcess, case: Case) -> HttpAnswer:
    return raw_http(gateway.port, case.request(), timeout=30.0)


def check(case: Case, answer: HttpAnswer) -> str | None:
    """None if ``answer`` is what ``case`` expects, else a one-line description."""
    where = f"[{case.family}] {case.method} {str(case.path)[:80]} body={case.body[:60]!r}"
    if not case.expects(answer.status):
        return f"{where}: want {case.status}, got {answer.status} {answer.body[:200]!r}"
    ctype = answer.headers.get("Content-Type", "")
    try:
        error = json.loads(answer.body)["error"]
    except (ValueError, KeyError, TypeError):
        return f"{where}: {answer.status} body is not JSON with 'error': {answer.body[:200]!r}"
    if not ctype.startswith("application/json") or not isinstance(error, str) or not error:
        return f"{where}: bad error answer {ctype!r} {answer.body[:200]!r}"
    return None


def test_corpus_size_and_coverage() -> None:
    cases = all_cases()
    assert len(cases) >= 300
    paths = {str(c.path) for c in cases} | {c.raw[:60].decode("latin-1") for c in cases if c.raw}
    for needle in (":predict", ":classify", ":regress", "/metadata", "/versions/", "/labels/",
                   "/v1/projects/", "/serving_default/predict", "/healthz", "/metrics",
                   "/openapi.json", "/docs", "..%2F", "%00"):
        assert any(needle in p for p in paths), needle


def test_every_bad_request_answers_json_4xx(gateway: GatewayProcess) -> None:
    cases = all_cases()
    warm = [c for c in cases if c.family in {"oversized_body", "gzip_bomb", "deep_nesting"}]
    for case in warm:  # one pass so the baseline includes allocator high-water marks
        send(gateway, case)
    baseline = gateway.rss()
    failures: list[str] = []
    by_status: Counter[int] = Counter()
    by_family: dict[str, Counter[int]] = {}
    current = None
    for case in cases:
        if family_of(case) != current:
            assert current is None or gateway.healthy(), f"gateway down after {current}"
            current = family_of(case)
        answer = send(gateway, case)
        by_status[answer.status] += 1
        by_family.setdefault(family_of(case), Counter())[answer.status] += 1
        problem = check(case, answer)
        if problem:
            failures.append(problem)
    assert gateway.healthy() and gateway.alive()
    growth = gateway.rss() - baseline
    print(f"\nbad-input corpus: {len(cases)} requests; by status {dict(sorted(by_status.items()))}")
    for family, counts in by_family.items():
        print(f"  {family:28s} {sum(counts.values()):4d}  {dict(sorted(counts.items()))}")
    print(f"  RSS baseline {baseline / 2**20:.1f} MiB, after {growth / 2**20:+.1f} MiB")
    assert failures == [], f"{len(failures)} of {len(cases)} failed:\n" + "\n".join(failures[:60])
    assert growth < RSS_BOUND
