"""``arm_controller`` lifecycle node: policy chunks and teleop twists in, safe ros2_control commands out.

configure: load the arm (``robot_description`` or ``urdf_path``), check the controller's
joint order, build the core (:class:`robot_brain.control.controller.ArmController`),
create topics and services. Any user-fixable problem fails the transition with one logged
line. activate: start the control loop. deactivate: brake to rest, publish the halt a few
times, end the loop. The arithmetic lives in ``robot_brain.control``; this file wires
parameters, topics and services to it.

Built on the node skeleton (:class:`robot_brain.ros.node_skeleton.BrainNode`): SIGINT or
SIGTERM makes the next cycle brake (``begin_stopping``), the loop runs until the arm is at
rest and the halt is published, and only then does the process shut its context down. A
control loop that raises, a slow lane that dies or a callback that raises is a fault: the
arm brakes and holds, diagnostics say ERROR, and the node takes the lifecycle's error path.

``loop_mode: cooperative`` (default): the thread in :meth:`ArmControllerNode.spin` runs the
loop itself and serves ROS callbacks between periods, so no second Python thread competes
with it for the GIL; work longer than a period (chunk IK, diagnostics) goes to a
:class:`SlowLane`. ``threaded``: the loop has its own thread beside the executor's.
docs/control.md explains the hand-over, deactivation and e-stop handling.

E-stop: ``~/estop`` and ``~/reset`` (``std_srvs/Trigger``) engage and release as the unnamed
source; ``~/engage_estop`` and ``~/release_estop`` (``robot_brain_msgs/EStop``) say who. The
stop holds until every source that engaged it released its own, or an operator reset names
who releases them all (:mod:`robot_brain.control.estop`). Teleop commands stamped before the
last e-stop or release are refused. Not a safety-rated stop: it is a software stop on a
best-effort middleware. Real cells need a hardware e-stop chain.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.experimental import EventsExecutor
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from robot_brain_msgs.msg import ActionChunk, JointJog
from robot_brain_msgs.srv import EStop
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_brain.control.controller import ArmController, Command, ControllerConfig, gripper_closed_fraction
from robot_brain.control.estop import UNNAMED, EStopAnswer
from robot_brain.control.loop import ControlLoop
from robot_brain.control.safety import SafetyLimits
from robot_brain.embodiment import ArmSpec
from robot_brain.errors import ConfigurationError
from robot_brain.ros.arm_params import ARM_PARAMETERS, arm_from_parameters
from robot_brain.ros.control_msgs import LATCHED, ForwardCommand, TrajectoryCommand, raw_chunk, twist_to_array
from robot_brain.ros.diagnostics import ERROR, OK, WARN
from robot_brain.ros.node_skeleton import SUPERVISION_PERIOD_S, BrainNode, Worker, run_node
from robot_brain.ros.params import value
from robot_brain.ros.policy_io import JointStateIndexer, stamp_to_seconds

COMMAND_MODES = ("forward_position", "trajectory")
DEFAULT_CONTROLLERS = {"forward_position": "forward_position_controller", "trajectory": "joint_trajectory_controller"}
GRIPPER_COMMANDS = ("joint_position", "normalized")
LOOP_MODES = ("cooperative", "threaded")
#: Cooperative mode: callbacks are served only while a wait of at least this long fits before
#: the next deadline minus the idle margin and the measured spin_once overshoot.
MIN_SPIN_SLOT_S = 5e-5
LOG_THROTTLE_S = 2.0
# Python switches threads every 5 ms by default: a callback doing IK could hold the loop
# thread off for that long. 20 µs bounds the wait at a small cost in switching.
SWITCH_INTERVAL_S = 2e-5

_DEFAULT = ControllerConfig()
#: Parameters that are ControllerConfig fields of the same name (the config's defaults are theirs).
CONFIG_PARAMETERS = (
    "chunk_timeout", "teleop_timeout", "state_timeout", "future_tolerance", "halt_messages", "blend_mode",
    "blend_time", "rtc_commit_time", "ensemble_decay", "interpolation", "teleop_max_linear_speed",
    "teleop_max_angular_speed", "teleop_damping", "singularity_lower_threshold", "singularity_hard_threshold",
    "gripper_max_speed", "stall_window", "stall_min_residual", "resolve_on_stall",
)

# (name, default, description): declared in this order, mirrored in config/arm_controller.yaml.
# ROS 2 parameters cannot be empty typed arrays: [""] and [0.0] mean "not set".
PARAMETERS: tuple[tuple[str, Any, str], ...] = (
    *ARM_PARAMETERS,
    ("controller_joints", [""], 'Joint order of the ros2_control controller ([""]: the arm\'s base-to-tip order)'),
    ("control_rate", _DEFAULT.rate_hz, "Control loop rate, Hz (up to 1000; 2000 is accepted for benchmarks)"),
    ("realtime_priority", 80, "SCHED_FIFO priority requested for the loop thread (0: do not ask)"),
    (
        "loop_mode",
        "cooperative",
        "cooperative (the spinning thread runs the loop and serves callbacks between periods) or threaded",
    ),
    ("idle_margin_us", 300.0, "cooperative: callbacks are served until this long before each deadline, µs"),
    ("wake_spin_us", 150.0, "Sleep to this long before each deadline, then busy-wait to it (0: sleep only), µs"),
    ("command_mode", "forward_position", "forward_position (Float64MultiArray) or trajectory (JointTrajectory)"),
    (
        "controller_name",
        "",
        "ros2_control controller to command (empty: forward_position_controller or "
        "joint_trajectory_controller, by command_mode)",
    ),
    ("publish_rate", 0.0, "Command publish rate, Hz (0: every control period)"),
    ("gripper_topic", "/gripper_controller/commands", "Float64MultiArray gripper command topic"),
    ("gripper_command", "joint_position", "joint_position (driven gripper joints) or normalized ([0, 1], 1 closed)"),
    ("gripper_invert", False, "Swap open and closed (default: open is the joint limit farther from zero)"),
    ("gripper_max_speed", _DEFAULT.gripper_max_speed, "Gripper command rate limit, full strokes per second"),
    ("joint_states_topic", "/joint_states", "sensor_msgs/JointState input"),
    ("action_chunk_topic", "/policy/action_chunk", "robot_brain_msgs/ActionChunk input"),
    ("teleop_topic", "/teleop/twist", "geometry_msgs/TwistStamped input (frame_id: base link or tip link)"),
    ("joint_jog_topic", "/teleop/joint_jog", "robot_brain_msgs/JointJog input (control_msgs/JointJog's fields)"),
    ("teleop_gripper_topic", "/teleop/gripper", "std_msgs/Float64 gripper request in [0, 1] (1 closed) from teleop"),
    ("position_margin", 0.02, "Kept off both ends of every joint range, rad or m (at most 10% of the range)"),
    ("velocity_scale", 0.5, "Fraction of the URDF velocity limits used, (0, 1]"),
    ("acceleration_limits", [0.0], "Per-joint acceleration limits, rad/s² ([0.0]: acceleration_limit_factor)"),
    ("acceleration_limit_factor", 4.0, "Acceleration limit = factor x scaled velocity limit, 1/s"),
    ("max_step", [0.2], "Largest distance of the target from the measured position, rad or m (1 or per joint)"),
    ("workspace_min", [0.0], "Tool box lower corner [x y z] in the base frame, m ([0.0]: no box)"),
    ("workspace_max", [0.0], "Tool box upper corner [x y z] in the base frame, m ([0.0]: no box)"),
    ("chunk_timeout", _DEFAULT.chunk_timeout, "No chunk for this long: decelerate and hold, s"),
    ("teleop_timeout", _DEFAULT.teleop_timeout, "No teleop twist for this long: decelerate and hold, s"),
    ("state_timeout", _DEFAULT.state_timeout, "No /joint_states for this long: hold and report a fault, s"),
    ("future_tolerance", _DEFAULT.future_tolerance, "Chunks stamped further in the future are rejected, s"),
    ("halt_messages", _DEFAULT.halt_messages, "Times a halt (any final command) is repeated before going quiet"),
    ("blend_mode", _DEFAULT.blend_mode, "Seam between chunks: rtc (keep the committed prefix) or ensemble"),
    ("blend_time", _DEFAULT.blend_time, "Cross-fade from the old to the new chunk, s"),
    ("rtc_commit_time", _DEFAULT.rtc_commit_time, "rtc: the old chunk keeps control this long after a new one, s"),
    ("ensemble_decay", _DEFAULT.ensemble_decay, "ensemble: weight exp(decay x (stamp - newest)); > 0 favours new, 1/s"),
    ("interpolation", _DEFAULT.interpolation, "Between waypoints: cubic (C1 Hermite) or linear"),
    ("teleop_max_linear_speed", _DEFAULT.teleop_max_linear_speed, "Teleop linear speed clamp, m/s"),
    ("teleop_max_angular_speed", _DEFAULT.teleop_max_angular_speed, "Teleop angular speed clamp, rad/s"),
    ("teleop_damping", _DEFAULT.teleop_damping, "Damping of the teleop damped-least-squares Jacobian inverse"),
    ("singularity_lower_threshold", _DEFAULT.singularity_lower_threshold, "Jacobian condition number: slow down above"),
    ("singularity_hard_threshold", _DEFAULT.singularity_hard_threshold, "Condition number: no motion toward it above"),
    ("stall_window", _DEFAULT.stall_window,
     "End-effector chunks whose reachable part stays short of the request this long without closing: a stall, s"),
    ("stall_min_residual", _DEFAULT.stall_min_residual, "Shortfall below which the arm counts as following, m"),
    ("resolve_on_stall", _DEFAULT.resolve_on_stall,
     "On a stall, search IK from many seeds and move to another branch in joint space (false: report only)"),
    ("slow_lane_capacity", 16, "Chunks waiting for IK at most; the oldest is dropped (and counted) beyond it"),
)


class ArmControllerNode(BrainNode):
    """Lifecycle shell around :class:`ArmController` and its :class:`ControlLoop`."""

    PARAMETERS = PARAMETERS
    DIAGNOSTIC_TASK = "control loop"

    def __init__(self, **kwargs: Any) -> None:
        self._entities: list[tuple[str, Any]] = []
        self.controller: ArmController | None = None
        self.loop: ControlLoop | None = None
        self._cooperative = False
        self._run_requested = False
        self._executor: Executor | None = None
        self._stop_spin: threading.Event | None = None
        self._slow_lane: SlowLane | None = None
        self._joint_states: Any = None
        self._overshoot = 0.0
        self._overshoot_cap = 2.5e-4
        self._joint_states_ignored = 0
        super().__init__("arm_controller", **kwargs)
        self._estopped = self.create_publisher(Bool, "~/estopped", LATCHED)
        self._estopped.publish(Bool(data=False))

    # ----------------------------------------------------------------------------- lifecycle
    def configure_node(self) -> None:
        """Load the arm and build everything; a user-fixable problem raises with the reason."""
        arm = arm_from_parameters(self)
        assert arm is not None
        spec = arm.spec
        joints = self._read_controller_joints(spec)
        mode = self._read_command_mode()
        gripper_mode, gripper_open, gripper_closed = self._read_gripper_command(spec)
        loop_mode = self._read_loop_mode()
        rate = float(value(self, "control_rate"))
        config = self._controller_config(rate, gripper_open, gripper_closed)
        limits = self._safety_limits(spec)
        self.controller = controller = ArmController(arm, limits, config)
        self._indexer = JointStateIndexer(spec.joint_names)
        self._frames = {"": False, spec.base_link: False, spec.tip_link: True}
        controller_name = str(value(self, "controller_name")).strip("/") or DEFAULT_CONTROLLERS[mode]
        publisher = self._create_arm_output(spec, joints, mode, controller_name, config)
        self._create_gripper_io(spec, gripper_mode, config)
        self._mode = mode
        self._create_inputs_and_services(publisher)
        self.loop = self._create_loop(controller, config)
        self._overshoot, self._overshoot_cap = 0.0, min(2.5e-4, 0.25 * config.period)
        self.get_logger().info(
            f"{spec.name}: {spec.dof} joints {list(spec.joint_names)}, base '{spec.base_link}', tip '{spec.tip_link}', "
            f"{rate:g} Hz ({loop_mode}), {mode} on /{controller_name}, blend {config.blend_mode}"
        )

    def _read_controller_joints(self, spec: ArmSpec) -> list[str]:
        """The controller's joint order (each arm joint once); records it as indices into the arm's order."""
        joints = _strings(value(self, "controller_joints")) or list(spec.joint_names)
        unknown = [name for name in joints if name not in spec.joint_names]
        missing = [name for name in spec.joint_names if name not in joints]
        if unknown or missing or len(set(joints)) != len(joints):
            raise ConfigurationError(
                f"controller_joints must list each arm joint once ({', '.join(spec.joint_names)}); "
                f"unknown: {unknown or 'none'}, missing: {missing or 'none'}"
            )
        self._order = np.array([spec.joint_names.index(name) for name in joints])
        return joints

    def _read_command_mode(self) -> str:
        """The ``command_mode`` parameter, checked."""
        mode = str(value(self, "command_mode"))
        if mode not in COMMAND_MODES:
            raise ConfigurationError(f"command_mode must be one of {COMMAND_MODES}, found '{mode}'")
        return mode

    def _read_gripper_command(self, spec: ArmSpec) -> tuple[str, list[float], list[float]]:
        """The ``gripper_command`` mode, checked, and the gripper's open and closed command positions."""
        gripper_mode = str(value(self, "gripper_command"))
        gripper_open, gripper_closed = _gripper_positions(spec, gripper_mode, bool(value(self, "gripper_invert")))
        if gripper_mode not in GRIPPER_COMMANDS:
            raise ConfigurationError(f"gripper_command must be one of {GRIPPER_COMMANDS}, found '{gripper_mode}'")
        return gripper_mode, gripper_open, gripper_closed

    def _read_loop_mode(self) -> str:
        """The ``loop_mode`` parameter, checked; records whether the loop is cooperative."""
        loop_mode = str(value(self, "loop_mode"))
        if loop_mode not in LOOP_MODES:
            raise ConfigurationError(f"loop_mode must be one of {LOOP_MODES}, found '{loop_mode}'")
        self._cooperative = loop_mode == "cooperative"
        return loop_mode

    def _controller_config(
        self, rate: float, gripper_open: list[float], gripper_closed: list[float]
    ) -> ControllerConfig:
        """The core's configuration from the rate, the publish rate and the parameters named like its fields."""
        publish_rate = float(value(self, "publish_rate"))
        return ControllerConfig(
            rate_hz=rate,
            publish_every=max(1, round(rate / publish_rate)) if publish_rate > 0.0 else 1,
            gripper_open=tuple(gripper_open),
            gripper_closed=tuple(gripper_closed),
            **{name: type(getattr(_DEFAULT, name))(value(self, name)) for name in CONFIG_PARAMETERS},
        )

    def _safety_limits(self, spec: ArmSpec) -> SafetyLimits:
        """The safety filter's limits from the arm's URDF limits and the limit parameters."""
        return SafetyLimits.from_spec(
            spec.lower,
            spec.upper,
            spec.velocity,
            position_margin=float(value(self, "position_margin")),
            velocity_scale=float(value(self, "velocity_scale")),
            acceleration=_floats(value(self, "acceleration_limits")),
            acceleration_factor=float(value(self, "acceleration_limit_factor")),
            max_step=list(value(self, "max_step")),
            workspace_min=_floats(value(self, "workspace_min")),
            workspace_max=_floats(value(self, "workspace_max")),
        )

    def _create_arm_output(
        self, spec: ArmSpec, joints: list[str], mode: str, controller_name: str, config: ControllerConfig
    ) -> Any:
        """The arm command message and its publisher for ``command_mode``; returns the publisher."""
        order = [int(i) for i in self._order]  # controller order → arm order, applied in place by the messages
        if mode == "forward_position":
            self._arm_out: Any = ForwardCommand(spec.dof, order)
            publisher = self.create_publisher(Float64MultiArray, f"/{controller_name}/commands", 10)
        else:
            self._arm_out = TrajectoryCommand(joints, max(config.period * config.publish_every, 1e-3), order)
            publisher = self.create_publisher(JointTrajectory, f"/{controller_name}/joint_trajectory", 10)
        self._arm_publisher = publisher
        return publisher

    def _create_gripper_io(self, spec: ArmSpec, gripper_mode: str, config: ControllerConfig) -> None:
        """The gripper command message, its measured-opening reader and its publisher (when there is a gripper)."""
        self._gripper_out = ForwardCommand(len(config.gripper_open))
        # The measured gripper opening seeds the gripper's rate limit at each activation.
        self._gripper_indexer = JointStateIndexer(spec.driven_gripper_joints) if spec.driven_gripper_joints else None
        if self._gripper_indexer is not None:
            measured_open, measured_closed = spec.gripper_open_closed()
            invert = bool(value(self, "gripper_invert"))
            self._gripper_open_closed = (measured_closed, measured_open) if invert else (measured_open, measured_closed)
        self._gripper_publisher = None
        if spec.gripper_joints or gripper_mode == "normalized":
            self._gripper_publisher = self.create_publisher(Float64MultiArray, str(value(self, "gripper_topic")), 10)

    def _create_inputs_and_services(self, publisher: Any) -> None:
        """The input subscriptions and the e-stop/reset services, recorded with the publishers for teardown."""
        self._joint_states = self.create_subscription(
            JointState, str(value(self, "joint_states_topic")), self._on_joint_state, qos_profile_sensor_data
        )
        self._entities = [
            ("publisher", publisher),
            (
                "subscription",
                self._joint_states,
            ),
            (
                "subscription",
                self.create_subscription(
                    ActionChunk, str(value(self, "action_chunk_topic")), self._on_chunk, QoSProfile(depth=10)
                ),
            ),
            (
                "subscription",
                self.create_subscription(
                    TwistStamped, str(value(self, "teleop_topic")), self._on_teleop, qos_profile_sensor_data
                ),
            ),
            (
                "subscription",
                self.create_subscription(
                    JointJog, str(value(self, "joint_jog_topic")), self._on_joint_jog, qos_profile_sensor_data
                ),
            ),
            (
                "subscription",
                self.create_subscription(
                    Float64, str(value(self, "teleop_gripper_topic")), self._on_teleop_gripper, QoSProfile(depth=10)
                ),
            ),
            ("service", self.create_service(Trigger, "~/estop", self._on_estop)),
            ("service", self.create_service(Trigger, "~/reset", self._on_reset)),
            ("service", self.create_service(EStop, "~/engage_estop", self._on_engage_estop)),
            ("service", self.create_service(EStop, "~/release_estop", self._on_release_estop)),
        ]
        if self._gripper_publisher is not None:
            self._entities.append(("publisher", self._gripper_publisher))

    def _create_loop(self, controller: ArmController, config: ControllerConfig) -> ControlLoop:
        """The control loop around the core's cycle, publishing with :meth:`_publish`."""
        return ControlLoop(
            config.period,
            controller.cycle,
            self._publish,
            should_stop=lambda: controller.stopped,
            realtime_priority=int(value(self, "realtime_priority")),
            name="arm_controller_loop",
            on_error=self._on_loop_error,
            fallback=controller.brake,
            idle_margin=float(value(self, "idle_margin_us")) * 1e-6,
            wake_spin=float(value(self, "wake_spin_us")) * 1e-6,
        )

    def activate_node(self) -> None:
        """Start the loop; it seeds its command from the first fresh joint state."""
        assert self.controller is not None and self.loop is not None
        self.controller.resume()
        if self._cooperative and (self._slow_lane is None or not self._slow_lane.alive):
            self._slow_lane = SlowLane(self, int(value(self, "slow_lane_capacity")))
        if self._cooperative:
            self._run_requested = True  # the thread in spin() runs it once this callback returns
            if self._executor is not None:
                self._executor.wake()
        else:
            self.loop.start()
        self.get_logger().info("control loop started")

    def deactivate_node(self) -> None:
        """Decelerate to rest within the limits, publish the halt, end the loop."""
        self._stop_loop()

    def teardown_node(self) -> None:
        self._teardown()

    def begin_stopping(self) -> None:
        """Shutdown or fault: the very next cycle brakes (the transitions follow on the executor thread)."""
        controller = self.controller
        if controller is not None:
            controller.request_stop()

    def _on_loop_error(self, error: BaseException) -> None:
        """The loop's ``compute`` or ``publish`` raised (on the loop's thread): report, flag and brake, nothing more.

        The loop goes on with the core's braking step (its fallback) until the arm is at rest
        and the halt is published; the error transition waits for that
        (:meth:`ready_for_error_transition`).
        """
        self.report_fault("control loop", error)

    def ready_for_error_transition(self) -> bool:
        loop = self.loop
        return loop is None or not loop.running

    # ----------------------------------------------------------------------------- spinning
    def spin(self, executor: Executor, stop: threading.Event | None = None) -> None:
        """Use instead of ``executor.spin()``: serves callbacks, and runs the loop in cooperative mode.

        Cooperative mode: once activated, this thread runs the control loop and serves the
        executor's callbacks in each period's idle time (:meth:`_serve`), so one Python thread
        does all the work and nothing competes with the loop for the GIL. The executor is only
        ever spun by this thread. Returns when ``stop`` is set, the orderly shutdown is done,
        the executor is shut down or the context ends. A callback that raises is a fault.
        """
        self._executor = executor
        self._stop_spin = stop
        try:
            while executor.context.ok() and not self.finished and not (stop is not None and stop.is_set()):
                if getattr(executor, "_is_shutdown", False):
                    return
                loop = self.loop
                if self._run_requested and loop is not None:
                    self._run_requested = False
                    loop.run(self._serve)
                else:
                    self._spin_once(executor, SUPERVISION_PERIOD_S)
        finally:
            self._executor = None

    def _spin_once(self, executor: Executor, timeout: float) -> None:
        """One callback; an exception escaping it is a fault, never the end of the spinning thread."""
        try:
            executor.spin_once(timeout_sec=timeout)
        except ExternalShutdownException:
            raise
        except Exception as error:
            if executor.context.ok():
                self.report_fault("callback", error)

    def _serve(self, until: float) -> None:
        """Cooperative idle time: ROS callbacks, one at a time, while a slot is left before ``until``."""
        executor = self._executor
        assert executor is not None
        clock = time.monotonic
        stop = self._stop_spin
        cap = self._overshoot_cap
        first = True
        while True:
            # spin_once overshoots its timeout by its own overhead plus the callback it runs;
            # the recent worst overshoot (capped: preemption is not overhead; decaying 2 % per
            # call) is taken off the slot. At least one callback per period, whatever is left,
            # so inputs never starve.
            start = clock()
            timeout = until - start - self._overshoot
            if timeout < MIN_SPIN_SLOT_S:
                if not first:
                    break
                timeout = 0.0
            first = False
            self._spin_once(executor, timeout)
            overshoot = min(clock() - start - timeout, cap)
            self._overshoot = max(overshoot, 0.98 * self._overshoot)
        ended = not executor.context.ok() or getattr(executor, "_is_shutdown", False) or self.finished
        if (ended or (stop is not None and stop.is_set())) and self.loop is not None:
            self.loop.halt()

    def _take_joint_states(self, until: float) -> None:
        """Idle work of a deactivation braking inside a callback: the joint states received meanwhile."""
        subscription = self._joint_states
        with subscription.handle:
            while (taken := subscription.handle.take_message(subscription.msg_type, subscription.raw)) is not None:
                self._on_joint_state(taken[0])

    def _stop_loop(self) -> None:
        controller, loop = self.controller, self.loop
        self._run_requested = False
        if controller is None or loop is None or not loop.running:
            return
        controller.request_stop()
        limits = controller.filter.limits
        braking = float(np.max(np.abs(controller.filter.velocity) / limits.acceleration, initial=0.0))
        if loop.owner == threading.get_ident():
            # Cooperative, called from a callback in the loop's idle time: brake to rest here
            # (nested run), reading joint states straight from the subscription since the
            # executor cannot be spun from inside its own callback; the outer run then ends.
            loop.run(self._take_joint_states, max_seconds=braking + 1.0)
            if not controller.stopped:
                self.get_logger().warning("control loop did not come to rest in time; stopping it")
        elif not loop.join(braking + 1.0):
            self.get_logger().warning("control loop did not come to rest in time; stopping it")
        loop.stop()
        self.get_logger().info(f"control loop ended; realtime: {loop.realtime}")

    def _teardown(self) -> None:
        if self.loop is not None:
            self._stop_loop()
            self.loop.stop()
        if self._slow_lane is not None:
            self._slow_lane.close()
            self._slow_lane = None
        for kind, entity in self._entities:
            getattr(self, f"destroy_{kind}")(entity)
        self._entities = []
        self._joint_states = None
        self.controller = None
        self.loop = None

    # ----------------------------------------------------------------------------- inputs
    def _loop_time(self, stamp: Any) -> float:
        """A header stamp on the loop's monotonic clock (a zero stamp means 'now')."""
        now = time.monotonic()
        seconds = stamp_to_seconds(stamp)
        if seconds == 0.0:
            return now
        return seconds - self.get_clock().now().nanoseconds * 1e-9 + now

    def _on_joint_state(self, msg: JointState) -> None:
        controller = self.controller
        if controller is None:
            return
        try:
            positions = self._indexer.positions(msg)
        except (ValueError, IndexError) as error:
            self._joint_states_ignored += 1  # counted with the core's non-finite/wrong-size rejections
            self.get_logger().warning(f"joint state ignored: {error}", throttle_duration_sec=LOG_THROTTLE_S)
            return
        received = time.monotonic()
        controller.on_joint_state(positions, self._loop_time(msg.header.stamp), received)
        if self._gripper_indexer is not None:
            try:
                gripper = self._gripper_indexer.positions(msg)
            except (ValueError, IndexError):
                return  # a driver that does not publish the gripper: the gripper seeds from its last command
            closed = gripper_closed_fraction(gripper, *self._gripper_open_closed)
            if closed == closed:  # NaN: the joints do not tell
                controller.on_gripper_state(closed, received)

    def _on_chunk(self, msg: ActionChunk) -> None:
        controller = self.controller
        if controller is None:
            return
        stamp, arrival = self._loop_time(msg.header.stamp), time.monotonic()
        if self._slow_lane is not None and self._cooperative:
            # IK takes 1-3 ms: longer than a period. Convert off the loop's thread; the epoch
            # keeps a chunk received before an e-stop or reset from being accepted after it,
            # and the chunk's age is judged when it is converted, not when it arrived.
            epoch = controller.epoch
            self._slow_lane.submit_chunk(lambda: self._convert_chunk(controller, msg, stamp, arrival, epoch))
            return
        self._convert_chunk(controller, msg, stamp, arrival, None)

    def _convert_chunk(
        self, controller: ArmController, msg: ActionChunk, stamp: float, arrival: float, epoch: int | None
    ) -> None:
        reason = controller.on_chunk(raw_chunk(msg, stamp), time.monotonic(), epoch, arrival=arrival)
        if reason is not None:
            self.get_logger().warning(
                f"chunk {msg.model_id}#{msg.step} rejected: {reason}", throttle_duration_sec=LOG_THROTTLE_S
            )

    def _on_teleop(self, msg: TwistStamped) -> None:
        controller = self.controller
        if controller is None:
            return
        tool_frame = self._frames.get(msg.header.frame_id)
        if tool_frame is None:
            controller.counters.teleop_rejected += 1
            self.get_logger().warning(
                f"teleop twist ignored: frame_id '{msg.header.frame_id}', expected '' or one of "
                f"{[name for name in self._frames if name]}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
            return
        received, before = time.monotonic(), controller.counters.teleop_before_epoch
        controller.on_teleop(twist_to_array(msg), tool_frame, received, self._loop_time(msg.header.stamp))
        self._warn_if_before_epoch(controller, before, "twist")

    def _on_joint_jog(self, msg: JointJog) -> None:
        """Joint jog (control_msgs/JointJog's fields): the named joints at their velocities, the others held."""
        controller = self.controller
        if controller is None:
            return
        spec = controller.spec
        velocities = np.zeros(spec.dof)
        if len(msg.velocities) != len(msg.joint_names) or any(n not in spec.joint_names for n in msg.joint_names):
            controller.counters.teleop_rejected += 1
            self.get_logger().warning(
                f"joint jog ignored: expected velocities for arm joints {list(spec.joint_names)}, found "
                f"{list(msg.joint_names)} with {len(msg.velocities)} velocities", throttle_duration_sec=LOG_THROTTLE_S)
            return
        for name, velocity in zip(msg.joint_names, msg.velocities, strict=True):
            velocities[spec.joint_names.index(name)] = velocity
        received, before = time.monotonic(), controller.counters.teleop_before_epoch
        controller.on_joint_jog(velocities, received, self._loop_time(msg.header.stamp))
        self._warn_if_before_epoch(controller, before, "joint jog")

    def _warn_if_before_epoch(self, controller: ArmController, before: int, what: str) -> None:
        if controller.counters.teleop_before_epoch != before:
            self.get_logger().warning(
                f"teleop {what} refused: stamped before the last e-stop or release (sent before the operator "
                "stopped; if every command is refused, the sender's clock is not this node's: use_sim_time must "
                "match)", throttle_duration_sec=LOG_THROTTLE_S)

    def _on_teleop_gripper(self, msg: Float64) -> None:
        controller = self.controller
        if controller is not None:
            controller.on_teleop_gripper(float(msg.data), time.monotonic())

    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """std_srvs/Trigger: engage as the unnamed source (anyone may stop the arm)."""
        answer = self._engage(UNNAMED)
        response.success, response.message = answer.success, answer.message
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """std_srvs/Trigger: release the unnamed source's stop; a named source's stop needs ~/release_estop."""
        answer = self._release(UNNAMED, operator_reset=False)
        response.success, response.message = answer.success, answer.message
        return response

    def _on_engage_estop(self, request: EStop.Request, response: EStop.Response) -> EStop.Response:
        return _fill(response, self._engage(request.source))

    def _on_release_estop(self, request: EStop.Request, response: EStop.Response) -> EStop.Response:
        return _fill(response, self._release(request.source, operator_reset=request.operator_reset))

    def _engage(self, source: str) -> EStopAnswer:
        if self.controller is None:
            return EStopAnswer(False, "not configured: nothing to stop", ())
        answer = self.controller.estop(time.monotonic(), source)
        self._estopped.publish(Bool(data=True))
        self.get_logger().warning(f"software {answer.message} (not a safety-rated stop)")
        return EStopAnswer(True, f"{answer.message}; the source that engaged it releases it (or an operator reset)",
                           answer.engaged_by)

    def _release(self, source: str, *, operator_reset: bool) -> EStopAnswer:
        if self.controller is None:
            return EStopAnswer(False, "not configured", ())
        answer = self.controller.release(time.monotonic(), source, operator_reset=operator_reset)
        if answer.released:
            self._estopped.publish(Bool(data=False))
            self.get_logger().info(answer.message)
        elif not answer.success:
            self.get_logger().warning(answer.message)
        return answer

    # ----------------------------------------------------------------------------- outputs
    def _publish(self, command: Command) -> None:
        """Loop thread: send what the cycle produced; the messages reorder arm → controller order in place."""
        if command.positions is not None:
            if self._mode == "forward_position":
                self._arm_publisher.publish(self._arm_out.fill(command.positions))
            else:
                assert command.velocities is not None
                self._arm_publisher.publish(self._arm_out.fill(command.positions, command.velocities))
        if command.gripper is not None and self._gripper_publisher is not None:
            self._gripper_publisher.publish(self._gripper_out.fill(command.gripper))

    def on_diagnostics_timer(self) -> None:
        lane = self._slow_lane
        if lane is not None and self._cooperative and self.loop is not None and self.loop.running:
            lane.submit_diagnostics(self.publish_diagnostics)  # percentiles of 10^5 samples: ~ms
        else:
            self.publish_diagnostics()

    def diagnostics(self) -> tuple[bytes, str, dict[str, object], str]:
        controller, loop = self.controller, self.loop
        values: dict[str, object] = {}
        level, message = OK, self.status
        if controller is not None and loop is not None:
            values.update(loop.stats.summary())
            values["realtime"] = loop.realtime
            values["failed_over_to_braking"] = loop.failed_over
            values["timer_slack_1ns"] = loop.timer_slack
            values["active_source"] = controller.source
            values["estopped"] = controller.estopped
            values["estop_engaged_by"] = ", ".join(controller.estop_holders) or "none"
            values["controller_fault"] = controller.fault or "none"
            values["condition_number"] = controller.condition_number
            mapper = controller.mapper
            stall = mapper.stall
            if stall is not None and not stall.current(time.monotonic(), controller.config.stall_window * 2):
                stall = None
            stall_text = stall.describe() if stall is not None else controller.singularity_hold(time.monotonic())
            values["stall"] = stall_text or "none"
            values["branch_moves"] = mapper.branch_moves
            values["last_branch_move_reason"] = mapper.last_branch_move_reason or "none"
            values["branch_searches_failed"] = mapper.branch_searches_failed
            values.update({f"limit_{name}": count for name, count in controller.limit_counts().items()})
            counters = controller.counters
            values.update({key: val for key, val in vars(counters).items() if not isinstance(val, dict)})
            values.update({f"rejected_{key}": val for key, val in counters.rejections().items()})
            values["joint_states_rejected"] = controller.state.rejected + self._joint_states_ignored
            if self._slow_lane is not None:
                values.update(self._slow_lane.counts())
            if loop.error is not None:
                level, message = ERROR, f"control loop died: {loop.error!r}"
            elif controller.fault and self.active:
                level, message = ERROR, controller.fault
            elif stall_text and self.active:
                level, message = WARN, stall_text
            elif controller.estopped:
                level, message = WARN, f"software e-stop engaged by {', '.join(controller.estop_holders)}"
            else:
                message = f"{self.status}; source {controller.source}"
        return level, message, values, controller.spec.name if controller else "none"


def _fill(response: Any, answer: EStopAnswer) -> Any:
    """An EStop response from the controller's answer: what happened, and who still holds the stop."""
    response.success, response.message, response.engaged_by = answer.success, answer.message, list(answer.engaged_by)
    return response


class SlowLane:
    """A supervised worker for work longer than a control period (chunk IK, diagnostics), in order.

    Cooperative mode only: the loop's thread must never run such work between two deadlines.
    It still takes the GIL while it works, but for ~2-5 % of the time instead of every callback.
    The chunk queue is bounded (a burst of chunks cannot grow memory or latency: the oldest
    waiting chunk is dropped and counted), diagnostics are coalesced (one pending at most), and
    a job that raises is counted and logged, never the end of the lane: a bad chunk is input,
    not a fault. The lane itself dying is a fault (node skeleton supervision).
    """

    def __init__(self, node: ArmControllerNode, capacity: int) -> None:
        if capacity < 1:
            raise ConfigurationError(f"slow_lane_capacity must be >= 1, found {capacity}")
        self._node = node
        self._chunks: deque[Callable[[], None]] = deque()
        self._capacity = capacity
        self._diagnostics: Callable[[], None] | None = None
        self._wake = threading.Condition()
        self.dropped = 0
        self.failed = 0
        self._worker: Worker = node.start_worker("slow_lane", self._work)

    @property
    def alive(self) -> bool:
        return self._worker.alive

    def submit_chunk(self, job: Callable[[], None]) -> None:
        with self._wake:
            if len(self._chunks) >= self._capacity:
                self._chunks.popleft()
                self.dropped += 1
            self._chunks.append(job)
            self._wake.notify()

    def submit_diagnostics(self, job: Callable[[], None]) -> None:
        with self._wake:
            self._diagnostics = job
            self._wake.notify()

    def counts(self) -> dict[str, int]:
        return {"slow_lane_dropped_chunks": self.dropped, "slow_lane_failed_jobs": self.failed}

    def close(self) -> None:
        with self._wake:
            self._worker.stop_event.set()
            self._wake.notify_all()
        self._worker.stop(timeout=2.0)

    def _work(self, stop: threading.Event) -> None:
        while True:
            with self._wake:
                while not stop.is_set() and not self._chunks and self._diagnostics is None:
                    self._wake.wait(timeout=0.5)
                if stop.is_set():
                    return
                job = self._chunks.popleft() if self._chunks else self._diagnostics
                if job is self._diagnostics:
                    self._diagnostics = None
            try:
                job()
            except Exception as error:  # a bad chunk must not end the lane
                self.failed += 1
                self._node.get_logger().error(
                    f"slow lane job failed (counted, skipped): {type(error).__name__}: {error}",
                    throttle_duration_sec=LOG_THROTTLE_S,
                )


def _strings(values: Any) -> list[str]:
    """A string-array parameter with the [""] "not set" convention removed."""
    return [str(v) for v in values if str(v)]


def _floats(values: Any) -> list[float] | None:
    """A double-array parameter, None when it is the [0.0] "not set" value."""
    numbers = [float(v) for v in values]
    return None if numbers in ([], [0.0]) else numbers


def _gripper_positions(spec: ArmSpec, mode: str, invert: bool) -> tuple[list[float], list[float]]:
    """Open and closed commands: [0]/[1] when normalized, else per driven gripper joint.

    Open and closed follow the embodiment's convention (``ArmSpec.gripper_open_closed``, the
    one the simulator uses too), swapped when ``gripper_invert``.
    """
    if mode == "normalized" or not spec.gripper_joints:
        open_, closed = [0.0], [1.0]
    else:
        open_array, closed_array = spec.gripper_open_closed()
        open_, closed = open_array.tolist(), closed_array.tolist()
    return (closed, open_) if invert else (open_, closed)


def make_executor(node: ArmControllerNode, kind: str = "auto") -> Executor:
    """The executor for :meth:`ArmControllerNode.spin`: ``auto`` is events for cooperative, single for threaded.

    Cooperative mode serves callbacks between periods, so each ``spin_once`` must be cheap:
    rclpy's EventsExecutor costs ~60 µs per call here, the SingleThreadedExecutor ~210 µs (it
    rebuilds its wait set in Python every call). The EventsExecutor deadlocks when *another*
    thread creates entities while it spins; in cooperative mode transitions run in its own
    callbacks (or before spinning), so that does not happen.
    """
    if kind == "auto":
        kind = "events" if value(node, "loop_mode") == "cooperative" else "single"
    if kind == "events":
        return EventsExecutor(context=node.context)
    return SingleThreadedExecutor(context=node.context)


def main(args: Sequence[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM: the arm brakes to rest before the process ends (exit 0)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return run_node(ArmControllerNode, args, program="arm_controller", executor_factory=make_executor)


if __name__ == "__main__":
    sys.exit(main())
