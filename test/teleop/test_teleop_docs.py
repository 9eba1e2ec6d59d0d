"""docs/teleop.md and its picture stay in step with the mapping in the code."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import yaml
from teleop_rig import flatten_parameters

from robot_brain.teleop.mapping import TeleopMapping

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "teleop.md"


def draw_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("draw_teleop_pad", REPO / "tools" / "draw_teleop_pad.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_guide_holds_the_generated_button_map_and_parameter_table() -> None:
    tool = draw_tool()
    text = GUIDE.read_text()
    assert tool.markdown_table(TeleopMapping.default()) in text, "rerun tools/draw_teleop_pad.py --markdown"
    assert tool.parameters_table() in text, "rerun tools/draw_teleop_pad.py --parameters"
    assert "(images/teleop_pad.png)" in text
    assert (REPO / "docs" / "images" / "teleop_pad.png").stat().st_size > 50_000


def test_every_control_of_the_default_map_has_a_place_on_the_picture() -> None:
    tool = draw_tool()
    for name in tool.grouped(TeleopMapping.default()):
        assert " + " in name or name in tool.POSITIONS, name


def test_the_guide_s_remapping_example_is_a_valid_map() -> None:
    block = re.search(r"```yaml\n(.*?)```", GUIDE.read_text(), re.S)
    assert block is not None
    values = yaml.safe_load(block.group(1))["/**"]["ros__parameters"]
    mapping = TeleopMapping.from_parameters(flatten_parameters(values))
    assert mapping.initial_frame == "tool" and mapping.twist_axes == (1, 0, -1, -1, 3, 2)
