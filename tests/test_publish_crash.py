"""Crash safety and concurrency of ``tfgw publish`` (real subprocesses, real SIGKILL).

- ``ITERATIONS`` publishes are each SIGKILLed after a random delay spread over a whole
  publish's lifetime, while a reader thread polls ``BASE/NAME`` and checks that every
  numeric version directory it ever sees is complete (same files, same sizes as the
  export) and that ``models.config`` always parses. Afterwards the next publish works
  and the crashed publishers' temp dirs are gone.
- 16 publishers started at once get 16 distinct, complete versions and 16 labels.
"""

from __future__ import annotations

import collections
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format

from gateway.pb import model_server_config_pb2

REPO_ROOT = Path(__file__).resolve().parent.parent
ITERATIONS = 60
PARALLEL = 16
PAD_FILES, PAD_BYTES = 32, 128 << 10  # 4 MiB in 32 files: the copy has many steps


@pytest.fixture(scope="module")
def padded_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny tf.Module SavedModel plus 32 asset files, so a copy takes a while."""
    import tensorflow as tf

    from gateway.export import export_savedmodel

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


def _command(src: Path, base: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gateway", "publish", str(src), str(base), "--no-validate",
            "--quiet", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def publish_maybe_killed(src: Path, base: Path, rng: random.Random, lifetime: float,
                         *extra: str) -> bool:
    """One ``tfgw publish``, SIGKILLed at a random moment up to 1.2x ``lifetime`` (one
    publish's usual duration); ``True`` if it was killed before it finished."""
    proc = subprocess.Popen(_command(src, base, *extra), env=_env(), cwd=REPO_ROOT,
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


def test_sigkill_at_random_moments_never_exposes_partial_versions(
    padded_export: Path, tmp_path: Path
) -> None:
    base = tmp_path / "models" / "scale"
    expected = manifest(padded_export)
    start = time.monotonic()
    first = subprocess.run(_command(padded_export, base), env=_env(), cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=120)
    lifetime = time.monotonic() - start
    assert first.returncode == 0, first.stderr
    reader = Reader(base, expected)
    reader.start()
    rng = random.Random(20261125)
    outcomes: collections.Counter[str] = collections.Counter()
    try:
        for i in range(ITERATIONS):
            extra = ["--label", f"l{i % 3}"] if i % 4 == 0 else []
            before = {n for n in os.listdir(base) if n.isdigit()}
            if not publish_maybe_killed(padded_export, base, rng, lifetime, *extra):
                outcomes["completed"] += 1
                continue
            after = {n for n in os.listdir(base) if n.isdigit()}
            temps = [n for n in os.listdir(base) if n.startswith(".tmp-")]
            if after - before:
                outcomes["killed after rename"] += 1
            elif temps:
                outcomes["killed mid-copy"] += 1
            else:
                outcomes["killed before copy"] += 1
    finally:
        reader.stop_event.set()
        reader.join(timeout=30)
    print(f"\ncrash loop: one publish {lifetime * 1000:.0f} ms; {dict(outcomes)}; "
          f"reader checked {reader.checked} version dirs")
    assert reader.errors == []
    assert reader.checked > ITERATIONS
    assert sum(outcomes.values()) == ITERATIONS
    numbers = sorted(int(n) for n in os.listdir(base) if n.isdigit())
    assert numbers == list(range(1, len(numbers) + 1))  # no number lost or reused
    for number in numbers:
        assert manifest(base / str(number)) == expected
    final = subprocess.run(_command(padded_export, base), env=_env(), cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert final.stdout.startswith(f"published version {numbers[-1] + 1}:")
    assert [n for n in os.listdir(base) if n.startswith(".tmp-")] == []
    if (base.parent / "models.config").exists():
        config = model_server_config_pb2.ModelServerConfig()
        text_format.Parse((base.parent / "models.config").read_text(), config)
        labels = dict(config.model_config_list.config[0].version_labels)
        assert all(str(v) in os.listdir(base) for v in labels.values())


def test_parallel_publishers_get_distinct_complete_versions(
    padded_export: Path, tmp_path: Path
) -> None:
    base = tmp_path / "models" / "scale"
    small = tmp_path / "export"
    shutil.copytree(padded_export, small, ignore=shutil.ignore_patterns("pad-*"))
    procs = [
        subprocess.Popen(_command(small, base, "--label", f"p{i}"), env=_env(), cwd=REPO_ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(PARALLEL)
    ]
    results = [(p.communicate(timeout=120), p.returncode) for p in procs]
    assert [rc for _, rc in results] == [0] * PARALLEL, [err for (_, err), _ in results]
    got = {}
    for i, ((out, _), _) in enumerate(results):
        match = re.fullmatch(r"published version (\d+) \(label p(\d+)\): (.+)\n", out)
        assert match and int(match.group(2)) == i, out
        got[f"p{i}"] = int(match.group(1))
    assert sorted(got.values()) == list(range(1, PARALLEL + 1))
    expected = manifest(small)
    for number in got.values():
        assert manifest(base / str(number)) == expected
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((base.parent / "models.config").read_text(), config)
    (entry,) = config.model_config_list.config
    assert dict(entry.version_labels) == got  # no label update lost
