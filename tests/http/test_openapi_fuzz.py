"""Schemathesis against the gateway's own ``/openapi.json`` (a real gateway process in
front of the shared ``tfgw modelserver``): no 5xx, and responses conform to the document
(status codes, content types, response schemas, schema-invalid requests rejected).
``positive_data_acceptance`` is left out: JSON Schema cannot say that the rows of a
``[-1, -1]`` tensor have equal lengths, so a schema-valid body can still be a ragged 400.
Responses holding ``NaN``/``Infinity`` (TF Serving's literals for non-finite floats, e.g.
float32 overflow in a model) are outside JSON and so outside JSON Schema: for those the
response-schema check is skipped and the literals are checked to be the only reason.

Schemathesis' lazy pytest fixtures do not work with pytest 9, so each operation's
hypothesis strategy (``operation.as_strategy()``) is driven directly, bounded by
``MAX_EXAMPLES`` per operation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance, response_schema_conformance
from support.processes import GatewayProcess
from support.servers import MODEL_NAMES

MAX_EXAMPLES = 8


@pytest.fixture(scope="module")
def openapi_gateway(modelserver_port: int) -> Iterator[GatewayProcess]:
    fast = [name for name in MODEL_NAMES if name != "slow"]  # slow sleeps 2 s a call
    with GatewayProcess(f"127.0.0.1:{modelserver_port}", fast,
                        default_model="half_plus_two") as gateway:
        yield gateway


def _non_finite_floats(text: str) -> bool:
    """Whether a JSON answer carries NaN/Infinity literals (stdlib json reads them)."""
    try:
        document = json.loads(text)
    except ValueError:
        return False

    def walk(value: Any) -> bool:
        if isinstance(value, float):
            return not math.isfinite(value)
        if isinstance(value, dict):
            return any(walk(v) for v in value.values())
        return isinstance(value, list) and any(walk(v) for v in value)

    return walk(document)


def test_non_finite_detection() -> None:
    assert _non_finite_floats('{"outputs":[-0.0,-Infinity]}')
    assert _non_finite_floats('{"predictions":[{"y":NaN}]}')
    assert not _non_finite_floats('{"outputs":[1.5,"Infinity"]}')
    assert not _non_finite_floats("not json")


def test_gateway_conforms_to_its_openapi(openapi_gateway: GatewayProcess) -> None:
    base = openapi_gateway.url
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= len(MODEL_NAMES) - 1
    seen: dict[str, set[int]] = {}

    def checker(label: str) -> object:
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=base, timeout=30)
            seen.setdefault(label, set()).add(response.status_code)
            assert response.status_code < 500, (label, case.body, response.text[:300])
            excluded = [positive_data_acceptance]
            if _non_finite_floats(response.text):
                excluded.append(response_schema_conformance)
            case.validate_response(response, excluded_checks=excluded)

        return check

    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        run = settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))(
            given(case=operation.as_strategy())(checker(label)))
        run()
    print(f"\nschemathesis: {len(operations)} operations; statuses seen:")
    for label, codes in sorted(seen.items()):
        print(f"  {label:70s} {sorted(codes)}")
