"""``sensor_msgs/Joy`` content (plain arrays) as a :class:`~robot_brain.teleop.reading.PadReading`.

For cells that already run ROS's ``joy`` package (``input: joy``). What is assumed, from
``joy``'s sources (``joy/src/game_controller.cpp`` and ``joy.cpp``):

- **Order.** ``game_controller_node`` publishes SDL's GameController order (6 axes, then 15
  buttons, or 21 with the misc/paddle/touchpad ones): the same indices as
  :mod:`~robot_brain.teleop.reading`, so the default map works unchanged. ``joy_node`` uses
  SDL's raw joystick order, which depends on the pad (and puts the D-pad on two extra hat
  axes): remap with the ``axis_*``/``*_button`` parameters.
- **Sticks.** Both nodes scale by 1/32767, apply their own ``deadzone`` (0.05 by default) and
  invert the sign, so up and left are positive: our convention already; passed through,
  clamped to [-1, 1].
- **Triggers.** The same inversion applies to triggers, so a trigger does **not** arrive in
  [0, 1]. ``game_controller_node``: SDL gives 0 (released) .. 32767 (pressed), published as
  0 .. -1. ``joy_node``: most pads' trigger axes rest at -32768, published as +1 (released) ..
  -1 (pressed). :class:`JoyInput` takes the axes that are triggers and the value they rest at
  (``joy_trigger_axes``, ``joy_trigger_rest``: 0.0 for ``game_controller_node``, 1.0 for
  ``joy_node``) and maps ``rest .. -1`` linearly onto 0 .. 1.
- **Buttons.** Non-zero is pressed (``sticky_buttons`` would make them toggles: leave it off).
- **Silence.** Both nodes publish on change and repeat at ``autorepeat_rate`` (20 Hz by
  default) while a pad is open, and publish nothing while none is. The operator's
  ``silence_timeout`` must be longer than ``1 / autorepeat_rate``; with ``autorepeat_rate: 0``
  a pad held still looks silent.

Readings are stamped with the time of arrival on the caller's clock, not the message header:
a header from another machine's clock cannot be compared with ours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from robot_brain.errors import ConfigurationError
from robot_brain.teleop.reading import TRIGGER_AXES, PadReading

#: ``joy_trigger_rest`` for ``game_controller_node`` (triggers 0 released .. -1 pressed).
GAME_CONTROLLER_TRIGGER_REST = 0.0
#: ``joy_trigger_rest`` for ``joy_node`` on most pads (triggers +1 released .. -1 pressed).
JOY_NODE_TRIGGER_REST = 1.0


class JoyInput:
    """Converts the arrays of ``Joy`` messages from one source into readings.

    ``device`` names the source in readings and faults (the topic, e.g. ``/joy``). A
    non-finite axis value reads as centred (a stick) or released (a trigger): a corrupt
    message must never command motion.
    """

    def __init__(
        self,
        device: str = "/joy",
        trigger_axes: Sequence[int] = TRIGGER_AXES,
        trigger_rest: float = GAME_CONTROLLER_TRIGGER_REST,
    ) -> None:
        if not (math.isfinite(trigger_rest) and -1.0 < trigger_rest <= 1.0):
            raise ConfigurationError(
                f"joy_trigger_rest must be in (-1, 1] (0.0 game_controller_node, 1.0 joy_node), found {trigger_rest}"
            )
        axes = tuple(trigger_axes)
        if any(isinstance(axis, bool) or not isinstance(axis, int) or axis < 0 for axis in axes):
            raise ConfigurationError(f"joy_trigger_axes must be axis indices >= 0, found {list(axes)}")
        self.device = device
        self.trigger_axes = frozenset(axes)
        self.trigger_rest = float(trigger_rest)
        self._trigger_span = self.trigger_rest + 1.0

    def reading(self, axes: Sequence[float], buttons: Sequence[int], stamp: float) -> PadReading:
        """One ``Joy`` message's ``axes`` and ``buttons``, received at ``stamp``, as a connected reading."""
        converted = tuple(self._axis(index, float(value)) for index, value in enumerate(axes))
        return PadReading(converted, tuple(bool(button) for button in buttons), True, self.device, stamp)

    def _axis(self, index: int, value: float) -> float:
        if index in self.trigger_axes:
            if not math.isfinite(value):
                return 0.0
            pressed = (self.trigger_rest - value) / self._trigger_span
            return 1.0 if pressed > 1.0 else 0.0 if pressed < 0.0 else pressed
        if not math.isfinite(value):
            return 0.0
        return 1.0 if value > 1.0 else -1.0 if value < -1.0 else value
