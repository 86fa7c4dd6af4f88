"""pytest plugin (``pytest_plugins = ["support.client_venv"]``): the real v2 clients' venv.

``tritonclient[grpc]`` and ``kserve`` require ``protobuf<7``; the gateway's generated code
needs ``protobuf>=7.35``, so pip cannot put them in the project's venv. The suite builds a
second venv itself, once per pin list, at ``$XDG_CACHE_HOME/tfgw-test-clients/<key>``
(default ``~/.cache``), and runs client scripts there as subprocesses that print JSON.

The venv is built in a ``.tmp-*`` sibling and renamed into place under a file lock, so a
killed build is never trusted and two pytest processes never build it at once.

Fixture (session scope): ``client_venv`` → the venv's root. It skips, with the reason, only
when the package index cannot be reached; under ``CI`` that is a failure instead.

Helpers: ``client_python()`` (builds on first use), ``run_client(script, *args, timeout=)``
and ``run_client_json(...)``. ``tritonclient.grpc`` and ``kserve`` cannot be imported in one
process (both register ``inference.*`` in protobuf's default pool: "duplicate symbol"), so
use one script per client.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "PINS",
    "ClientVenvUnavailable",
    "cache_root",
    "client_python",
    "client_venv",
    "ensure_client_venv",
    "run_client",
    "run_client_json",
    "venv_dir",
    "venv_key",
]

PINS: tuple[str, ...] = (
    "tritonclient[http,grpc]==2.73.0",
    "kserve==0.21.0",
    "numpy==2.4.6",
    "protobuf==6.33.6",
    "grpcio==1.85.3",
)
MARKER = "tfgw-client-venv.json"
LOG = "tfgw-build.log"
IMPORT_CHECKS = ("import tritonclient.http, tritonclient.grpc", "import kserve")
PROBE_TIMEOUT = 60.0
INSTALL_TIMEOUT = 900.0
# pip's words when it could not talk to the index (as opposed to "no such version").
NETWORK_ERROR = re.compile(
    r"connection broken by|Could not fetch URL|Max retries exceeded|NewConnectionError"
    r"|ProxyError|ConnectTimeout|ReadTimeout|Temporary failure in name resolution"
    r"|Network is unreachable|Name or service not known"
)


class ClientVenvUnavailable(RuntimeError):
    """The package index could not be reached, so the client venv cannot be built."""


def venv_key(pins: tuple[str, ...] = PINS) -> str:
    """A short hash of the pins and the interpreter the venv is made from."""
    python = f"{sys.implementation.name}{sys.version_info[0]}.{sys.version_info[1]}"
    text = "\n".join((*pins, python, platform.machine()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tfgw-test-clients"


def venv_dir(pins: tuple[str, ...] = PINS) -> Path:
    return cache_root() / venv_key(pins)


def ensure_client_venv(pins: tuple[str, ...] = PINS) -> Path:
    """The client venv's root, built first if no complete one is cached."""
    target = venv_dir(pins)
    if _usable(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_suffix(".lock")):
        if _usable(target):
            return target
        _discard_leftovers(target)
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
        try:
            _build(staging, pins)
            staging.chmod(0o755)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


@functools.cache
def client_python() -> Path:
    """The client venv's interpreter (the venv is built on the first call)."""
    return ensure_client_venv() / "bin" / "python"


def run_client(
    script: str | Path, *args: object, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet (``str``) or file (``Path``, or a ``str`` naming a ``.py`` file)
    with the client venv's interpreter; ``args`` become ``sys.argv[1:]``."""
    target = ["-c", script] if _is_snippet(script) else [str(script)]
    return subprocess.run(
        [str(client_python()), *target, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_clean_env(),
        check=False,
    )


def run_client_json(script: str | Path, *args: object, timeout: float) -> Any:
    """``run_client`` that must exit 0; returns the JSON of stdout's last line."""
    done = run_client(script, *args, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"client script exited {done.returncode}:\n{done.stderr[-4000:]}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise AssertionError(f"client script printed nothing:\n{done.stderr[-4000:]}")
    return json.loads(lines[-1])


@pytest.fixture(scope="session")
def client_venv() -> Path:
    """The client venv's root; skip (fail under ``CI``) only if the index is unreachable."""
    try:
        return ensure_client_venv()
    except ClientVenvUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"client venv cannot be built and CI is set: {exc}")
        pytest.skip(f"client venv cannot be built: {exc}")


def _is_snippet(script: str | Path) -> bool:
    if isinstance(script, Path):
        return False
    return "\n" in script or not script.endswith(".py") or not Path(script).is_file()


def _usable(root: Path) -> bool:
    """Complete (marker written before the rename) and its interpreter still runs."""
    python = root / "bin" / "python"
    if not (root / MARKER).is_file() or not python.exists():
        return False
    probe = subprocess.run([str(python), "-I", "-c", "pass"], capture_output=True, timeout=60)
    return probe.returncode == 0


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _discard_leftovers(target: Path) -> None:
    """Drop dead builds and a broken venv; only the lock holder builds, so all are stale."""
    for stale in target.parent.glob(f".tmp-{target.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if target.exists():
        doomed = target.with_name(f".tmp-{target.name}-broken")
        target.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def _build(root: Path, pins: tuple[str, ...]) -> None:
    started = time.monotonic()
    venv.EnvBuilder(with_pip=True, symlinks=True, clear=True).create(root)
    python = str(root / "bin" / "python")
    _probe_index(python, pins)
    # No .pyc here: they would name the staging path; imports compile them after the rename.
    _pip(python, ["install", "--no-compile", *pins], timeout=INSTALL_TIMEOUT, log=root / LOG)
    for check in IMPORT_CHECKS:
        _checked([python, "-c", check], timeout=120)
    freeze = _checked([python, "-m", "pip", "freeze", "--all"], timeout=120)
    marker = {
        "pins": list(pins),
        "python": sys.version.split()[0],
        "build_seconds": round(time.monotonic() - started, 1),
        "freeze": freeze.split(),
    }
    (root / MARKER).write_text(json.dumps(marker, indent=1) + "\n")


def _probe_index(python: str, pins: tuple[str, ...]) -> None:
    """Ask the index for the top-level pins with short time-outs, so an unreachable index
    is reported in seconds instead of after pip's long default retries."""
    names = [re.sub(r"\[.*?\]", "", pin) for pin in pins]
    args = ["install", "--dry-run", "--ignore-installed", "--no-deps", "--no-cache-dir"]
    args += ["--timeout", "15", "--retries", "1", *names]
    try:
        _pip(python, args, timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise ClientVenvUnavailable(f"package index did not answer in {exc.timeout}s") from exc
    except RuntimeError as exc:
        said = [line for line in str(exc).splitlines() if NETWORK_ERROR.search(line)]
        if said:
            raise ClientVenvUnavailable(f"package index unreachable: {said[0][:300]}") from exc
        raise


def _pip(python: str, args: list[str], timeout: float, log: Path | None = None) -> None:
    done = subprocess.run(
        [python, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_clean_env(),
        check=False,
    )
    if log is not None:
        log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"pip {args[0]} failed ({done.returncode}):\n{_tail(done.stderr)}")


def _checked(command: list[str], timeout: float) -> str:
    env = {**_clean_env(), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[1:]} failed in the client venv:\n{_tail(done.stderr)}")
    return done.stdout


def _tail(text: str, lines: int = 15) -> str:
    kept = [line for line in text.splitlines() if "is ignored: it is neither" not in line]
    return "\n".join(kept[-lines:])


def _clean_env() -> dict[str, str]:
    """The caller's environment without what would leak the project's venv into the child."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONNOUSERSITE"] = "1"
    return env
