"""Which axis and button does what: ``teleop_twist_joy``'s parameter names, plus ours for the rest.

Integrators who know ``teleop_twist_joy`` find its names with its meaning:
``require_enable_button``, ``enable_button``, ``enable_turbo_button``, ``axis_linear.{x,y,z}``,
``scale_linear.*``, ``scale_linear_turbo.*``, ``axis_angular.{roll,pitch,yaw}``,
``scale_angular.*``, ``scale_angular_turbo.*`` (an axis of -1 is unmapped; a negative scale
inverts). Ours: ``deadzone``, speed levels, frame, gripper, joint jog, e-stop and its reset
combination, episode buttons, and the input's own settings.

Defaults are for SDL's standard layout (:mod:`robot_brain.teleop.reading`; sticks up/left
positive, as ``joy`` publishes them), chosen so that each hand has one job at a time:

- left shoulder **held** = dead-man; right shoulder held = turbo (index fingers rest there);
- left stick: up = +x, left = +y; right stick: up = +z, left = +yaw (counter-clockwise seen
  from above, REP 103); roll and pitch unmapped (few operators can drive six axes at once;
  map them to the right stick in tool frame for wrist work);
- right trigger = gripper, proportionally; A closes, X opens (left of A, as "open" is left of
  "close" on most grippers' labels); Y toggles base/tool frame;
- B, the red button on Xbox-layout pads, is the e-stop: the one button a startled hand finds;
- D-pad up/down = speed level; left stick click = Cartesian / joint-jog mode; in joint mode
  D-pad left/right choose the joint (the left thumb) and the right stick's vertical moves it
  (the right thumb), so choosing and moving never need the same thumb;
- start = start an episode, or end it as a success; back = end it as a failure, or, right
  after an end, discard it; back + start held for ``estop_reset_hold`` while e-stopped =
  reset (two hands' worth of deliberate action; never one button).

:data:`PARAMETERS` is the table the ``teleop`` node declares (and ``config/teleop.yaml``
mirrors); :meth:`TeleopMapping.from_parameters` checks a full set of values against a device
layout and raises :class:`MappingError` naming the parameter, its value and what the device has.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from robot_brain.errors import ConfigurationError
from robot_brain.teleop.reading import SDL_LAYOUT, PadLayout

INPUTS = ("sdl", "joy")
FRAMES = ("base", "tool")
#: Twist components in the order of :attr:`TeleopMapping.twist_axes`: [vx vy vz wx wy wz].
LINEAR = ("x", "y", "z")
ANGULAR = ("roll", "pitch", "yaw")
TWIST_PARAMETERS = tuple(f"axis_linear.{name}" for name in LINEAR) + tuple(f"axis_angular.{name}" for name in ANGULAR)

# (name, default, description): declared by the teleop node in this order, mirrored in config/teleop.yaml.
PARAMETERS: tuple[tuple[str, Any, str], ...] = (
    ("input", "sdl", "sdl (a game pad through SDL2) or joy (sensor_msgs/Joy from game_controller_node or joy_node)"),
    ("device_id", 0, "input sdl: SDL device index of the pad, used when device_name is empty"),
    ("device_name", "", "input sdl: use the first pad whose name contains this (case-insensitive); empty: device_id"),
    ("joy_topic", "/joy", "input joy: the sensor_msgs/Joy topic"),
    ("joy_trigger_axes", [4, 5], "input joy: axes that are triggers, mapped to [0, 1] (released 0)"),
    ("joy_trigger_rest", 0.0, "input joy: a released trigger's value: 0.0 game_controller_node, 1.0 joy_node"),
    ("poll_rate", 100.0, "Pad polled, rules applied and commands published at this rate, Hz"),
    ("silence_timeout", 0.5, "No pad reading for this long: one zero twist and a fault, s"),
    ("require_enable_button", True, "No motion unless enable_button (the dead-man) is held"),
    ("enable_button", 9, "Dead-man button, held to move (default: left shoulder)"),
    ("enable_turbo_button", 10, "Held: the *_turbo scales (default: right shoulder; -1: none)"),
    ("axis_linear.x", 1, "Axis for linear x (default: left stick, up = +x; -1: none)"),
    ("axis_linear.y", 0, "Axis for linear y (default: left stick, left = +y; -1: none)"),
    ("axis_linear.z", 3, "Axis for linear z (default: right stick, up = +z; -1: none)"),
    ("scale_linear.x", 0.1, "Linear x at full deflection, speed level normal, m/s (negative: inverted)"),
    ("scale_linear.y", 0.1, "Linear y at full deflection, speed level normal, m/s"),
    ("scale_linear.z", 0.1, "Linear z at full deflection, speed level normal, m/s"),
    ("scale_linear_turbo.x", 0.25, "Linear x at full deflection with turbo held, m/s"),
    ("scale_linear_turbo.y", 0.25, "Linear y at full deflection with turbo held, m/s"),
    ("scale_linear_turbo.z", 0.25, "Linear z at full deflection with turbo held, m/s"),
    ("axis_angular.roll", -1, "Axis for angular x (roll) (default: none)"),
    ("axis_angular.pitch", -1, "Axis for angular y (pitch) (default: none)"),
    ("axis_angular.yaw", 2, "Axis for angular z (yaw) (default: right stick, left = +yaw)"),
    ("scale_angular.roll", 0.5, "Roll rate at full deflection, speed level normal, rad/s"),
    ("scale_angular.pitch", 0.5, "Pitch rate at full deflection, speed level normal, rad/s"),
    ("scale_angular.yaw", 0.5, "Yaw rate at full deflection, speed level normal, rad/s"),
    ("scale_angular_turbo.roll", 1.0, "Roll rate at full deflection with turbo held, rad/s"),
    ("scale_angular_turbo.pitch", 1.0, "Pitch rate at full deflection with turbo held, rad/s"),
    ("scale_angular_turbo.yaw", 1.0, "Yaw rate at full deflection with turbo held, rad/s"),
    ("deadzone", 0.1, "Stick and trigger values within this of rest read as rest; the rest is rescaled to [0, 1]"),
    ("slow_factor", 0.25, "Speed level slow: the normal scales times this, (0, 1]"),
    ("speed_up_button", 11, "Speed level slow -> normal (default: D-pad up; -1: none)"),
    ("speed_down_button", 12, "Speed level normal -> slow (default: D-pad down; -1: none)"),
    ("initial_frame", "base", "Twist frame at start-up: base (the arm's base link) or tool (its tip link)"),
    ("frame_toggle_button", 3, "Toggles base / tool frame (default: Y; -1: none)"),
    ("gripper_close_button", 0, "Closes the gripper (default: A; -1: none)"),
    ("gripper_open_button", 2, "Opens the gripper (default: X; -1: none)"),
    ("gripper_axis", 5, "Gripper closed as far as this axis is pressed (default: right trigger; -1: none)"),
    ("mode_toggle_button", 7, "Toggles Cartesian / joint-jog mode (default: left stick click; -1: none)"),
    ("jog_next_button", 14, "Joint-jog mode: next joint (default: D-pad right; -1: none)"),
    ("jog_previous_button", 13, "Joint-jog mode: previous joint (default: D-pad left; -1: none)"),
    ("jog_axis", 3, "Joint-jog mode: axis that moves the chosen joint (default: right stick, up = +)"),
    ("scale_jog", 0.3, "Joint-jog velocity at full deflection, speed level normal, rad/s or m/s"),
    ("scale_jog_turbo", 0.8, "Joint-jog velocity at full deflection with turbo held, rad/s or m/s"),
    ("estop_button", 1, "Engages the controller's software e-stop (default: B; -1: none)"),
    ("estop_reset_buttons", [4, 6], "Held together while e-stopped: reset (at least two; default: back + start)"),
    ("estop_reset_hold", 1.0, "How long estop_reset_buttons must be held together, s"),
    ("episode_start_button", 6, "Starts an episode; while recording, ends it labelled success (default: start)"),
    ("episode_failure_button", 4, "While recording, ends it labelled failure; right after an end, discards it (back)"),
    ("episode_stop_button", -1, "Ends the episode without a label (default: none)"),
    ("discard_window", 30.0, "The failure button discards an episode up to this long after its end, s (0: no limit)"),
)

#: Single-press roles, each of which needs its own button (parameter names).
BUTTON_ROLES = (
    "enable_button", "enable_turbo_button", "speed_up_button", "speed_down_button", "frame_toggle_button",
    "gripper_close_button", "gripper_open_button", "mode_toggle_button", "jog_next_button", "jog_previous_button",
    "estop_button", "episode_start_button", "episode_failure_button", "episode_stop_button",
)


class MappingError(ConfigurationError):
    """A button or axis map that cannot work: unknown index, duplicate use, bad reset combination, bad value."""


def default_parameters() -> dict[str, Any]:
    """Every parameter's default, by name (lists copied, so callers may change them)."""
    return {name: list(default) if isinstance(default, list) else default for name, default, _ in PARAMETERS}


@dataclass(frozen=True)
class TeleopMapping:
    """A checked set of teleop parameters. Build it with :meth:`from_parameters`, not directly."""

    input: str
    device_id: int
    device_name: str
    joy_topic: str
    joy_trigger_axes: tuple[int, ...]
    joy_trigger_rest: float
    poll_rate: float
    silence_timeout: float
    require_enable_button: bool
    enable_button: int
    enable_turbo_button: int
    #: Axis of [vx vy vz wx wy wz] (-1: unmapped).
    twist_axes: tuple[int, ...]
    twist_scales: tuple[float, ...]
    twist_scales_turbo: tuple[float, ...]
    deadzone: float
    slow_factor: float
    speed_up_button: int
    speed_down_button: int
    initial_frame: str
    frame_toggle_button: int
    gripper_close_button: int
    gripper_open_button: int
    gripper_axis: int
    mode_toggle_button: int
    jog_next_button: int
    jog_previous_button: int
    jog_axis: int
    scale_jog: float
    scale_jog_turbo: float
    estop_button: int
    estop_reset_buttons: tuple[int, ...]
    estop_reset_hold: float
    episode_start_button: int
    episode_failure_button: int
    episode_stop_button: int
    discard_window: float

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any] | None = None,
                        layout: PadLayout | None = SDL_LAYOUT) -> TeleopMapping:
        """Check ``values`` (missing names take their defaults) and, when ``layout`` is given, fit them to it.

        ``layout=None`` skips the device check (``input: joy``, where the device is known
        only from its first message; :meth:`check_layout` runs then).
        """
        merged = default_parameters()
        if values:
            unknown = sorted(set(values) - set(merged))
            if unknown:
                raise MappingError(f"unknown teleop parameter(s) {', '.join(unknown)}; known: {', '.join(merged)}")
            merged.update(values)
        get = _Reader(merged)
        mapping = cls(
            input=get.choice("input", INPUTS),
            device_id=get.index("device_id", allow_unmapped=False),
            device_name=get.text("device_name"),
            joy_topic=get.text("joy_topic"),
            joy_trigger_axes=get.indices("joy_trigger_axes"),
            joy_trigger_rest=get.number("joy_trigger_rest", low=-1.0, high=1.0, low_open=True),
            poll_rate=get.number("poll_rate", low=0.0, high=1000.0, low_open=True),
            silence_timeout=get.number("silence_timeout", low=0.0, low_open=True),
            require_enable_button=get.flag("require_enable_button"),
            enable_button=get.index("enable_button"),
            enable_turbo_button=get.index("enable_turbo_button"),
            twist_axes=tuple(get.index(name) for name in TWIST_PARAMETERS),
            twist_scales=tuple(get.number(f"scale_linear.{n}") for n in LINEAR)
            + tuple(get.number(f"scale_angular.{n}") for n in ANGULAR),
            twist_scales_turbo=tuple(get.number(f"scale_linear_turbo.{n}") for n in LINEAR)
            + tuple(get.number(f"scale_angular_turbo.{n}") for n in ANGULAR),
            deadzone=get.number("deadzone", low=0.0, high=1.0, high_open=True),
            slow_factor=get.number("slow_factor", low=0.0, high=1.0, low_open=True),
            speed_up_button=get.index("speed_up_button"),
            speed_down_button=get.index("speed_down_button"),
            initial_frame=get.choice("initial_frame", FRAMES),
            frame_toggle_button=get.index("frame_toggle_button"),
            gripper_close_button=get.index("gripper_close_button"),
            gripper_open_button=get.index("gripper_open_button"),
            gripper_axis=get.index("gripper_axis"),
            mode_toggle_button=get.index("mode_toggle_button"),
            jog_next_button=get.index("jog_next_button"),
            jog_previous_button=get.index("jog_previous_button"),
            jog_axis=get.index("jog_axis"),
            scale_jog=get.number("scale_jog"),
            scale_jog_turbo=get.number("scale_jog_turbo"),
            estop_button=get.index("estop_button"),
            estop_reset_buttons=get.indices("estop_reset_buttons"),
            estop_reset_hold=get.number("estop_reset_hold", low=0.0, low_open=True),
            episode_start_button=get.index("episode_start_button"),
            episode_failure_button=get.index("episode_failure_button"),
            episode_stop_button=get.index("episode_stop_button"),
            discard_window=get.number("discard_window", low=0.0),
        )
        mapping._check_consistency()
        if layout is not None:
            mapping.check_layout(layout)
        return mapping

    @classmethod
    def default(cls) -> TeleopMapping:
        return cls.from_parameters()

    # -- checks -------------------------------------------------------------------------

    def _check_consistency(self) -> None:
        if self.require_enable_button and self.enable_button < 0:
            raise MappingError("require_enable_button is true but enable_button = -1: give the dead-man a button")
        used: dict[int, str] = {}
        for role in BUTTON_ROLES:
            button = getattr(self, role)
            if button < 0:
                continue
            if button in used:
                raise MappingError(
                    f"{used[button]} = {button} and {role} = {button}: one button cannot do both "
                    f"({_button_name(button)})"
                )
            used[button] = role
        reset = self.estop_reset_buttons
        if len(set(reset)) < 2 or len(set(reset)) != len(reset) or any(b < 0 for b in reset):
            raise MappingError(
                f"estop_reset_buttons = {list(reset)}: a reset needs a combination of at least two different "
                "buttons held together, never one"
            )
        if self.estop_button >= 0 and self.estop_button in reset:
            raise MappingError(
                f"estop_reset_buttons = {list(reset)} contains estop_button = {self.estop_button}: "
                "the button that stops must not be part of the reset"
            )
        axes: dict[int, str] = {}
        for role, axis in (*zip(TWIST_PARAMETERS, self.twist_axes, strict=True), ("gripper_axis", self.gripper_axis)):
            if axis < 0:
                continue
            if axis in axes:
                raise MappingError(
                    f"{axes[axis]} = {axis} and {role} = {axis}: one axis cannot drive both ({_axis_name(axis)})"
                )
            axes[axis] = role
        if self.jog_axis >= 0 and self.jog_axis == self.gripper_axis:
            raise MappingError(
                f"jog_axis = {self.jog_axis} and gripper_axis = {self.gripper_axis}: in joint-jog mode one axis "
                "cannot drive both"
            )

    def check_layout(self, layout: PadLayout) -> None:
        """Every mapped axis and button exists on ``layout``, or a :class:`MappingError` names the first missing."""
        for name, axis in self.axis_parameters():
            if axis >= len(layout.axes):
                raise MappingError(f"{name} = {axis}: {layout.source} has {layout.describe_axes()}")
        for name, button in self.button_parameters():
            if button >= len(layout.buttons):
                raise MappingError(f"{name} = {button}: {layout.source} has {layout.describe_buttons()}")

    def axis_parameters(self) -> list[tuple[str, int]]:
        """(parameter, axis) of every mapped axis."""
        pairs = [*zip(TWIST_PARAMETERS, self.twist_axes, strict=True), ("gripper_axis", self.gripper_axis),
                 ("jog_axis", self.jog_axis)]
        return [(name, axis) for name, axis in pairs if axis >= 0]

    def button_parameters(self) -> list[tuple[str, int]]:
        """(parameter, button) of every mapped button, the reset combination's as ``estop_reset_buttons[i]``."""
        pairs = [(role, getattr(self, role)) for role in BUTTON_ROLES]
        pairs += [(f"estop_reset_buttons[{i}]", button) for i, button in enumerate(self.estop_reset_buttons)]
        return [(name, button) for name, button in pairs if button >= 0]

    # -- description (docs, picture, status) --------------------------------------------

    def controls(self, layout: PadLayout = SDL_LAYOUT) -> list[tuple[str, str]]:
        """(control, what it does) for every mapped control, in a reading order: the operator's button map."""
        rows: list[tuple[str, str]] = []

        def button(index: int, action: str) -> None:
            if index >= 0:
                rows.append((_name(layout.buttons, index, "button"), action))

        def axis(index: int, action: str) -> None:
            if index >= 0:
                rows.append((_name(layout.axes, index, "axis"), action))

        if self.require_enable_button:
            button(self.enable_button, "dead-man: hold to move (release: stop)")
        button(self.enable_turbo_button, "turbo: hold for the turbo speeds")
        for index, (component, axis_index) in enumerate(zip(LINEAR + ANGULAR, self.twist_axes, strict=True)):
            if axis_index < 0:
                continue
            scale = self.twist_scales[index]
            direction = _positive_direction if scale >= 0 else _negative_direction
            positive = direction(axis_index, layout)
            unit = "m/s" if index < 3 else "rad/s"
            kind = "linear" if index < 3 else "angular"
            axis(axis_index, f"{kind} {component}: {positive} = +{component} (up to {abs(scale):g} {unit})")
        axis(self.gripper_axis, "gripper: closes as far as pressed")
        button(self.gripper_close_button, "gripper: close")
        button(self.gripper_open_button, "gripper: open")
        button(self.frame_toggle_button, "toggle base / tool frame")
        button(self.speed_up_button, "speed level up (slow -> normal)")
        button(self.speed_down_button, "speed level down (normal -> slow)")
        button(self.mode_toggle_button, "toggle Cartesian / joint-jog mode")
        button(self.jog_previous_button, "joint-jog: previous joint")
        button(self.jog_next_button, "joint-jog: next joint")
        if self.jog_axis >= 0:
            direction = _positive_direction(self.jog_axis, layout) if self.scale_jog >= 0 else "down"
            axis(self.jog_axis, f"joint-jog: move the chosen joint ({direction} = +)")
        button(self.estop_button, "E-STOP (latches)")
        combination = " + ".join(_name(layout.buttons, b, "button") for b in self.estop_reset_buttons)
        rows.append((combination, f"hold {self.estop_reset_hold:g} s while e-stopped: reset the e-stop"))
        button(self.episode_start_button, "episode: start; while recording: end as success")
        window = f"within {self.discard_window:g} s" if self.discard_window > 0 else "before the next start"
        button(self.episode_failure_button,
               f"episode: while recording: end as failure; after an end ({window}): discard")
        button(self.episode_stop_button, "episode: end without a label")
        return rows


class _Reader:
    """Typed access to parameter values, each failure naming the parameter and the value found."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    def _raw(self, name: str) -> Any:
        return self.values[name]

    def flag(self, name: str) -> bool:
        value = self._raw(name)
        if not isinstance(value, bool):
            raise MappingError(f"{name} must be true or false, found {value!r}")
        return value

    def text(self, name: str) -> str:
        value = self._raw(name)
        if not isinstance(value, str):
            raise MappingError(f"{name} must be a string, found {value!r}")
        return value

    def choice(self, name: str, choices: Iterable[str]) -> str:
        value = self.text(name).strip()
        options = tuple(choices)
        if value not in options:
            raise MappingError(f"{name} = {value!r}: expected one of {', '.join(options)}")
        return value

    def index(self, name: str, allow_unmapped: bool = True) -> int:
        value = self._raw(name)
        lowest = -1 if allow_unmapped else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            expected = "an index >= 0 or -1 (none)" if allow_unmapped else "an index >= 0"
            raise MappingError(f"{name} = {value!r}: expected {expected}")
        return value

    def indices(self, name: str) -> tuple[int, ...]:
        value = self._raw(name)
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise MappingError(f"{name} = {value!r}: expected a list of indices")
        items = tuple(value)
        if any(isinstance(item, bool) or not isinstance(item, int) or item < 0 for item in items):
            raise MappingError(f"{name} = {list(items)!r}: expected indices >= 0")
        return items

    def number(self, name: str, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
               high_open: bool = False) -> float:
        value = self._raw(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise MappingError(f"{name} = {value!r}: expected a finite number")
        value = float(value)
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high:
            left = "(" if low_open else "["
            right = ")" if high_open else "]"
            raise MappingError(f"{name} = {value:g}: expected a value in {left}{low:g}, {high:g}{right}")
        return value


def _name(names: tuple[str, ...], index: int, kind: str) -> str:
    return names[index] if 0 <= index < len(names) else f"{kind} {index}"


def _button_name(index: int) -> str:
    return f"SDL: {_name(SDL_LAYOUT.buttons, index, 'button')}"


def _axis_name(index: int) -> str:
    return f"SDL: {_name(SDL_LAYOUT.axes, index, 'axis')}"


def _positive_direction(axis: int, layout: PadLayout) -> str:
    """Which way an axis reads positive (sticks: up/left, as ``joy`` publishes them; triggers: pressed)."""
    name = _name(layout.axes, axis, "axis")
    if name.endswith(" y"):
        return "up"
    if name.endswith(" x"):
        return "left"
    return "pressed"


def _negative_direction(axis: int, layout: PadLayout) -> str:
    return {"up": "down", "left": "right"}.get(_positive_direction(axis, layout), "released")
