"""The architecture as executable rules.

- ``lint-imports`` (import-linter, contracts in ``pyproject.toml``) keeps imports running one
  way, CLI → runtime → edges → core → codec → values, and the gateway path TF-free; a copy
  of the package with one reversed import must break the contract.
- Every module of the package imports on its own in a fresh interpreter, and the gateway
  path loads no TensorFlow when it does.
"""

from __future__ import annotations

import json
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import REPO_ROOT

import gateway
import gateway.pb

HEAVY = ["tensorflow", "tensorflow_serving", "keras"]
GATEWAY_PATH = [
    "gateway",
    "gateway.backend",
    "gateway.batching",
    "gateway.client",
    "gateway.codec",
    "gateway.config",
    "gateway.http",
    "gateway.metadata",
    "gateway.metrics",
    "gateway.runtime",
    "gateway.service",
    "gateway.signatures",
    "gateway.tensors",
]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the repository's contracts, on the package found under ``root``."""
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint), "--no-cache", str(REPO_ROOT / "pyproject.toml")],
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)


def _all_modules() -> list[str]:
    found = pkgutil.walk_packages(gateway.__path__, "gateway.")
    return sorted(m.name for m in found if m.name != "gateway.__main__")


def _import_in_fresh_interpreter(modules: list[str]) -> dict[str, list[str]]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps({{h: sorted(m for m in sys.modules if m == h or "
        f"m.startswith(h + '.')) for h in {HEAVY!r}}}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_contracts_are_kept() -> None:
    done = _lint_imports(REPO_ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "reversed_import", "contract"),
    [
        ("codec/predict.py", "import gateway.http.routes", "Imports run one way"),
        ("service.py", "import gateway.runtime", "Imports run one way"),
        ("codec/values.py", "import tensorflow", "never imports TensorFlow"),
    ],
)
def test_a_reversed_import_breaks_the_contract(tmp_path: Path, module: str,
                                               reversed_import: str, contract: str) -> None:
    """Guard against a vacuous pass: the same check on a copy with one bad import fails."""
    copy = tmp_path / "gateway"
    shutil.copytree(REPO_ROOT / "gateway", copy,
                    ignore=shutil.ignore_patterns("__pycache__", "static"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{reversed_import}  # deliberately reversed\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout[-3000:]
    broken = done.stdout.split("Contracts:", 1)[0]
    assert f"{contract}" in broken and "BROKEN" in broken, done.stdout[-3000:]


def test_every_module_imports_alone() -> None:
    """Each module imports with no other project module loaded before it (no hidden
    import-order dependency); third-party packages and generated protos stay cached."""
    code = (
        "import importlib, sys\n"
        f"for name in {_all_modules()!r}:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('gateway')]:\n"
        "        if not loaded.startswith('gateway.pb'):\n"
        "            del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def test_gateway_path_does_not_import_tensorflow() -> None:
    pb = sorted(f"gateway.pb.{m.name}" for m in pkgutil.iter_modules(gateway.pb.__path__))
    loaded = _import_in_fresh_interpreter(GATEWAY_PATH + pb)
    assert loaded == {heavy: [] for heavy in HEAVY}, loaded


def test_the_tensorflow_probe_would_notice_it() -> None:
    loaded = _import_in_fresh_interpreter(["gateway.codec", "tensorflow_serving.apis.model_pb2"])
    assert "tensorflow_serving" in loaded["tensorflow_serving"]
