"""Suite-wide settings. Fixtures live in ``tests/support`` modules, loaded as plugins."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

pytest_plugins = ["support.servers", "support.gateway_app", "support.client_venv"]

# Property tests explore freely on developer machines; under CI they replay the same
# examples every run, so a landing is judged on the code, not on the draw.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
