"""The README's two commands are the contract with newcomers; CI must run the second."""

from __future__ import annotations

import re

from support.paths import REPO_ROOT

ROOT = REPO_ROOT
SETUP_COMMAND = (
    "python3.11 -m venv .venv && .venv/bin/pip install -e '.[server]' && .venv/bin/tfgw demo"
)
TEST_COMMAND = (
    "python3.11 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
)


def _shell_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, re.S)]


def test_readme_has_the_two_commands_first() -> None:
    blocks = _shell_blocks((ROOT / "README.md").read_text())
    assert blocks[:2] == [SETUP_COMMAND, TEST_COMMAND]


def test_ci_runs_the_readme_test_command() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert TEST_COMMAND in lines
