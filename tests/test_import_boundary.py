"""Importing the gateway path never loads TensorFlow (checked in a fresh interpreter)."""

from __future__ import annotations

import importlib.util
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORE = ["gateway", "gateway.codec", "gateway.tensors", "gateway.signatures", "gateway.errors"]
# Gateway-path modules that must stay TF-free once they exist.
OPTIONAL = [
    "gateway.backend",
    "gateway.service",
    "gateway.http",
    "gateway.client",
    "gateway.openapi",
    "gateway.docs",
    "gateway.batching",
    "gateway.metrics",
    "gateway.config",
]
HEAVY = ["tensorflow", "tensorflow_serving", "keras"]


def _present(name: str) -> bool:
    sys.path.insert(0, str(REPO))
    try:
        return importlib.util.find_spec(name) is not None
    finally:
        sys.path.remove(str(REPO))


def _pb_modules() -> list[str]:
    pb = REPO / "gateway" / "pb"
    return sorted(f"gateway.pb.{m.name}" for m in pkgutil.iter_modules([str(pb)]))


def _import_in_fresh_interpreter(modules: list[str]) -> dict[str, list[str]]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps({{h: sorted(m for m in sys.modules if m == h or "
        f"m.startswith(h + '.')) for h in {HEAVY!r}}}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_core_modules_exist() -> None:
    missing = [name for name in CORE if not _present(name)]
    assert not missing
    assert len(_pb_modules()) >= 20


def test_gateway_path_does_not_import_tensorflow() -> None:
    modules = CORE + _pb_modules() + [name for name in OPTIONAL if _present(name)]
    loaded = _import_in_fresh_interpreter(modules)
    assert loaded == {heavy: [] for heavy in HEAVY}, loaded


def test_the_check_would_notice_tensorflow() -> None:
    """Guard against a vacuous pass: importing TF is visible to the same probe."""
    loaded = _import_in_fresh_interpreter(["gateway.codec", "tensorflow_serving.apis.model_pb2"])
    assert "tensorflow_serving" in loaded["tensorflow_serving"]
