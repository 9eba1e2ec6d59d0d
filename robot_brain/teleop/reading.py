"""One reading of a game pad, whatever it came from (SDL, a ``sensor_msgs/Joy`` message, a virtual pad).

Order: SDL's standard GameController layout, which ``joy``'s ``game_controller_node`` also
uses, so indices mean the same thing on every input path:

- axes: 0 left x, 1 left y, 2 right x, 3 right y, 4 left trigger, 5 right trigger;
- buttons: 0 A, 1 B, 2 X, 3 Y, 4 back, 5 guide, 6 start, 7 left stick, 8 right stick,
  9 left shoulder, 10 right shoulder, 11-14 D-pad up, down, left, right.

Signs: the ROS ``joy`` convention, not SDL's raw one. Sticks are in [-1, 1] with **up and
left positive** (SDL reports up and left negative; ``game_controller_node`` inverts them, and
so do we), so a ``teleop_twist_joy`` configuration written for ``joy`` works here with the
same positive scales. Triggers are in [0, 1], 0 released and 1 fully pressed.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Axis names of SDL's standard GameController layout, by index.
SDL_AXES = ("left stick x", "left stick y", "right stick x", "right stick y", "left trigger", "right trigger")
#: Button names of SDL's standard GameController layout, by index.
SDL_BUTTONS = (
    "A", "B", "X", "Y", "back", "guide", "start", "left stick click", "right stick click",
    "left shoulder", "right shoulder", "D-pad up", "D-pad down", "D-pad left", "D-pad right",
)
#: Indices of the trigger axes in the standard layout (range [0, 1]; the other axes are [-1, 1]).
TRIGGER_AXES = (4, 5)
#: SDL's axis range: ``Sint16``.
SDL_AXIS_MAX = 32767


@dataclass(frozen=True, slots=True)
class PadLayout:
    """What a device offers: the names of its axes and buttons (their count is what mappings are checked against)."""

    axes: tuple[str, ...]
    buttons: tuple[str, ...]
    source: str

    def describe_axes(self) -> str:
        """``6 axes (0 left stick x, 1 ...)`` for error messages."""
        return _describe(self.axes, "axis", "axes")

    def describe_buttons(self) -> str:
        return _describe(self.buttons, "button", "buttons")


def _describe(names: tuple[str, ...], singular: str, plural: str) -> str:
    if not names:
        return f"no {plural}"
    listed = ", ".join(f"{index} {name}" for index, name in enumerate(names))
    return f"{len(names)} {singular if len(names) == 1 else plural} ({listed})"


#: Every SDL game controller, real or virtual, has this layout.
SDL_LAYOUT = PadLayout(SDL_AXES, SDL_BUTTONS, "an SDL game controller")


def counted_layout(axes: int, buttons: int, source: str) -> PadLayout:
    """A layout known only by its counts (a ``Joy`` message): standard names where the index has one."""
    return PadLayout(
        tuple(SDL_AXES[i] if i < len(SDL_AXES) else f"axis {i}" for i in range(axes)),
        tuple(SDL_BUTTONS[i] if i < len(SDL_BUTTONS) else f"button {i}" for i in range(buttons)),
        source,
    )


@dataclass(frozen=True, slots=True)
class PadReading:
    """The state of one pad at one time; immutable, so it can be handed to another thread as is.

    ``device`` names the pad (its SDL name, or what the selection asked for before any pad
    was found); ``stamp`` is when the state was read, on the caller's clock (the operator
    compares it with its own ``now`` to detect a silent pad). A disconnected reading has no
    axes and no buttons: nothing in it may be mistaken for a released dead-man.
    """

    axes: tuple[float, ...]
    buttons: tuple[bool, ...]
    connected: bool
    device: str
    stamp: float

    @classmethod
    def disconnected(cls, device: str, stamp: float) -> PadReading:
        return cls((), (), False, device, stamp)


def stick_from_sdl(raw: int) -> float:
    """An SDL stick value (``Sint16``, down/right positive) as [-1, 1] with up/left positive.

    ``-32768`` maps to exactly 1.0: the range is divided by 32767 and clamped, as ``joy`` does.
    """
    value = -raw / SDL_AXIS_MAX
    return 1.0 if value > 1.0 else -1.0 if value < -1.0 else value


def trigger_from_sdl(raw: int) -> float:
    """An SDL GameController trigger value (0 .. 32767) as [0, 1]."""
    value = raw / SDL_AXIS_MAX
    return 1.0 if value > 1.0 else 0.0 if value < 0.0 else value
