"""input: joy — sensor_msgs/Joy arrays as readings, joy's trigger conventions, silence and short messages."""

from __future__ import annotations

import math

import pytest

from robot_brain.errors import UserError
from robot_brain.teleop.joy import GAME_CONTROLLER_TRIGGER_REST, JOY_NODE_TRIGGER_REST, JoyInput
from robot_brain.teleop.mapping import TeleopMapping
from robot_brain.teleop.operator import ZERO_TWIST, Operator

RELEASED = [0] * 15


def buttons(*pressed: int, count: int = 15) -> list[int]:
    return [1 if i in pressed else 0 for i in range(count)]


def test_game_controller_node_triggers_and_sticks() -> None:
    joy = JoyInput("/joy", trigger_rest=GAME_CONTROLLER_TRIGGER_REST)
    # game_controller_node: sticks already up/left positive; triggers 0 released .. -1 pressed.
    reading = joy.reading([0.5, -1.0, 1.0, 0.0, 0.0, -1.0], buttons(9, 14), stamp=3.0)
    assert reading.axes == (0.5, -1.0, 1.0, 0.0, 0.0, 1.0)
    assert reading.buttons[9] and reading.buttons[14] and sum(reading.buttons) == 2
    assert reading.connected and reading.device == "/joy" and reading.stamp == 3.0
    assert joy.reading([0, 0, 0, 0, -0.25, 0.0], RELEASED, 0.0).axes[4:] == (0.25, 0.0)


def test_joy_node_triggers_rest_at_plus_one() -> None:
    joy = JoyInput("/joy", trigger_axes=[2, 5], trigger_rest=JOY_NODE_TRIGGER_REST)
    reading = joy.reading([0.0, 0.0, 1.0, 0.0, 0.0, -1.0, 0.0, 0.0], [0] * 11, 0.0)
    assert reading.axes[2] == 0.0 and reading.axes[5] == 1.0
    assert joy.reading([0, 0, 0.0, 0, 0, 0.5], [0] * 11, 0.0).axes[2:6:3] == (0.5, 0.25)


def test_corrupt_values_never_command_motion() -> None:
    joy = JoyInput()
    reading = joy.reading([math.nan, math.inf, -7.0, 3.0, math.nan, -math.inf], [2, -1] + [0] * 13, 0.0)
    assert reading.axes == (0.0, 0.0, -1.0, 1.0, 0.0, 0.0)  # non-finite: centred or released, never pressed
    assert reading.buttons[:2] == (True, True)


def test_bad_trigger_settings_are_user_errors() -> None:
    with pytest.raises(UserError, match="joy_trigger_rest"):
        JoyInput(trigger_rest=-1.0)
    with pytest.raises(UserError, match="joy_trigger_axes"):
        JoyInput(trigger_axes=[4, -5])


def test_joy_input_drives_the_operator_and_silence_stops_it() -> None:
    mapping = TeleopMapping.from_parameters({"input": "joy"}, layout=None)
    operator = Operator(mapping)
    joy = JoyInput(mapping.joy_topic, mapping.joy_trigger_axes, mapping.joy_trigger_rest)
    up = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert operator.step(joy.reading(up, buttons(), 0.0), 0.0).twist is None
    moving = operator.step(joy.reading(up, buttons(9), 0.05), 0.05)
    assert moving.twist == pytest.approx((0.1, 0, 0, 0, 0, 0))
    # The last message was at 0.05 s; joy publishes at least every 50 ms while a pad is open.
    assert operator.step(joy.reading(up, buttons(9), 0.05), 0.5).twist is not None
    silent = operator.step(joy.reading(up, buttons(9), 0.05), 0.6)
    assert silent.twist == ZERO_TWIST and "no reading from '/joy'" in silent.fault
    assert operator.step(joy.reading(up, buttons(9), 0.05), 0.7).twist is None
    # Messages again, dead-man still held: no motion until released and pressed.
    assert operator.step(joy.reading(up, buttons(9), 0.8), 0.8).twist is None
    assert operator.step(joy.reading(up, buttons(), 0.85), 0.85).twist is None
    assert operator.step(joy.reading(up, buttons(9), 0.9), 0.9).twist == pytest.approx((0.1, 0, 0, 0, 0, 0))


def test_a_message_without_a_mapped_button_is_a_fault_not_a_no_op() -> None:
    mapping = TeleopMapping.from_parameters({"input": "joy"}, layout=None)
    operator = Operator(mapping)
    joy = JoyInput()
    axes = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    operator.step(joy.reading(axes, buttons(), 0.0), 0.0)
    assert operator.step(joy.reading(axes, buttons(9), 0.01), 0.01).twist is not None
    short = operator.step(joy.reading(axes, buttons(9, count=11), 0.02), 0.02)
    assert short.twist == ZERO_TWIST
    assert short.fault.startswith("speed_up_button = 11: '/joy' has 11 buttons")
