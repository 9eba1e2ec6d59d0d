"""The teleop parameter table, config/teleop.yaml, and configure-time errors for bad maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from teleop_rig import flatten_parameters

from robot_brain.errors import UserError
from robot_brain.teleop.mapping import PARAMETERS, MappingError, TeleopMapping, default_parameters
from robot_brain.teleop.reading import SDL_LAYOUT, counted_layout

REPO = Path(__file__).resolve().parents[2]


def test_yaml_holds_every_mapping_parameter_in_order() -> None:
    """config/teleop.yaml is generated from the node's declarations (test/test_node_configs.py checks all of it);
    here: the mapping's parameters are all there, in order, nested as teleop_twist_joy's configs are."""
    loaded = yaml.safe_load((REPO / "config" / "teleop.yaml").read_text())["/**"]["ros__parameters"]
    flat = flatten_parameters(loaded)
    names = [name for name, _, _ in PARAMETERS]
    assert [name for name in flat if name in names] == names
    assert loaded["axis_linear"]["x"] == flat["axis_linear.x"]
    for name, default, _ in PARAMETERS:
        assert flat[name] == default and type(flat[name]) is type(default), name


def test_every_parameter_has_a_description_and_teleop_twist_joy_names_exist() -> None:
    names = [name for name, _, _ in PARAMETERS]
    assert len(names) == len(set(names))
    assert all(description.strip() for _, _, description in PARAMETERS)
    for name in ("require_enable_button", "enable_button", "enable_turbo_button", "axis_linear.x", "axis_linear.y",
                 "axis_linear.z", "scale_linear.x", "scale_linear_turbo.z", "axis_angular.roll", "axis_angular.pitch",
                 "axis_angular.yaw", "scale_angular.yaw", "scale_angular_turbo.roll", "deadzone"):
        assert name in names, name


def test_defaults_fit_the_sdl_layout() -> None:
    mapping = TeleopMapping.default()
    assert mapping.twist_axes == (1, 0, 3, -1, -1, 2)
    assert (mapping.enable_button, mapping.enable_turbo_button, mapping.estop_button) == (9, 10, 1)
    assert mapping.estop_reset_buttons == (4, 6) and mapping.initial_frame == "base"
    controls = dict(mapping.controls())
    assert controls["left shoulder"].startswith("dead-man")
    assert controls["B"] == "E-STOP (latches)"
    assert controls["left stick y"].startswith("linear x: up = +x")
    assert controls["left stick x"].startswith("linear y: left = +y")
    assert "back + start" in controls


@pytest.mark.parametrize(
    ("changes", "layout", "message"),
    [
        ({"axis_linear.x": 7}, SDL_LAYOUT, r"axis_linear\.x = 7: an SDL game controller has 6 axes \(0 left stick x"),
        ({"enable_button": 15}, SDL_LAYOUT, r"enable_button = 15: an SDL game controller has 15 buttons \(0 A, 1 B"),
        ({}, counted_layout(6, 11, "'/joy'"),
         r"speed_up_button = 11: '/joy' has 11 buttons \(0 A, .* 10 right shoulder\)"),
        ({"initial_frame": "world"}, SDL_LAYOUT, r"initial_frame = 'world': expected one of base, tool"),
        ({"input": "evdev"}, SDL_LAYOUT, r"input = 'evdev': expected one of sdl, joy"),
        ({"estop_reset_buttons": [6]}, SDL_LAYOUT, r"estop_reset_buttons = \[6\]: .*at least two different"),
        ({"estop_reset_buttons": [6, 6]}, SDL_LAYOUT, r"at least two different buttons"),
        ({"estop_reset_buttons": [1, 6]}, SDL_LAYOUT, r"contains estop_button = 1"),
        ({"frame_toggle_button": 9}, SDL_LAYOUT, r"enable_button = 9 and frame_toggle_button = 9: one button"),
        ({"axis_angular.yaw": 1}, SDL_LAYOUT, r"axis_linear\.x = 1 and axis_angular\.yaw = 1: one axis"),
        ({"jog_axis": 5}, SDL_LAYOUT, r"jog_axis = 5 and gripper_axis = 5"),
        ({"enable_button": -1}, SDL_LAYOUT, r"require_enable_button is true but enable_button = -1"),
        ({"enable_button": True}, SDL_LAYOUT, r"enable_button = True: expected an index"),
        ({"axis_linear.y": -2}, SDL_LAYOUT, r"axis_linear\.y = -2"),
        ({"scale_linear.x": float("nan")}, SDL_LAYOUT, r"scale_linear\.x = nan: expected a finite number"),
        ({"deadzone": 1.0}, SDL_LAYOUT, r"deadzone = 1: expected a value in \[0, 1\)"),
        ({"poll_rate": 0.0}, SDL_LAYOUT, r"poll_rate = 0: expected a value in \(0, 1000\]"),
        ({"require_enable_button": "yes"}, SDL_LAYOUT, r"require_enable_button must be true or false"),
        ({"axis_linear.w": 1}, SDL_LAYOUT, r"unknown teleop parameter\(s\) axis_linear\.w"),
    ],
)
def test_bad_maps_fail_at_configure_naming_parameter_value_and_device(
    changes: dict[str, Any], layout: Any, message: str
) -> None:
    with pytest.raises(MappingError, match=message) as caught:
        TeleopMapping.from_parameters(changes, layout)
    assert isinstance(caught.value, UserError) and "\n" not in str(caught.value)


def test_a_joy_map_is_checked_only_against_the_messages() -> None:
    # joy_node on an 8-axis, 11-button pad: indices beyond SDL's layout are fine until a message says otherwise.
    changes = {"axis_linear.x": 7, "speed_up_button": -1, "speed_down_button": -1, "jog_next_button": -1,
               "jog_previous_button": -1, "input": "joy"}
    mapping = TeleopMapping.from_parameters(changes, layout=None)
    mapping.check_layout(counted_layout(8, 11, "'/joy'"))
    with pytest.raises(MappingError, match=r"axis_linear\.x = 7: '/joy' has 6 axes"):
        mapping.check_layout(counted_layout(6, 11, "'/joy'"))


def test_defaults_are_fresh_copies() -> None:
    first = default_parameters()
    first["estop_reset_buttons"].append(99)
    assert default_parameters()["estop_reset_buttons"] == [4, 6]
