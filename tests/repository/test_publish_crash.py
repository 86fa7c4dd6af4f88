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
import time
from pathlib import Path

from google.protobuf import text_format
from support.paths import REPO_ROOT
from support.publishing import (
    Reader,
    manifest,
    publish_command,
    publish_env,
    publish_maybe_killed,
)

from gateway.pb import model_server_config_pb2

ITERATIONS = 60
PARALLEL = 16

def test_sigkill_at_random_moments_never_exposes_partial_versions(
    padded_export: Path, tmp_path: Path
) -> None:
    base = tmp_path / "models" / "scale"
    expected = manifest(padded_export)
    start = time.monotonic()
    first = subprocess.run(publish_command(padded_export, base), env=publish_env(),
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
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
    final = subprocess.run(publish_command(padded_export, base), env=publish_env(),
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
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
        subprocess.Popen(publish_command(small, base, "--label", f"p{i}"), env=publish_env(),
                         cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
