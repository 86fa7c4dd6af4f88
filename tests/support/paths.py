"""Where things are: the repository, the tests and their data files."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_DIR", "REPO_ROOT", "TESTS_DIR"]

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = REPO_ROOT / "tests"
DATA_DIR = TESTS_DIR / "data"
