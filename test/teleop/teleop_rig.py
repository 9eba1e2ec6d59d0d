"""A test rig: a real SDL virtual pad, read by a real :class:`Gamepad`, fed to an :class:`Operator` on a test clock.

The clock is the test's: each :meth:`Rig.step` advances it by one poll period, so timing rules
(reset hold, silence, discard window) are tested exactly and without sleeping.
"""

from __future__ import annotations

from typing import Any

from robot_brain.teleop.gamepad import Gamepad
from robot_brain.teleop.mapping import TeleopMapping
from robot_brain.teleop.operator import Intent, Operator
from robot_brain.teleop.reading import PadReading
from robot_brain.teleop.virtual_pad import VirtualPad

# SDL standard layout indices used by the default map.
A, B, X, Y, BACK, START, LEFT_STICK, LEFT_SHOULDER, RIGHT_SHOULDER = 0, 1, 2, 3, 4, 6, 7, 9, 10
DPAD_UP, DPAD_DOWN, DPAD_LEFT, DPAD_RIGHT = 11, 12, 13, 14
LEFT_X, LEFT_Y, RIGHT_X, RIGHT_Y, LEFT_TRIGGER, RIGHT_TRIGGER = 0, 1, 2, 3, 4, 5
DEADMAN = LEFT_SHOULDER


class Rig:
    def __init__(self, pad: VirtualPad, gamepad: Gamepad, operator: Operator, period: float = 0.01) -> None:
        self.pad = pad
        self.gamepad = gamepad
        self.operator = operator
        self.period = period
        self.now = 100.0
        self.reading: PadReading | None = None

    @property
    def mapping(self) -> TeleopMapping:
        return self.operator.mapping

    def step(self, seconds: float | None = None) -> Intent:
        """Advance the clock (one period by default), poll the pad, apply the rules."""
        self.now += self.period if seconds is None else seconds
        self.reading = self.gamepad.poll(self.now)
        return self.operator.step(self.reading, self.now)

    def steps(self, count: int) -> list[Intent]:
        return [self.step() for _ in range(count)]

    def hold(self, *buttons: int) -> Intent:
        for button in buttons:
            self.pad.set_button(button, True)
        return self.step()

    def release(self, *buttons: int) -> Intent:
        for button in buttons:
            self.pad.set_button(button, False)
        return self.step()

    def click(self, button: int) -> Intent:
        """Press and release: returns the intent of the press."""
        intent = self.hold(button)
        self.release(button)
        return intent

    def engage(self) -> Intent:
        """Dead-man released then held: motion allowed from the returned step on."""
        self.release(DEADMAN)
        return self.hold(DEADMAN)


def flatten_parameters(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML keys as ROS 2 parameter names (``axis_linear: {x: 1}`` is ``axis_linear.x``), as rcl reads them."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_parameters(value, f"{name}."))
        else:
            flat[name] = value
    return flat
