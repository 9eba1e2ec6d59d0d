"""``teleop`` lifecycle node: a game pad (SDL2) or ``sensor_msgs/Joy`` in, the operator's commands out.

configure: check the mapping (``teleop_twist_joy``'s parameter names, ``config/teleop.yaml``)
against the device's layout, load the arm (its base and tip links name the twist frames, its
joints the jog mode), create the publishers and the controller's service clients. activate:
start the worker that polls the pad at ``poll_rate``, applies the operator's rules
(:class:`robot_brain.teleop.operator.Operator`: dead-man, re-arming after a reconnect or an
e-stop, speed levels, frames, gripper, jog, e-stop and episode buttons) and publishes what
they ask for:

- ``geometry_msgs/TwistStamped`` on ``/teleop/twist``, ``header.frame_id`` the base or tip link;
- ``robot_brain_msgs/JointJog`` (control_msgs/JointJog's fields) on ``/teleop/joint_jog``;
- ``std_msgs/Float64`` on ``/teleop/gripper`` (0 open … 1 closed);
- ``robot_brain_msgs/EpisodeEvent`` requests on ``/episode/events`` for the recorder;
- the controller's ``~/engage_estop`` and ``~/release_estop`` services as the source
  ``teleop:<this node's name>`` (asynchronous: the pad is never blocked). A pad releases only
  the stop it engaged; a stop someone else engaged stays until they, or an operator reset, release it;
- ``std_msgs/String`` on ``~/status``: the operator's one-line status (``robot-brain teleop`` shows it).

Every command goes through the arm controller's one safety filter, which stays the only
authority over the arm; teleop only adds the operator's rules. All SDL calls happen on the
worker's thread (SDL's requirement). A lost or silent pad publishes one zero twist at once
and reports ERROR in diagnostics, naming the device; no pad at all is not an error: the node
waits for one (hot-plug).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from geometry_msgs.msg import TwistStamped
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from robot_brain_msgs.msg import EpisodeEvent, JointJog
from robot_brain_msgs.srv import EStop
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool, Float64, String

from robot_brain.errors import UserError
from robot_brain.ros.arm_params import ARM_PARAMETERS, arm_from_parameters
from robot_brain.ros.control_msgs import LATCHED
from robot_brain.ros.diagnostics import ERROR, OK, WARN
from robot_brain.ros.node_skeleton import BrainNode, run_node
from robot_brain.ros.params import value
from robot_brain.teleop.joy import JoyInput
from robot_brain.teleop.mapping import PARAMETERS as MAPPING_PARAMETERS
from robot_brain.teleop.mapping import TeleopMapping
from robot_brain.teleop.operator import Intent, Operator, status_line
from robot_brain.teleop.reading import SDL_LAYOUT, PadReading, counted_layout

LOG_THROTTLE_S = 5.0
#: Answers of the recorder on /episode/events that mean "recording" / "not recording".
RECORDING_ANSWERS = {EpisodeEvent.RECORDING: True, EpisodeEvent.SAVED: False, EpisodeEvent.DISCARDED: False,
                     EpisodeEvent.REFUSED: False, EpisodeEvent.ERROR: False}

PARAMETERS: tuple[tuple[str, Any, str], ...] = (
    *MAPPING_PARAMETERS,
    *ARM_PARAMETERS,
    ("twist_topic", "/teleop/twist", "geometry_msgs/TwistStamped output (the arm controller's teleop_topic)"),
    ("joint_jog_topic", "/teleop/joint_jog", "robot_brain_msgs/JointJog output (joint-jog mode)"),
    ("gripper_topic", "/teleop/gripper", "std_msgs/Float64 gripper request output, 0 open … 1 closed"),
    ("events_topic", "/episode/events", "robot_brain_msgs/EpisodeEvent requests out, the recorder's answers in"),
    ("controller", "/arm_controller", "The arm controller whose e-stop services and ~/estopped teleop uses"),
    ("status_rate", 10.0, "Rate of the one-line operator status on ~/status, Hz (0: none)"),
)
_MAPPING_NAMES = tuple(name for name, _, _ in MAPPING_PARAMETERS)


class TeleopNode(BrainNode):
    """Turns an operator's game pad into twists, jogs, gripper requests, e-stops and episode events."""

    PARAMETERS = PARAMETERS
    DIAGNOSTIC_TASK = "teleop"

    def __init__(self, **kwargs: Any) -> None:
        self._reset_state()
        super().__init__("teleop", **kwargs)

    def _reset_state(self) -> None:
        self._mapping: TeleopMapping | None = None
        self._operator: Operator | None = None
        self._entities: list[tuple[str, Any]] = []
        self._frames = {"base": "", "tool": ""}
        self._joy: JoyInput | None = None
        self._latest_joy: PadReading | None = None
        self._joy_layout_checked: tuple[int, int] | None = None
        self._joy_rejected = 0
        self._joy_problem = ""
        self._intent: Intent | None = None
        self._published = {"twists": 0, "jogs": 0, "gripper": 0, "events": 0, "events_unheard": 0, "estops": 0,
                           "resets": 0}
        self._last_status_time = 0.0
        self._service_failures = 0

    # ----------------------------------------------------------------------------- lifecycle
    def configure_node(self) -> None:
        values = {name: value(self, name) for name in _MAPPING_NAMES}
        mapping = TeleopMapping.from_parameters(values, layout=SDL_LAYOUT if values["input"] == "sdl" else None)
        arm = arm_from_parameters(self)
        assert arm is not None
        if mapping.input == "sdl":
            from robot_brain.teleop.sdl import import_pygame

            import_pygame()  # a missing pygame/SDL is a configure error, not a dead worker
        self._mapping = mapping
        self._operator = Operator(mapping, arm.spec.joint_names)
        self._frames = {"base": arm.spec.base_link, "tool": arm.spec.tip_link}
        self._twists = self._keep("publisher", self.create_publisher(
            TwistStamped, str(value(self, "twist_topic")), qos_profile_sensor_data))
        self._jogs = self._keep("publisher", self.create_publisher(
            JointJog, str(value(self, "joint_jog_topic")), qos_profile_sensor_data))
        self._gripper = self._keep("publisher", self.create_publisher(
            Float64, str(value(self, "gripper_topic")), QoSProfile(depth=10)))
        events_topic = str(value(self, "events_topic"))
        self._events = self._keep("publisher", self.create_publisher(EpisodeEvent, events_topic, QoSProfile(depth=50)))
        self._status_publisher = self._keep("publisher", self.create_publisher(String, "~/status", 10))
        controller = "/" + str(value(self, "controller")).strip("/")
        self._estop_client = self._keep("client", self.create_client(EStop, f"{controller}/engage_estop"))
        self._reset_client = self._keep("client", self.create_client(EStop, f"{controller}/release_estop"))
        # The controller releases a stop only for the source that engaged it: this pad's node.
        self._estop_source = f"teleop:{self.get_fully_qualified_name()}"
        self._keep("subscription", self.create_subscription(
            Bool, f"{controller}/estopped", lambda msg: self._operator_observes("estop", msg.data), LATCHED))
        self._keep("subscription", self.create_subscription(
            EpisodeEvent, events_topic, self._on_episode_event, QoSProfile(depth=50)))
        if mapping.input == "joy":
            self._joy = JoyInput(mapping.joy_topic, mapping.joy_trigger_axes, mapping.joy_trigger_rest)
            self._keep("subscription", self.create_subscription(Joy, mapping.joy_topic, self._on_joy, 10))
        source = (f"SDL pad {mapping.device_name!r}" if mapping.device_name else f"SDL pad #{mapping.device_id}") \
            if mapping.input == "sdl" else f"sensor_msgs/Joy on {mapping.joy_topic}"
        self.get_logger().info(
            f"{arm.spec.name}: {source}, dead-man {'required' if mapping.require_enable_button else 'off'}, "
            f"frames {self._frames['base']} / {self._frames['tool']}, {mapping.poll_rate:g} Hz"
        )

    def activate_node(self) -> None:
        self.start_worker("pad", self._work)

    def teardown_node(self) -> None:
        for kind, entity in reversed(self._entities):
            getattr(self, f"destroy_{kind}")(entity)
        self._reset_state()

    def _keep(self, kind: str, entity: Any) -> Any:
        self._entities.append((kind, entity))
        return entity

    # ----------------------------------------------------------------------------- inputs
    def _on_joy(self, msg: Joy) -> None:
        joy, mapping = self._joy, self._mapping
        if joy is None or mapping is None:
            return
        counts = (len(msg.axes), len(msg.buttons))
        if counts != self._joy_layout_checked:
            # The device is known only from its messages: check the mapping against the first (and any change).
            try:
                mapping.check_layout(counted_layout(*counts, f"Joy messages on {mapping.joy_topic}"))
            except UserError as error:
                # Bad input, not a fault of this node: the message is dropped and counted, nothing moves
                # (the pad goes silent, so the operator's rules halt), and diagnostics say why.
                self._joy_rejected += 1
                self._joy_problem = str(error)
                self.get_logger().error(f"Joy message refused: {error}", throttle_duration_sec=LOG_THROTTLE_S)
                return
            self._joy_layout_checked, self._joy_problem = counts, ""
        self._latest_joy = joy.reading(msg.axes, msg.buttons, time.monotonic())

    def _operator_observes(self, what: str, state: bool) -> None:
        operator = self._operator
        if operator is not None:
            (operator.observe_estop if what == "estop" else operator.observe_episode)(bool(state))

    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        if msg.event in RECORDING_ANSWERS:
            self._operator_observes("episode", RECORDING_ANSWERS[msg.event])
            if msg.event in (EpisodeEvent.REFUSED, EpisodeEvent.ERROR):
                self.get_logger().error(f"recorder: {msg.message}")

    # ----------------------------------------------------------------------------- the worker
    def _work(self, stop: threading.Event) -> None:
        """Worker body: poll the pad (SDL on this thread only), apply the rules, publish, at poll_rate."""
        mapping, operator = self._mapping, self._operator
        assert mapping is not None and operator is not None
        period = 1.0 / mapping.poll_rate
        pad = None
        if mapping.input == "sdl":
            from robot_brain.teleop.gamepad import Gamepad

            pad = Gamepad(mapping.device_id, mapping.device_name)
            pad.open()
        try:
            deadline = time.monotonic()
            while not stop.is_set():
                now = time.monotonic()
                reading = pad.poll(now) if pad is not None else self._latest_joy
                intent = operator.step(reading, now)
                self._intent = intent
                self._act(intent)
                deadline += period
                delay = deadline - time.monotonic()
                if delay < -period:
                    deadline = time.monotonic()  # fell behind: re-anchor
                elif delay > 0.0:
                    stop.wait(delay)
            # Stopping: whatever was streaming ends in one zero command.
            self._act(operator.step(None, time.monotonic()))
        finally:
            if pad is not None:
                pad.close()

    def _act(self, intent: Intent) -> None:
        stamp = self.get_clock().now().to_msg()
        if intent.twist is not None:
            msg = TwistStamped()
            msg.header.stamp = stamp
            msg.header.frame_id = self._frames[intent.frame]
            (msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z,
             msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z) = intent.twist
            self._twists.publish(msg)
            self._published["twists"] += 1
        if intent.jog is not None:
            jog = JointJog(joint_names=[intent.jog.name], velocities=[float(intent.jog.velocity)])
            jog.header.stamp = stamp
            self._jogs.publish(jog)
            self._published["jogs"] += 1
        if intent.gripper is not None:
            self._gripper.publish(Float64(data=float(intent.gripper)))
            self._published["gripper"] += 1
        for request in intent.episode:
            if self._events.get_subscription_count() < 2:  # this node's own answer subscription, and whom?
                # No recorder has matched this publisher yet (starting up, or none runs): a request
                # published now is lost. Say so and stay idle, so the operator's next press counts.
                self._published["events_unheard"] += 1
                self._operator_observes("episode", False)
                self.get_logger().warning(
                    f"episode {request.event} not sent: no recorder listens on {self._events.topic_name} yet; "
                    "press again", throttle_duration_sec=1.0)
                continue
            event = EpisodeEvent(event=request.event, label=request.label)
            event.header.stamp = stamp
            self._events.publish(event)
            self._published["events"] += 1
            self.get_logger().info(f"episode {request.event}" + (f" ({request.label})" if request.label else ""))
        if intent.estop:
            self._call(self._estop_client, "estops", "e-stop")
        if intent.reset:
            self._call(self._reset_client, "resets", "e-stop release")
        now = time.monotonic()
        rate = float(value(self, "status_rate"))
        if rate > 0.0 and now - self._last_status_time >= 1.0 / rate:
            self._last_status_time = now
            self._status_publisher.publish(String(data=status_line(intent.status)))

    def _call(self, client: Any, counter: str, what: str) -> None:
        """Ask the controller (asynchronously: the pad keeps being read); a missing controller is reported."""
        self._published[counter] += 1
        if not client.service_is_ready():
            self._service_failures += 1
            self.get_logger().error(f"{what} requested but {client.srv_name} is not available")
            if counter == "resets":
                self._operator_observes("estop", True)  # still stopped: the pad must not show it released
            return
        self.get_logger().warning(f"{what} requested by the operator")
        client.call_async(EStop.Request(source=self._estop_source)).add_done_callback(
            lambda future: self._called(future, what, counter))

    def _called(self, future: Any, what: str, counter: str) -> None:
        response = future.result()
        if response is None or not response.success:
            self._service_failures += 1
            self.get_logger().error(f"{what} failed: {response.message if response else 'no answer'}")
            if counter == "resets":
                # Refused (another source holds the stop) or unanswered: the arm stays stopped, and the
                # operator's state says so, so the pad neither shows motion nor sends twists the controller drops.
                self._operator_observes("estop", True)

    # ----------------------------------------------------------------------------- diagnostics
    def diagnostics(self) -> tuple[bytes, str, dict[str, object], str]:
        intent = self._intent
        values: dict[str, object] = dict(self._published)
        values["service_failures"] = self._service_failures
        values["joy_messages_refused"] = self._joy_rejected
        if self._joy_problem:
            return ERROR, f"Joy messages refused: {self._joy_problem}", values, "joy"
        if intent is None:
            return OK, self.status, values, "none"
        status = intent.status
        values.update({"device": status.device, "connected": status.connected, "deadman": status.deadman,
                       "frame": status.frame, "mode": status.mode, "speed": status.speed,
                       "estopped": status.estopped, "episode": status.episode})
        if intent.fault:
            return ERROR, intent.fault, values, status.device
        if not status.connected:
            return WARN, f"waiting for a game pad ({status.device})", values, status.device
        return OK, status_line(intent.status), values, status.device


def main(args: Sequence[str] | None = None) -> int:
    """Run the teleop node until SIGINT/SIGTERM (a streaming twist ends in one zero twist first)."""
    return run_node(TeleopNode, args, program="teleop")


if __name__ == "__main__":
    sys.exit(main())
