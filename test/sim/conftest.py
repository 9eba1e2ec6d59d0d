"""Fixtures of the simulator tests: real URDFs, real MuJoCo; the DDS fixtures are shared with test/inference."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))

from ros_fixtures import executor, ros_context, wait_for  # noqa: F401 - pytest fixtures

from robot_brain.embodiment import Arm, load_arm
from robot_brain.embodiment.catalog import bundled_arm_path
from robot_brain.sim import Simulation, build_simulation


@cache
def arm(name: str) -> Arm:
    return load_arm(bundled_arm_path(name))


@pytest.fixture
def simulation() -> Callable[[str], Simulation]:
    """A fresh simulation of a bundled arm (the arm loads once per session)."""
    return lambda name: build_simulation(arm(name))
