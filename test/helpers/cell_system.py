"""The brain as a cell runs it, for fault-injection and teleop tests: node processes over DDS, a MuJoCo cell.

:class:`System` starts the nodes of a launch plan (``robot-brain up``'s processes, in a DDS
domain of their own, this host only) and an :class:`Observer` node in the test process that
records what leaves the controller (every arm command with its receipt time), the joint
states and diagnostics, and publishes what a fault needs (targets, bad chunks, bad frames,
bad joint states). :func:`analyse_commands` checks a command stream against the arm's
safety limits and finds where braking started. Results go to ``out/reliability/faults.json``,
from which ``tools/reliability_report.py`` writes ``docs/reliability.md``.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped, TwistStamped
from helpers.domains import next_domain
from helpers.waiting import wait_for
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from robot_brain_msgs.msg import ActionChunk
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from robot_brain.bringup.plan import LaunchPlan, sim_plan
from robot_brain.bringup.processes import NodeProcesses
from robot_brain.bringup.robots import resolve_robot
from robot_brain.control.safety import SafetyLimits
from robot_brain.embodiment import Arm
from robot_brain.ros.control_msgs import LATCHED

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "out" / "reliability" / "faults.json"
CONTROL_RATE_HZ = 500.0
PERIOD_S = 1.0 / CONTROL_RATE_HZ
#: The controller's defaults the checks rely on (config/arm_controller.yaml).
CHUNK_TIMEOUT_S = 0.5
STATE_TIMEOUT_S = 0.1
#: Receipt times are measured in this process, one DDS hop after the controller published, on a
#: shared 2-core VM: a braking onset is judged against its bound plus this much measurement slack.
MEASUREMENT_SLACK_S = 0.025


class Observer(Node):
    """The test's side of the wire."""

    def __init__(self, context: Context, arm: Arm) -> None:
        super().__init__("fault_observer", context=context)
        self.arm = arm
        self.lock = threading.Lock()
        self.commands: list[tuple[float, np.ndarray]] = []
        self.joint_times: list[float] = []
        self.last_joints: JointState | None = None
        self.chunk_times: list[float] = []
        self.statuses: dict[str, list[tuple[float, DiagnosticStatus]]] = {}
        self.estopped: list[bool] = []
        self.targets_seen: list[float] = []
        self.create_subscription(Float64MultiArray, "/forward_position_controller/commands", self._on_command,
                                 QoSProfile(depth=1000))
        self.create_subscription(JointState, "/joint_states", self._on_joints, qos_profile_sensor_data)
        self.create_subscription(ActionChunk, "/policy/action_chunk", self._on_chunk, QoSProfile(depth=100))
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, QoSProfile(depth=100))
        self.create_subscription(Bool, "/arm_controller/estopped", self._on_estopped, LATCHED)
        self.create_subscription(PointStamped, "/perception/observed_point", self._on_observed, 10)
        self.target = self.create_publisher(PointStamped, "/perception/target_point", 10)
        self.chunks = self.create_publisher(ActionChunk, "/policy/action_chunk", QoSProfile(depth=1000))
        self.images = self.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        self.joints = self.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)
        self.twists = self.create_publisher(TwistStamped, "/teleop/twist", qos_profile_sensor_data)
        self._service_clients: dict[str, Any] = {}

    # -- recording ------------------------------------------------------------------------
    def _on_command(self, msg: Float64MultiArray) -> None:
        with self.lock:
            self.commands.append((time.monotonic(), np.array(msg.data)))

    def _on_joints(self, msg: JointState) -> None:
        self.joint_times.append(time.monotonic())
        self.last_joints = msg

    def joint_positions(self, names: Sequence[str]) -> np.ndarray:
        """The latest measured positions of ``names`` (from the sim's /joint_states)."""
        msg = self.last_joints
        assert msg is not None, "no joint state yet"
        index = {name: i for i, name in enumerate(msg.name)}
        return np.array([msg.position[index[name]] for name in names])

    def _on_chunk(self, msg: ActionChunk) -> None:
        self.chunk_times.append(time.monotonic())

    def _on_estopped(self, msg: Bool) -> None:
        self.estopped.append(bool(msg.data))

    def _on_observed(self, msg: PointStamped) -> None:
        self.targets_seen.append(time.monotonic())

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        now = time.monotonic()
        with self.lock:
            for status in msg.status:
                self.statuses.setdefault(status.name.split(":")[0], []).append((now, status))

    def commands_since(self, start: float) -> list[tuple[float, np.ndarray]]:
        with self.lock:
            return [(t, q) for t, q in self.commands if t >= start]

    def status(self, node: str, since: float = 0.0) -> DiagnosticStatus | None:
        with self.lock:
            entries = [s for t, s in self.statuses.get(node, []) if t >= since]
        return entries[-1] if entries else None

    def value(self, node: str, key: str, since: float = 0.0) -> str | None:
        status = self.status(node, since)
        if status is None:
            return None
        return {kv.key: kv.value for kv in status.values}.get(key)

    # -- acting ---------------------------------------------------------------------------
    def aim(self, point: Sequence[float]) -> None:
        msg = PointStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.arm.spec.base_link
        msg.point.x, msg.point.y, msg.point.z = (float(v) for v in point)
        self.target.publish(msg)

    def prepare(self, name: str) -> Any:
        """A Trigger client for ``name``, created once and discovered (so a timed call times only itself)."""
        client = self._service_clients.get(name)
        if client is None:
            client = self._service_clients[name] = self.create_client(Trigger, name)
        client.wait_for_service(timeout_sec=15.0)
        return client

    def call(self, name: str, timeout: float = 10.0) -> Trigger.Response | None:
        client = self.prepare(name)
        if not client.service_is_ready():
            return None
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.002)
        return future.result() if future.done() else None


@dataclass
class CommandAnalysis:
    """What a stream of arm commands did: limits respected, where braking began and ended."""

    commands: int
    within_position_limits: bool
    within_velocity_limits: bool
    within_acceleration_limits: bool
    worst_velocity_ratio: float
    worst_acceleration_ratio: float
    peak_speed: float
    braking_onset: float | None = None
    at_rest: float | None = None

    @property
    def within_limits(self) -> bool:
        return self.within_position_limits and self.within_velocity_limits and self.within_acceleration_limits


def safety_limits(arm: Arm) -> SafetyLimits:
    """The limits the controller enforces with its default parameters."""
    return SafetyLimits.from_spec(arm.spec.lower, arm.spec.upper, arm.spec.velocity)


def analyse_commands(commands: Sequence[tuple[float, np.ndarray]], limits: SafetyLimits,
                     after: float = -np.inf) -> CommandAnalysis:
    """Check every consecutive command pair against the limits; find the braking onset after ``after``.

    Commands are one control period apart while the arm moves (the controller publishes every
    period then, and goes quiet ``halt_messages`` periods after it stops), so velocities and
    accelerations are differences over ``PERIOD_S``. The braking onset is the first command
    after ``after`` from which the commanded speed never increases again until the arm is at
    rest; ``at_rest`` is the first command with zero velocity after it.
    """
    times = np.array([t for t, _ in commands])
    q = np.array([c for _, c in commands])
    eps = 1e-9
    lower_ok = bool(np.all(q >= limits.lower - 1e-6)) and bool(np.all(q <= limits.upper + 1e-6))
    velocity = np.diff(q, axis=0) / PERIOD_S if len(q) > 1 else np.zeros((0, limits.dof))
    acceleration = np.diff(velocity, axis=0) / PERIOD_S if len(velocity) > 1 else np.zeros((0, limits.dof))
    v_ratio = float(np.max(np.abs(velocity) / limits.velocity, initial=0.0))
    a_ratio = float(np.max(np.abs(acceleration) / limits.acceleration, initial=0.0))
    speed = np.max(np.abs(velocity) / limits.velocity, axis=1) if len(velocity) else np.zeros(0)
    analysis = CommandAnalysis(
        commands=len(q), within_position_limits=lower_ok, within_velocity_limits=v_ratio <= 1.0 + 1e-6,
        within_acceleration_limits=a_ratio <= 1.0 + 1e-6, worst_velocity_ratio=v_ratio,
        worst_acceleration_ratio=a_ratio, peak_speed=float(np.max(speed, initial=0.0)),
    )
    start = int(np.searchsorted(times[1:], after)) if len(speed) else 0
    rest = next((k for k in range(start, len(speed)) if speed[k] <= eps), None)
    if rest is None:
        return analysis
    run = rest  # the final stretch of non-increasing speed that ends at rest
    while run > start and speed[run - 1] >= speed[run] - eps and speed[run - 1] > eps:
        run -= 1
    # Braking begins at the first step of that stretch that is slower than the step before it
    # (a plateau at cruising speed before it is not braking).
    onset = next((k for k in range(max(run, 1), rest + 1) if speed[k] < speed[k - 1] - eps), rest)
    analysis.braking_onset = float(times[onset + 1])
    analysis.at_rest = float(times[rest + 1])
    return analysis


def command_timeline(commands: Sequence[tuple[float, np.ndarray]], origin: float, limits: SafetyLimits) -> str:
    """For a failure message: when the observer received the commands (ms from ``origin``), and the last speeds.

    Tells a stream that stopped mid-motion from one the observer stopped receiving, or one with gaps.
    """
    if not commands:
        return "no commands received"
    times = np.array([t for t, _ in commands]) - origin
    gaps = np.diff(times) if len(times) > 1 else np.zeros(1)
    q = np.array([c for _, c in commands[-6:]])
    speeds = np.max(np.abs(np.diff(q, axis=0)) / PERIOD_S / limits.velocity, axis=1) if len(q) > 1 else []
    return (f"{len(times)} commands received from {times[0] * 1e3:.0f} to {times[-1] * 1e3:.0f} ms, largest gap "
            f"{gaps.max() * 1e3:.0f} ms at {times[int(gaps.argmax())] * 1e3:.0f} ms; last speeds "
            f"{[round(float(v), 3) for v in speeds]} (fractions of the velocity limit)")


@dataclass
class FaultResult:
    """One row of docs/reliability.md."""

    fault: str
    injected: str
    detection: str
    bound_ms: float | None
    measured_ms: float | None
    outcome: str
    reported: str
    recovered: str
    within_limits: bool
    extra: dict[str, Any] = field(default_factory=dict)


def record_result(result: FaultResult) -> None:
    """Append (or replace, by fault name) one result in out/reliability/faults.json."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []
    rows = [row for row in rows if row["fault"] != result.fault] + [asdict(result)]
    RESULTS.write_text(json.dumps(rows, indent=1))


class System:
    """Node processes of a plan in a private DDS domain, plus the observer node in this process."""

    def __init__(self, plan: LaunchPlan, folder: Path) -> None:
        self.plan = plan
        self.folder = folder
        self.arm = plan.arm if getattr(plan, "arm", None) is not None else plan.robot.load()
        self.limits = safety_limits(self.arm)
        self.log = folder / "nodes.log"
        self.group = NodeProcesses(output=_Sink(), log_file=self.log)
        self.domain = next_domain()
        self.env = {"ROS_DOMAIN_ID": str(self.domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
        self.commands = plan.commands(folder / "params", sys.executable)
        self.context = Context()
        rclpy.init(context=self.context, domain_id=self.domain)
        self.observer = Observer(self.context, self.arm)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.observer)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def start(self, names: Sequence[str] | None = None) -> None:
        commands = {name: command for name, command in self.commands.items() if names is None or name in names}
        self.group.start(commands, env=self.env)

    def process(self, name: str) -> subprocess.Popen[str]:
        return self.group.processes[name]

    def restart(self, name: str) -> None:
        """Start a node again (after it was killed) under the same name."""
        self.group.processes.pop(name, None)
        self.group.start({name: self.commands[name]}, env=self.env)

    def signal(self, name: str, sig: signal.Signals) -> float:
        """Send ``sig`` to a node's process; returns when it was sent."""
        sent = time.monotonic()
        os.kill(self.process(name).pid, sig)
        return sent

    def wait_exit(self, name: str, timeout: float = 20.0) -> int:
        return self.process(name).wait(timeout=timeout)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.is_file() else ""

    def alive(self, name: str) -> bool:
        return self.process(name).poll() is None

    def wait_moving(self, timeout: float = 30.0, speed: float = 0.1) -> None:
        """Until the commanded joint speed exceeds ``speed`` of the limit (the arm is in motion)."""
        def moving() -> bool:
            recent = self.observer.commands_since(time.monotonic() - 0.1)
            if len(recent) < 3:
                return False
            return analyse_commands(recent, self.limits).peak_speed > speed
        wait_for(moving, timeout, "the arm to move")

    def close(self) -> dict[str, int]:
        codes = self.group.stop(timeout=10.0)
        self._executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=5.0)
        self.observer.destroy_node()
        self.context.try_shutdown()
        return codes


class _Sink:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def reach_plan(names: Sequence[str] = ("sim", "policy", "arm_controller"), **overrides: dict[str, Any]) -> LaunchPlan:
    """The Panda in the sim with the reach policy; targets come from the test (no camera needed)."""
    base = {
        "sim": {"camera_rate_hz": 0.0},
        "perception": {"target_topic": "/perception/observed_point"},
        "arm_controller": {"realtime_priority": 0},
    }
    for node, values in overrides.items():
        base.setdefault(node, {}).update(values)
    plan = sim_plan(resolve_robot("panda"), overrides=base)
    return replace(plan, nodes=tuple(spec for spec in plan.nodes if spec.name in names))


@contextmanager
def running_system(tmp: Path, names: Sequence[str] = ("sim", "policy", "arm_controller"),
                   **overrides: dict[str, Any]) -> Iterator[System]:
    system = System(reach_plan(names, **overrides), tmp)
    try:
        system.start()
        observer = system.observer
        wait_for(lambda: len(observer.joint_times) > 10, 60.0, "/joint_states from the sim")
        if "arm_controller" in names:
            wait_for(lambda: (observer.value("arm_controller", "state") or "") == "active", 60.0,
                     "the arm controller to be active")
        yield system
    finally:
        system.close()


def motion_targets(system: System) -> tuple[np.ndarray, np.ndarray]:
    """Two reachable tool positions 0.3 m apart around the layout's home pose."""
    layout = system.plan.layout
    home = system.arm.kinematics.fk(np.asarray(layout.home))[:3, 3]
    return home + np.array([0.0, 0.15, -0.05]), home + np.array([0.0, -0.15, -0.05])


def keep_moving(system: System, stop: threading.Event) -> None:
    """Aim the reach policy at A and B in turn, so the arm is in motion when a fault strikes."""
    targets = itertools.cycle(motion_targets(system))
    target = next(targets)
    switched = time.monotonic()
    while not stop.wait(0.05):
        if time.monotonic() - switched > 1.2:
            target, switched = next(targets), time.monotonic()
        system.observer.aim(target)
