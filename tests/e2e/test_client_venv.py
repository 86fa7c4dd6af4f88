"""The client venv (``support.client_venv``): cached by pin hash, runs the real v2 clients."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from support.client_venv import (
    MARKER,
    PINS,
    _discard_leftovers,
    _usable,
    ensure_client_venv,
    run_client,
    run_client_json,
    venv_dir,
    venv_key,
)

# The first run builds the venv inside the first test's set-up (about a minute, warm cache).
pytestmark = pytest.mark.timeout(900)

PRINT_VERSIONS = """
import importlib.metadata, json
names = ("tritonclient", "kserve", "numpy", "protobuf", "grpcio")
print(json.dumps({name: importlib.metadata.version(name) for name in names}))
"""
TRITON = "import tritonclient.grpc, tritonclient.http" + PRINT_VERSIONS
KSERVE = (
    "from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig\n"
    "from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse"
    + PRINT_VERSIONS
)
ECHO = "import json, sys; print(json.dumps({'args': sys.argv[1:], 'data': [1.5, 'x', None]}))"


def pinned_versions() -> dict[str, str]:
    return {re.sub(r"\[.*\]", "", pin.split("==")[0]): pin.split("==")[1] for pin in PINS}


def test_venv_is_cached_under_its_pin_hash(client_venv: Path) -> None:
    assert client_venv == venv_dir()
    assert json.loads((client_venv / MARKER).read_text())["pins"] == list(PINS)
    assert not list(client_venv.parent.glob(f".tmp-{client_venv.name}-*"))


def test_second_ensure_is_a_cache_hit(client_venv: Path) -> None:
    started = time.monotonic()
    assert ensure_client_venv() == client_venv
    assert time.monotonic() - started < 5


def test_tritonclient_imports_at_the_pinned_versions(client_venv: Path) -> None:
    assert run_client_json(TRITON, timeout=120) == pinned_versions()


def test_kserve_imports_with_its_v2_clients(client_venv: Path) -> None:
    """kserve in a process of its own: with tritonclient.grpc it clashes on ``inference.*``."""
    assert run_client_json(KSERVE, timeout=120) == pinned_versions()


def test_run_client_round_trips_json(client_venv: Path, tmp_path: Path) -> None:
    expected = {"args": ["a b", "2"], "data": [1.5, "x", None]}
    assert run_client_json(ECHO, "a b", 2, timeout=60) == expected
    script = tmp_path / "echo.py"
    script.write_text(ECHO)
    assert run_client_json(script, "a b", 2, timeout=60) == expected
    assert run_client_json(str(script), "a b", 2, timeout=60) == expected


def test_run_client_reports_failures(client_venv: Path) -> None:
    done = run_client("import sys; sys.exit('boom')", timeout=60)
    assert (done.returncode, done.stderr.strip()) == (1, "boom")
    with pytest.raises(AssertionError, match="boom"):
        run_client_json("import sys; sys.exit('boom')", timeout=60)


def test_key_follows_the_pins() -> None:
    assert venv_key() == venv_key(PINS)
    assert venv_key(PINS[:-1]) != venv_key(PINS)


def test_cache_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert venv_dir() == tmp_path / "tfgw-test-clients" / venv_key()


def test_half_built_venvs_are_never_trusted(tmp_path: Path) -> None:
    target = tmp_path / "abc"
    (target / "bin").mkdir(parents=True)
    (tmp_path / ".tmp-abc-killed").mkdir()
    assert not _usable(target)
    _discard_leftovers(target)
    assert sorted(tmp_path.iterdir()) == []
