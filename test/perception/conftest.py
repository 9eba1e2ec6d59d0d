"""Fixtures of the perception tests: the DDS fixtures are shared with test/inference."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))

from ros_fixtures import executor, ros_context  # noqa: F401 - pytest fixtures
