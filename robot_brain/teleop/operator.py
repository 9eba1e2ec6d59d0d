"""The operator's rules as a pure state machine: a pad reading and the time in, what to publish out.

``Operator.step(reading, now) -> Intent``, called by the ``teleop`` node's worker thread at
``poll_rate``. No clock, no thread, no ROS inside: every rule is testable with made-up
readings and times. The rules (issue 9):

- **Dead-man.** With ``require_enable_button`` no motion (twist, joint jog, gripper) unless
  the enable button is held. Releasing it yields exactly one zero command at once, then
  nothing (the controller's policy, if any, takes over again after its teleop timeout).
- **Arming.** Motion needs the dead-man to have been seen *released* and then pressed since
  the pad (re)connected, since an e-stop, and since a reset: a stick or a dead-man held
  through an unplug, a silence or an e-stop never resumes motion by itself. Without
  ``require_enable_button`` the sticks must be seen centred instead.
- **Lost pad.** A disconnected reading, a reading older than ``silence_timeout``, or one that
  lacks a mapped axis or button: one zero command at once (if motion was being commanded)
  and a fault naming the device, until it comes back (then arming again).
- **Edges, not levels.** Toggles (frame, mode, speed, joint choice), gripper buttons, e-stop
  and episode buttons act when pressed, once. Buttons already held when a pad (re)connects
  count as held, not pressed, except the e-stop button: held at connection it e-stops.
- **E-stop** on its button's press. **Reset** only while e-stopped, by the reset combination
  pressed together and held for ``estop_reset_hold``; while e-stopped, the combination's
  buttons do nothing else (by default they are also the episode buttons).
- **Speed**: slow / normal (D-pad) scale the normal scales by ``slow_factor`` / 1; turbo while
  its button is held uses the ``*_turbo`` scales.
- **Gripper**: the close/open buttons set 1 / 0; the gripper axis, once pressed past the
  dead zone, drives the target proportionally (released: open) until a button is pressed.
- **Episodes**: start while idle starts; while recording start ends as success, the failure
  button as failure; the failure button while idle within ``discard_window`` of an end
  discards that episode. Start and failure pressed together are ignored (ambiguous).

Every :class:`Intent` is a new immutable object so the node may hand it to its display or
publisher threads without copying; at 100-200 Hz that allocation is negligible.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from robot_brain.errors import UserError
from robot_brain.teleop.mapping import TeleopMapping
from robot_brain.teleop.reading import PadReading, counted_layout

ZERO_TWIST = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
SPEED_LEVELS = ("slow", "normal", "turbo")
MODES = ("cartesian", "joint")
#: Episode request events (``robot_brain_msgs/EpisodeEvent`` constants).
START, STOP, SUCCESS, FAILURE, DISCARD = "start", "stop", "success", "failure", "discard"


@dataclass(frozen=True, slots=True)
class JogRequest:
    """Move one arm joint (index in the arm's base-to-tip order, and its name) at ``velocity`` (rad/s or m/s)."""

    joint: int
    name: str
    velocity: float


@dataclass(frozen=True, slots=True)
class EpisodeRequest:
    """An episode request for ``/episode/events``: ``event`` is an ``EpisodeEvent`` constant, ``label`` its outcome.

    ``success`` and ``failure`` end the episode and label it (``label`` repeats the event);
    ``stop`` ends it unlabelled; ``discard`` deletes the episode that just ended.
    """

    event: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class Status:
    """What the operator sees on the terminal's status line (see :func:`status_line`)."""

    device: str
    connected: bool
    deadman: str  # "held", "released", "re-arm" (release it, then press), "not required"
    frame: str
    speed: str
    gripper: float | None
    estopped: bool
    mode: str
    joint: str  # the joint joint-jog mode moves ("" when the arm has no joints given)
    episode: str  # "idle" or "recording"
    fault: str


@dataclass(frozen=True, slots=True)
class Intent:
    """What one step asks the node to do.

    - ``twist``: ``[vx vy vz wx wy wz]`` (m/s, rad/s) in ``frame`` to publish now, already
      scaled by the speed level; ``None``: publish nothing.
    - ``frame``: ``"base"`` or ``"tool"`` (the node writes the base or tip link into ``header.frame_id``).
    - ``gripper``: target in [0, 1] (0 open, 1 closed) to send now, or ``None``.
    - ``jog``: a joint-jog command to publish now, or ``None``.
    - ``estop`` / ``reset``: call the controller's ``~/estop`` / ``~/reset`` now (edges: once each).
    - ``episode``: episode requests to publish now (edges).
    - ``fault``: non-empty while the pad is lost (diagnostics ERROR); empty otherwise.
    """

    twist: tuple[float, ...] | None
    frame: str
    gripper: float | None
    jog: JogRequest | None
    estop: bool
    reset: bool
    episode: tuple[EpisodeRequest, ...]
    fault: str
    status: Status


class Operator:
    """The operator's rules for one pad and one arm; see the module docstring. Not thread-safe, except ``observe_*``.

    ``joint_names``: the arm's joints, base to tip, for joint-jog mode (none: the mode is off).
    """

    def __init__(self, mapping: TeleopMapping, joint_names: Sequence[str] = ()) -> None:
        self.mapping = mapping
        self.joint_names = tuple(joint_names)
        self.frame = mapping.initial_frame
        self.speed = "normal"
        self.mode = "cartesian"
        self.joint = 0
        self.gripper: float | None = None
        self.estopped = False
        self.episode = "idle"
        self._trigger_active = False
        self._armed_seen = False  # dead-man seen released (or sticks centred) since the last disarm
        self._streaming: str | None = None  # "twist" or "jog": what the last step commanded
        self._previous: tuple[bool, ...] | None = None  # buttons of the last usable reading
        self._ever_connected = False
        self._reset_since: float | None = None
        self._reset_done = False
        self._reset_complete_before = False
        self._ended_at: float | None = None
        self._layout_checked: dict[tuple[int, int], str] = {}
        self._observations = threading.Lock()
        self._observed_estop: bool | None = None
        self._observed_recording: bool | None = None
        self._twist_axes = tuple(enumerate(mapping.twist_axes))
        self._motion_axes = tuple(a for a in (*mapping.twist_axes, mapping.jog_axis) if a >= 0)

    # -- what the node learns from elsewhere (any thread) ---------------------------------

    def observe_estop(self, estopped: bool) -> None:
        """The controller's ``~/estopped`` state (it may be e-stopped or reset by someone else)."""
        with self._observations:
            self._observed_estop = bool(estopped)

    def observe_episode(self, recording: bool) -> None:
        """The recorder's answer: recording or not (a refused start, a save, an error)."""
        with self._observations:
            self._observed_recording = bool(recording)

    # -- the rules ----------------------------------------------------------------------

    def step(self, reading: PadReading | None, now: float) -> Intent:
        """Apply the rules to the latest reading (``None``: none yet) at time ``now`` (the readings' clock)."""
        self._apply_observations()
        m = self.mapping
        device = reading.device if reading is not None else m.joy_topic if m.input == "joy" else "game pad"
        fault = self._usable(reading, now)
        if fault is not None:
            return self._lost(device, fault)
        assert reading is not None
        self._ever_connected = True
        buttons = reading.buttons
        estop = reset = False
        if self._previous is None:
            # (Re)connected: what is held now is a level, not a press. The e-stop is the exception.
            self._previous = buttons
            self._reset_complete_before = self._reset_complete(buttons)
            if m.estop_button >= 0 and buttons[m.estop_button]:
                estop = self._engage_estop()
        previous = self._previous
        self._previous = buttons

        def pressed(button: int) -> bool:
            return button >= 0 and buttons[button] and not previous[button]

        if pressed(m.estop_button):  # every press asks again: a lost service call must not need a new e-stop
            estop = self._engage_estop()
        reserved = frozenset(m.estop_reset_buttons) if self.estopped else frozenset()
        if self.estopped:
            reset = self._reset_rule(buttons, now)
        else:
            self._reset_since = None
            self._reset_complete_before = self._reset_complete(buttons)

        def edge(button: int) -> bool:
            return button not in reserved and pressed(button)

        self._toggle_rules(edge)
        episode = self._episode_rule(edge, buttons, now)

        held = self._deadman_held(reading)
        engaged = held and self._armed_seen and not self.estopped
        turbo = m.enable_turbo_button >= 0 and buttons[m.enable_turbo_button]
        gripper: float | None = None
        if engaged:
            twist, jog, gripper = self._engaged_motion(reading, edge, turbo)
        else:
            twist, jog = self._stop()
            self._trigger_active = False
        status = self._status(device, True, "", held, turbo)
        return Intent(twist, self.frame, gripper, jog, estop, reset, episode, "", status)

    # -- rule helpers -------------------------------------------------------------------

    def _toggle_rules(self, edge: Callable[[int], bool]) -> None:
        """The toggles on their presses: frame, speed level, cartesian/joint mode and the jogged joint."""
        m = self.mapping
        if edge(m.frame_toggle_button):
            self.frame = "tool" if self.frame == "base" else "base"
        if edge(m.speed_up_button):
            self.speed = "normal"
        if edge(m.speed_down_button):
            self.speed = "slow"
        if edge(m.mode_toggle_button) and self.joint_names:
            self.mode = "joint" if self.mode == "cartesian" else "cartesian"
        if self.mode == "joint" and self.joint_names:
            count = len(self.joint_names)
            if edge(m.jog_next_button):
                self.joint = (self.joint + 1) % count
            if edge(m.jog_previous_button):
                self.joint = (self.joint - 1) % count

    def _engaged_motion(
        self, reading: PadReading, edge: Callable[[int], bool], turbo: bool
    ) -> tuple[tuple[float, ...] | None, JogRequest | None, float | None]:
        """Armed and dead-man held: the (twist, jog, gripper) to send, scaled by the speed level."""
        m = self.mapping
        twist: tuple[float, ...] | None = None
        jog: JogRequest | None = None
        factor = 1.0 if turbo else m.slow_factor if self.speed == "slow" else 1.0
        if self.mode == "cartesian":
            scales = m.twist_scales_turbo if turbo else m.twist_scales
            twist = tuple(
                self._axis(reading, axis) * scales[i] * factor if axis >= 0 else 0.0 for i, axis in self._twist_axes
            )
            if self._streaming == "jog":
                jog = self._zero_jog()
        else:
            scale = m.scale_jog_turbo if turbo else m.scale_jog
            velocity = self._axis(reading, m.jog_axis) * scale * factor if m.jog_axis >= 0 else 0.0
            jog = JogRequest(self.joint, self.joint_names[self.joint], velocity)
            if self._streaming == "twist":
                twist = ZERO_TWIST
        if not m.require_enable_button and not any(twist or ()) and (jog is None or jog.velocity == 0.0):
            # Without a dead-man, centred sticks mean "hands off": one zero, then the policy may run.
            twist, jog = self._stop()
        else:
            self._streaming = "jog" if self.mode == "joint" else "twist"
        gripper = self._gripper_rule(reading, edge)
        return twist, jog, gripper

    def _usable(self, reading: PadReading | None, now: float) -> str | None:
        """None when the reading may be used; otherwise the fault ("" when merely waiting for a first pad)."""
        if reading is None:
            return ""
        if not reading.connected:
            return f"game pad '{reading.device}' disconnected" if self._ever_connected else ""
        age = now - reading.stamp
        if age > self.mapping.silence_timeout:
            limit = self.mapping.silence_timeout
            return f"no reading from '{reading.device}' for {age:.2f} s (silence_timeout {limit:g} s)"
        shape = (len(reading.axes), len(reading.buttons))
        problem = self._layout_checked.get(shape)
        if problem is None:
            try:
                self.mapping.check_layout(counted_layout(shape[0], shape[1], f"'{reading.device}'"))
                problem = ""
            except UserError as error:
                problem = str(error)
            if len(self._layout_checked) < 16:
                self._layout_checked[shape] = problem
        return problem or None

    def _lost(self, device: str, fault: str) -> Intent:
        """No usable reading: stop once, disarm, forget the buttons, report."""
        twist, jog = self._stop()
        self._disarm()
        self._trigger_active = False
        self._reset_since = None
        status = self._status(device, False, fault, False, False)
        return Intent(twist, self.frame, None, jog, False, False, (), fault, status)

    def _stop(self) -> tuple[tuple[float, ...] | None, JogRequest | None]:
        """One zero command of the kind that was streaming, then nothing."""
        kind, self._streaming = self._streaming, None
        if kind == "twist":
            return ZERO_TWIST, None
        if kind == "jog":
            return None, self._zero_jog()
        return None, None

    def _zero_jog(self) -> JogRequest | None:
        if not self.joint_names:
            return None
        return JogRequest(self.joint, self.joint_names[self.joint], 0.0)

    def _disarm(self) -> None:
        self._armed_seen = False
        self._previous = None

    def _engage_estop(self) -> bool:
        self.estopped = True
        self._armed_seen = False
        self._reset_since = None
        self._reset_done = False
        return True

    def _reset_complete(self, buttons: tuple[bool, ...]) -> bool:
        return all(buttons[b] for b in self.mapping.estop_reset_buttons)

    def _reset_rule(self, buttons: tuple[bool, ...], now: float) -> bool:
        """Reset when the combination, completed by a press while e-stopped, has been held for estop_reset_hold."""
        complete = self._reset_complete(buttons)
        if not complete:
            self._reset_since = None
            self._reset_done = False
        elif not self._reset_complete_before:
            self._reset_since = now
        self._reset_complete_before = complete
        if complete and self._reset_since is not None and not self._reset_done:
            if now - self._reset_since >= self.mapping.estop_reset_hold:
                self._reset_done = True
                self.estopped = False
                self._armed_seen = False
                return True
        return False

    def _deadman_held(self, reading: PadReading) -> bool:
        """Whether motion is asked for; also records the release (or centring) that arms the pad."""
        m = self.mapping
        if m.require_enable_button:
            held = reading.buttons[m.enable_button]
            if not held:
                self._armed_seen = True
            return held
        centred = all(self._axis(reading, axis) == 0.0 for axis in self._motion_axes)
        if centred:
            self._armed_seen = True
        return True

    def _axis(self, reading: PadReading, axis: int) -> float:
        """The axis value with the dead zone taken out and the rest rescaled to full range (NaN reads 0)."""
        value = reading.axes[axis]
        size = value if value >= 0.0 else -value
        deadzone = self.mapping.deadzone
        if not size > deadzone:  # also NaN
            return 0.0
        scaled = (min(size, 1.0) - deadzone) / (1.0 - deadzone)
        return scaled if value > 0.0 else -scaled

    def _gripper_rule(self, reading: PadReading, edge: Callable[[int], bool]) -> float | None:
        m = self.mapping
        if edge(m.gripper_close_button):
            self.gripper, self._trigger_active = 1.0, False
        elif edge(m.gripper_open_button):
            self.gripper, self._trigger_active = 0.0, False
        elif m.gripper_axis >= 0:
            value = max(self._axis(reading, m.gripper_axis), 0.0)
            if value > 0.0:
                self._trigger_active = True
            if self._trigger_active:
                self.gripper = value
        return self.gripper

    def _episode_rule(self, edge: Callable[[int], bool], buttons: tuple[bool, ...],
                      now: float) -> tuple[EpisodeRequest, ...]:
        m = self.mapping
        start, failure = edge(m.episode_start_button), edge(m.episode_failure_button)
        start_held = m.episode_start_button >= 0 and buttons[m.episode_start_button]
        failure_held = m.episode_failure_button >= 0 and buttons[m.episode_failure_button]
        if (start and failure_held) or (failure and start_held):
            return ()  # both at once: ambiguous, and never a reason to lose an episode
        if self.episode == "recording":
            if start:
                return self._end(SUCCESS, SUCCESS, now)
            if failure:
                return self._end(FAILURE, FAILURE, now)
            if edge(m.episode_stop_button):
                return self._end(STOP, "", now)
            return ()
        if start:
            self.episode = "recording"
            self._ended_at = None
            return (EpisodeRequest(START),)
        if failure and self._ended_at is not None:
            window = m.discard_window
            if window == 0.0 or now - self._ended_at <= window:
                self._ended_at = None
                return (EpisodeRequest(DISCARD),)
        return ()

    def _end(self, event: str, label: str, now: float) -> tuple[EpisodeRequest, ...]:
        self.episode = "idle"
        self._ended_at = now
        return (EpisodeRequest(event, label),)

    def _apply_observations(self) -> None:
        with self._observations:
            estop, self._observed_estop = self._observed_estop, None
            recording, self._observed_recording = self._observed_recording, None
        if estop is not None and estop != self.estopped:
            if estop:
                self._engage_estop()
            else:
                self.estopped = False
                self._armed_seen = False
        if recording is not None:
            self.episode = "recording" if recording else "idle"

    def _status(self, device: str, connected: bool, fault: str, held: bool, turbo: bool) -> Status:
        m = self.mapping
        if not m.require_enable_button:
            deadman = "not required"
        elif not connected or not held:
            deadman = "released"
        else:
            deadman = "held" if self._armed_seen and not self.estopped else "re-arm"
        joint = self.joint_names[self.joint] if self.joint_names else ""
        speed = "turbo" if turbo else self.speed
        return Status(device, connected, deadman, self.frame, speed, self.gripper, self.estopped, self.mode, joint,
                      self.episode, fault)


def status_line(status: Status, width: int = 120) -> str:
    """One terminal line: device, dead-man, frame, speed, gripper, e-stop, mode, episode (a fault first).

    ``width`` bounds the line (the device name is shortened first) so a carriage return can
    overwrite it in place.
    """
    gripper = "-" if status.gripper is None else f"{status.gripper:.2f}"
    mode = f"jog {status.joint}" if status.mode == "joint" else "cartesian"
    parts = [
        f"dead-man {status.deadman}",
        f"frame {status.frame}",
        f"speed {status.speed}",
        f"gripper {gripper}",
        "E-STOPPED" if status.estopped else "e-stop off",
        mode,
        f"episode {status.episode}",
    ]
    if status.fault:
        head = f"FAULT: {status.fault}"
    elif not status.connected:
        head = f"waiting for {status.device}"
    else:
        head = f"pad {status.device}"
    tail = " | " + " | ".join(parts)
    room = max(width - len(tail), 16)
    if len(head) > room:
        head = head[: room - 1] + "…"
    return (head + tail)[:width]
