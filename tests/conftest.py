"""Suite-wide settings. Fixtures live in ``tests/support`` modules, loaded as plugins.

``tests/`` mirrors ``gateway/`` (``tests/codec/test_predict.py`` tests
``gateway/codec/predict.py``); ``tests/e2e/`` holds the end-to-end, interop and
reliability suites that cross modules. ``tests`` is on ``sys.path`` (pyproject's
``pythonpath``), so shared helpers import as ``support.*``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

pytest_plugins = [
    "support.servers",
    "support.gateway_app",
    "support.publishing",
    "support.client_venv",
]

# Property tests explore freely on developer machines; under CI they replay the same
# examples every run, so a landing is judged on the code, not on the draw.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
