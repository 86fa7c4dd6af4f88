"""Publishing under fire: a padded export, manifests of what a complete version holds, and
``tfgw publish`` subprocesses that may be SIGKILLed at a random moment of their lifetime.

Used by ``tests/repository/test_publish_crash.py`` and
``tests/e2e/test_publish_integrity.py`` (a polling model server watching the same).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format

from gateway.pb import model_server_config_pb2
from support.paths import REPO_ROOT

PAD_FILES, PAD_BYTES = 32, 128 << 10  # 4 MiB in 32 files: the copy has many steps


@pytest.fixture(scope="module")
def padded_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny tf.Module SavedModel plus 32 asset files, so a copy takes a while."""
    import tensorflow as tf

    from gateway.repository.export import export_savedmodel

    class Scale(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(3.0)

        @tf.function
        def __call__(self, x: Any) -> Any:
            return self.w * x

    path = export_savedmodel(Scale(), tmp_path_factory.mktemp("crash") / "export",
                             inputs={"x": tf.TensorSpec([None], tf.float32)}, outputs="y")
    rng = random.Random(7)
    for i in range(PAD_FILES):
        (path / "assets" / f"pad-{i:02d}.bin").write_bytes(rng.randbytes(PAD_BYTES))
    return path


def manifest(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*") if p.is_file()}


def publish_command(src: Path, base: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gateway", "publish", str(src), str(base), "--no-validate",
            "--quiet", *extra]


def publish_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def publish_maybe_killed(src: Path, base: Path, rng: random.Random, lifetime: float,
                         *extra: str) -> bool:
    """One ``tfgw publish``, SIGKILLed at a random moment up to 1.2x ``lifetime`` (one
    publish's usual duration); ``True`` if it was killed before it finished."""
    proc = subprocess.Popen(publish_command(src, base, *extra), env=publish_env(), cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=rng.uniform(0.0, lifetime * 1.2))
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        return True


class Reader(threading.Thread):
    """Polls the base path; records any incomplete version dir or unparsable config."""

    def __init__(self, base: Path, expected: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.base, self.expected = base, expected
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self.checked = 0

    def run(self) -> None:
        deadline = time.monotonic() + 600  # bounded even if the test forgets to stop it
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            self._poll()

    def _poll(self) -> None:
        for name in os.listdir(self.base):
            if name.isdigit():
                got = manifest(self.base / name)
                self.checked += 1
                if got != self.expected:
                    missing = sorted(set(self.expected.items()) - set(got.items()))[:3]
                    self.errors.append(f"version {name} incomplete: {missing}")
        config = self.base.parent / "models.config"
        if config.exists():
            try:
                text_format.Parse(config.read_text(), model_server_config_pb2.ModelServerConfig())
            except (text_format.ParseError, FileNotFoundError) as exc:
                self.errors.append(f"models.config unreadable: {exc}")
