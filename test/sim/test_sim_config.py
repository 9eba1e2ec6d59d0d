"""config/sim.yaml mirrors the sim node's declared parameters (names, defaults, order)."""

from __future__ import annotations

import yaml

from robot_brain.launch_plan import config_dir
from robot_brain.nodes.sim import PARAMETERS


def test_config_mirrors_declared_defaults() -> None:
    document = yaml.safe_load((config_dir() / "sim.yaml").read_text())
    values = document["/**"]["ros__parameters"]
    assert list(values) == [name for name, _, _ in PARAMETERS]
    for name, default, _ in PARAMETERS:
        assert values[name] == default, name
