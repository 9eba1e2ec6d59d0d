"""Paths to real robot descriptions shipped by pip packages (example-robot-data, pybullet_data).

Tests load arms from here so every check runs on URDFs that real users have, not on
hand-made toys.
"""

from __future__ import annotations

from pathlib import Path

from robot_brain.embodiment.catalog import BUNDLED_ARMS, bundled_arm_path

ARMS: dict[str, Path] = {name: bundled_arm_path(name) for name in BUNDLED_ARMS if name != "baxter"}

#: A two-armed robot: its tree has no unique arm chain.
BAXTER = bundled_arm_path("baxter")
