"""Demonstrations without a person: a scripted operator drives the sim through the teleop node and the recorder records.

The nodes are exactly an operator's (``robot-brain teleop --sim --record``, with ``input: joy``):
sim, perception, arm controller, teleop, recorder. This process plays the person: a
``sensor_msgs/Joy`` pad published continuously (as ``joy_node`` does), moved by
:class:`robot_brain.teleop.expert.ScriptedOperator`. Per episode: the controller is
deactivated, the sim reset with the episode's seed and the new object located by perception
(:class:`robot_brain.demo.runner.DemoRunner`), the controller activated; the operator presses
start (the recorder starts an episode), drives the tool to the object seen with its own eyes
(the sim's object position), lets go, and presses start again on success (labelled success)
or back on a timeout (labelled failure). The recorder's answers on ``/episode/events`` are
awaited, so every demonstration is a saved episode in the data root, or a reason why not.

Nothing is synchronised by sleeping. Before pressing start the operator waits for the teleop
node's own status (``/teleop/status``: pad connected, nothing held, episode idle) to be one
published after the hands let go; before labelling it waits for ``/joint_states`` to show the
arm at rest (every joint slower than :data:`REST_SPEED` for :data:`REST_HOLD_S`), so the
recording ends with the arm still. Each wait has a timeout that raises a ``DemoError`` saying
what did not happen. The only fixed times are a person's: how long a thumb holds a button
(:data:`PRESS_S`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from robot_brain_msgs.msg import EpisodeEvent
from robot_brain_msgs.srv import StartEpisode
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import String

from robot_brain.demo.runner import DemoError, DemoRunner
from robot_brain.embodiment import Arm
from robot_brain.ros.policy_io import JointStateIndexer
from robot_brain.teleop.expert import ExpertStyle, ScriptedOperator
from robot_brain.teleop.mapping import TeleopMapping
from robot_brain.teleop.reading import SDL_AXES, SDL_BUTTONS

PAD_RATE_HZ = 50.0
PRESS_S = 0.15
"""Hand timing, not synchronisation: a thumb holds a button this long, then is off it this long."""
ANSWER_TIMEOUT_S = 15.0
TELEOP_STATUS_TOPIC = "/teleop/status"
READY_PAD_TIMEOUT_S = 5.0
"""For the teleop node to report the pad connected, released and idle (its status comes at ``status_rate``)."""
REST_SPEED = 0.02
"""rad/s (or m/s): every arm joint slower than this is at rest."""
REST_HOLD_S = 0.2
"""The arm must stay at rest this long, so the recording ends with a few still frames."""
REST_TIMEOUT_S = 5.0


@dataclass
class Demonstration:
    """One collected episode: the recorder's id (empty when nothing was saved), the outcome, why."""

    index: int
    seed: int
    episode_id: str
    success: bool
    message: str
    seconds: float


class PadPublisher(Node):
    """The scripted operator's hands: a Joy pad published at ``PAD_RATE_HZ``, plus what the operator sees."""

    def __init__(self, arm: Arm) -> None:
        super().__init__("scripted_operator_pad")
        self.arm = arm
        self._lock = threading.Lock()
        self._axes = [0.0] * len(SDL_AXES)
        self._buttons = [0] * len(SDL_BUTTONS)
        self._indexer = JointStateIndexer(arm.spec.joint_names)
        self.tool: np.ndarray | None = None
        self.answers: list[EpisodeEvent] = []
        self.published = 0  # Joy messages sent
        self.status: tuple[int, str] | None = None  # the teleop node's last status line, with `published` then
        self.still_since: float | None = None  # monotonic time of the first joint state of the current rest
        self.speed = float("inf")  # fastest joint in the last joint state
        self._last_joints: tuple[float, np.ndarray] | None = None
        self._joy = self.create_publisher(Joy, "/joy", 10)
        self.create_subscription(JointState, "/joint_states", self._on_joints, qos_profile_sensor_data)
        self.create_subscription(EpisodeEvent, "/episode/events", self._on_event, QoSProfile(depth=50))
        self.create_subscription(String, TELEOP_STATUS_TOPIC, self._on_status, 10)
        self.create_timer(1.0 / PAD_RATE_HZ, self._publish)
        self.recorder = self.create_client(StartEpisode, "/recorder/start_episode")  # only to see it is up

    def set(self, axes: tuple[float, ...] | list[float], buttons: tuple[int, ...] | list[int]) -> None:
        with self._lock:
            self._axes, self._buttons = list(axes), list(buttons)

    def press(self, button: int) -> None:
        """Press and release one button, the way a thumb does (everything else released)."""
        pressed = [0] * len(SDL_BUTTONS)
        pressed[button] = 1
        self.set([0.0] * len(SDL_AXES), pressed)
        time.sleep(PRESS_S)  # hand timing: the thumb on the button
        self.set([0.0] * len(SDL_AXES), [0] * len(SDL_BUTTONS))
        time.sleep(PRESS_S)  # hand timing: the thumb off it before the next press

    def _publish(self) -> None:
        with self._lock:
            msg = Joy(axes=list(self._axes), buttons=list(self._buttons))
        msg.header.stamp = self.get_clock().now().to_msg()
        self._joy.publish(msg)
        self.published += 1

    def _on_joints(self, msg: JointState) -> None:
        try:
            q = self._indexer.positions(msg)
        except ValueError:
            return
        now = time.monotonic()
        if len(msg.velocity) == len(msg.name):
            speed = float(np.max(np.abs(self._indexer.velocities(msg)), initial=0.0))
        elif self._last_joints is not None and now > self._last_joints[0]:  # a driver without velocities
            speed = float(np.max(np.abs(q - self._last_joints[1]), initial=0.0)) / (now - self._last_joints[0])
        else:
            speed = float("inf")
        self._last_joints = (now, q)
        self.speed = speed
        if speed >= REST_SPEED:
            self.still_since = None
        elif self.still_since is None:
            self.still_since = now
        self.tool = self.arm.kinematics.fk(q)[:3, 3].copy()

    def _on_status(self, msg: String) -> None:
        self.status = (self.published, str(msg.data))

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.event in (EpisodeEvent.RECORDING, EpisodeEvent.SAVED, EpisodeEvent.DISCARDED, EpisodeEvent.REFUSED,
                         EpisodeEvent.ERROR):
            self.answers.append(msg)


class Collector:
    """Runs scripted demonstrations against the node processes (see the module docstring)."""

    def __init__(self, runner: DemoRunner, arm: Arm, mapping: TeleopMapping, style: ExpertStyle | None = None) -> None:
        self.runner = runner
        self.mapping = mapping
        self.style = style or ExpertStyle()
        self.pad = PadPublisher(arm)
        runner.add_node(self.pad)

    def close(self) -> None:
        self.runner.remove_node(self.pad)
        self.pad.destroy_node()

    def wait_ready(self, timeout: float) -> None:
        """Joint states, the teleop node listening on /joy, the recorder answering, the controller up."""
        runner = self.runner
        runner.wait_for(lambda: self.pad.tool is not None, timeout, "/joint_states from the sim")
        runner.wait_for(lambda: self.pad.count_subscribers("/joy") > 0, timeout, "the teleop node")
        runner.wait_for(self.pad.recorder.service_is_ready, timeout, "the recorder")
        runner.wait_for(lambda: runner.controller_state() in ("active", "inactive"), timeout, "the arm controller")

    def demonstrate(self, index: int, seed: int, timeout: float) -> Demonstration:
        """One demonstration: reset, record, drive, label; never raises for a failed reach."""
        started = time.monotonic()
        record = self.runner.start_episode(index, seed)
        if not record.located:
            return Demonstration(index, seed, "", False, f"not recorded: {record.message}", 0.0)
        self.runner.activate()
        pad, mapping = self.pad, self.mapping
        pad.set([0.0] * len(SDL_AXES), [0] * len(SDL_BUTTONS))  # hands on the pad, nothing held: armed
        self._wait_pad_released()
        answered = len(pad.answers)
        pad.press(mapping.episode_start_button)
        recording = self._answer(answered, (EpisodeEvent.RECORDING, EpisodeEvent.REFUSED, EpisodeEvent.ERROR))
        if recording.event != EpisodeEvent.RECORDING:
            raise DemoError(f"the recorder did not start an episode: {recording.message}")
        expert = ScriptedOperator(mapping, self.style, seed=seed)
        target = record.target

        def drive() -> None:
            tool = pad.tool
            if tool is not None:
                state = expert.step(time.monotonic(), tool, target)
                pad.set(state.axes, state.buttons)

        # The sim scores the episode; the pad is moved between its polls (every 0.1 s is too
        # slow for a hand, so a thread keeps the hand moving at the pad's rate).
        moving = threading.Event()
        hand = threading.Thread(target=self._hand, args=(drive, moving), daemon=True)
        hand.start()
        try:
            record = self.runner.finish_episode(record, timeout)
        finally:
            moving.set()
            hand.join(timeout=2.0)
        pad.set([0.0] * len(SDL_AXES), [0] * len(SDL_BUTTONS))  # let go
        self._wait_at_rest()  # the arm comes to rest in the recording
        answered = len(pad.answers)
        pad.press(mapping.episode_start_button if record.success else mapping.episode_failure_button)
        saved = self._answer(answered, (EpisodeEvent.SAVED, EpisodeEvent.ERROR))
        if saved.event != EpisodeEvent.SAVED:
            raise DemoError(f"the recorder did not save the episode: {saved.message}")
        return Demonstration(index, seed, saved.episode_id, record.success, record.message,
                             time.monotonic() - started)

    def _wait_pad_released(self) -> None:
        """Until the teleop node reports, after the released pad was sent, its pad connected, nothing held, idle."""
        pad = self.pad
        sent = pad.published + 2  # two released pads sent before the status counts (the teleop uses the newest)

        def released() -> bool:
            status = pad.status
            return status is not None and status[0] >= sent and _released_and_idle(status[1])

        try:
            self.runner.wait_for(released, READY_PAD_TIMEOUT_S, f"the teleop node's status ({TELEOP_STATUS_TOPIC})")
        except DemoError:
            last = pad.status[1] if pad.status is not None else "none received (teleop.status_rate 0?)"
            raise DemoError(f"the teleop node did not report the released pad as connected, released and idle within "
                            f"{READY_PAD_TIMEOUT_S:g} s; its last status: {last}") from None

    def _wait_at_rest(self) -> None:
        """Until every arm joint has been slower than REST_SPEED for REST_HOLD_S, after letting go."""
        pad = self.pad
        let_go = time.monotonic()

        def resting() -> bool:  # a rest counts from letting go at the earliest
            since = pad.still_since
            return since is not None and time.monotonic() - max(since, let_go) >= REST_HOLD_S

        try:
            self.runner.wait_for(resting, REST_TIMEOUT_S, "the arm to come to rest (/joint_states)")
        except DemoError:
            raise DemoError(f"the arm did not come to rest within {REST_TIMEOUT_S:g} s of letting go: fastest joint "
                            f"{pad.speed:.3g} (expected below {REST_SPEED:g} for {REST_HOLD_S:g} s)") from None

    def _hand(self, drive: object, stop: threading.Event) -> None:
        while not stop.wait(1.0 / PAD_RATE_HZ):
            drive()  # type: ignore[operator]

    def _answer(self, after: int, kinds: tuple[str, ...]) -> EpisodeEvent:
        answers = self.pad.answers
        self.runner.wait_for(lambda: any(a.event in kinds for a in answers[after:]), ANSWER_TIMEOUT_S,
                             f"the recorder's answer ({' or '.join(kinds)})")
        return next(a for a in answers[after:] if a.event in kinds)


def _released_and_idle(line: str) -> bool:
    """A ``/teleop/status`` line (:func:`robot_brain.teleop.operator.status_line`): pad connected, no fault,
    dead-man not held, no e-stop, not recording."""
    parts = [part.strip() for part in line.split("|")]
    return (parts[0].startswith("pad ") and "episode idle" in parts and "e-stop off" in parts
            and ("dead-man released" in parts or "dead-man not required" in parts))
