"""config/<node>.yaml is each node's declared parameter table, and rcl's own parser accepts it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from node_configs import NODES, render  # noqa: E402 - tools/ is not a package

from robot_brain.bringup.params_files import flat_parameters  # noqa: E402 - the plan reads config files this way


def test_every_config_file_is_what_the_node_declares() -> None:
    result = subprocess.run([sys.executable, str(REPO / "tools" / "node_configs.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("node", sorted(NODES))
def test_config_values_equal_the_declared_defaults(node: str) -> None:
    module_name, class_name, _ = NODES[node]
    node_class = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    values = flat_parameters(yaml.safe_load(render(node))["/**"]["ros__parameters"])
    declared = node_class.declared_parameters()
    assert list(values) == [name for name, _, _ in declared]
    for name, default, description in declared:
        assert values[name] == default, name
        assert description, f"{node}.{name} has no description"


@pytest.mark.parametrize("node", sorted(NODES))
def test_rcl_parses_the_config_file(node: str) -> None:
    """rcl's params parser, not PyYAML: it refuses what PyYAML accepts (aliases, mixed arrays)."""
    path = REPO / "config" / f"{node}.yaml"
    code = ("import sys, rclpy; from rclpy.context import Context; c = Context(); "
            "rclpy.init(context=c, args=['--ros-args', '--params-file', sys.argv[1]]); c.try_shutdown()")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
