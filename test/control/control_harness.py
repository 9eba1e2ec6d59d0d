"""A real-DDS test bench for the arm controller node: a fake arm, publishers and service calls.

The fake arm is a second node (same process, separate executor thread, traffic over Fast DDS)
that plays a position-controlled cell: it publishes ``/joint_states`` at 250 Hz in a
shuffled joint order with an extra joint, and its measured position is the last command it
received (perfect tracking), so commands close the loop as on a real cell.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import TwistStamped
from helpers.domains import next_domain
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from robot_brain_msgs.msg import ActionChunk
from robot_brain_msgs.srv import EStop
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_brain.embodiment import Arm, load_arm
from robot_brain.embodiment.catalog import bundled_arm_path
from robot_brain.nodes.arm_controller import ArmControllerNode, make_executor
from robot_brain.ros.control_msgs import LATCHED

DISCOVERY_TIMEOUT_S = 15.0


@dataclass
class Recorded:
    """Commands received by the fake arm: (receipt time, values) pairs."""

    commands: list[tuple[float, np.ndarray]] = field(default_factory=list)
    trajectories: list[tuple[float, JointTrajectory]] = field(default_factory=list)
    gripper: list[tuple[float, np.ndarray]] = field(default_factory=list)
    estopped: list[bool] = field(default_factory=list)


class FakeArm(Node):
    """Publishes joint states that follow the last command; records every command."""

    def __init__(self, arm: Arm, start: np.ndarray, context: Context, controller: str = "forward_position_controller",
                 trajectory_controller: str = "joint_trajectory_controller") -> None:
        super().__init__("fake_arm", context=context)
        spec = arm.spec
        self.arm = arm
        # Reversed order, the driven gripper joints and an unrelated joint: the controller must map by name.
        self.gripper_names = list(spec.driven_gripper_joints)
        self.names = [*reversed(spec.joint_names), *self.gripper_names, "unrelated_joint"]
        self.position = np.array(start, dtype=float)
        self.gripper_position = spec.gripper_open_closed()[0].copy() if self.gripper_names else np.zeros(0)
        self.publishing = True
        self.lock = threading.Lock()
        self.recorded = Recorded()
        self.state_publisher = self.create_publisher(JointState, "/joint_states", 10)
        self.create_subscription(Float64MultiArray, f"/{controller}/commands", self._on_command, 100)
        self.create_subscription(
            JointTrajectory, f"/{trajectory_controller}/joint_trajectory", self._on_trajectory, 100
        )
        self.create_subscription(Float64MultiArray, "/gripper_controller/commands", self._on_gripper, 100)
        self.create_subscription(Bool, "/arm_controller/estopped", self._on_estopped, LATCHED)
        self.chunks = self.create_publisher(ActionChunk, "/policy/action_chunk", QoSProfile(depth=10))
        self.twists = self.create_publisher(TwistStamped, "/teleop/twist", 10)
        self.create_timer(0.004, self._publish_state)
        self._service_clients: dict[str, Any] = {}

    def _publish_state(self) -> None:
        if not self.publishing:
            return
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = self.names
        with self.lock:
            msg.position = [*reversed(self.position.tolist()), *self.gripper_position.tolist(), 0.5]
        self.state_publisher.publish(msg)

    def _on_command(self, msg: Float64MultiArray) -> None:
        values = np.array(msg.data)
        with self.lock:
            self.recorded.commands.append((time.monotonic(), values))
            if values.shape == self.position.shape:
                self.position = values

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        with self.lock:
            self.recorded.trajectories.append((time.monotonic(), msg))
            self.position = np.array(msg.points[-1].positions)

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        with self.lock:
            self.recorded.gripper.append((time.monotonic(), np.array(msg.data)))
            if len(msg.data) == len(self.gripper_position):
                self.gripper_position = np.array(msg.data)  # a gripper that follows its command

    def _on_estopped(self, msg: Bool) -> None:
        with self.lock:
            self.recorded.estopped.append(bool(msg.data))

    def commands(self) -> np.ndarray:
        with self.lock:
            return np.array([values for _, values in self.recorded.commands])

    def command_count(self) -> int:
        with self.lock:
            return len(self.recorded.commands)

    def chunk(self, space: str, actions: np.ndarray, dt: float = 0.05, stamp_offset: float = 0.0,
              gripper: Sequence[float] | None = None, joint_names: Sequence[str] = ()) -> ActionChunk:
        """An ActionChunk stamped now (+ offset) with (horizon, dim) ``actions``."""
        values = np.asarray(actions, dtype=float)
        if gripper is not None:
            values = np.column_stack((values, gripper))
        msg = ActionChunk()
        now = self.get_clock().now().nanoseconds * 1e-9 + stamp_offset
        msg.header.stamp.sec = int(now)
        msg.header.stamp.nanosec = int((now - int(now)) * 1e9)
        msg.action_space = space
        msg.horizon, msg.dim = values.shape
        msg.dt = dt
        msg.joint_names = list(joint_names)
        msg.has_gripper = gripper is not None
        msg.actions = values.ravel().tolist()
        msg.model_id = "test"
        return msg

    def twist(self, twist: Sequence[float], frame_id: str = "", stamp: Any = None) -> None:
        """Publish a twist stamped now, or at ``stamp`` (a builtin_interfaces/Time: one sent earlier)."""
        msg = TwistStamped()
        msg.header.stamp = self.get_clock().now().to_msg() if stamp is None else stamp
        msg.header.frame_id = frame_id
        (msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z,
         msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z) = twist
        self.twists.publish(msg)

    def call(self, service_type: Any, name: str, request: Any, timeout: float = 5.0) -> Any:
        # One client per service for the whole test: a fresh client must be discovered again,
        # which took over 5 s once on a loaded 2-core CI box (the service itself was up).
        client = self._service_clients.get(name)
        if client is None:
            client = self._service_clients[name] = self.create_client(service_type, name)
        assert client.wait_for_service(timeout_sec=max(timeout, DISCOVERY_TIMEOUT_S)), f"service {name} not available"
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            assert time.monotonic() < deadline, f"service {name} did not answer"
            time.sleep(0.005)
        return future.result()

    def trigger(self, name: str) -> Trigger.Response:
        return self.call(Trigger, f"/arm_controller/{name}", Trigger.Request())

    def estop_service(self, name: str, source: str, operator_reset: bool = False) -> EStop.Response:
        """``~/engage_estop`` or ``~/release_estop``, saying who."""
        return self.call(EStop, f"/arm_controller/{name}", EStop.Request(source=source, operator_reset=operator_reset))

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request()
        request.transition.id = transition_id
        return bool(self.call(ChangeState, "/arm_controller/change_state", request).success)

    def lifecycle_state(self) -> str:
        return self.call(GetState, "/arm_controller/get_state", GetState.Request()).current_state.label


@dataclass
class Bench:
    node: ArmControllerNode
    fake: FakeArm
    arm: Arm

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
            time.sleep(0.01)

    def settle(self, seconds: float) -> None:
        time.sleep(seconds)

    def position(self) -> np.ndarray:
        with self.fake.lock:
            return self.fake.position.copy()

    def wait_until_still(self, timeout: float = 5.0) -> np.ndarray:
        """Wait until the command stream has been quiet for 0.2 s; returns the final position."""
        def quiet() -> bool:
            with self.fake.lock:
                commands = self.fake.recorded.commands
                return bool(commands) and time.monotonic() - commands[-1][0] > 0.2
        self.wait_for(quiet, timeout, "the command stream to go quiet")
        return self.position()

    @contextmanager
    def streaming(self, make_chunk: Callable[[], ActionChunk], period: float = 0.1) -> Iterator[None]:
        """Publish a fresh ``make_chunk()`` every ``period`` s while inside, as a policy streams its chunks.

        The controller follows a chunk for at most ``chunk_timeout`` (0.5 s) after it arrived, then
        brakes and holds: what takes longer than that (a full gripper stroke at 2 strokes/s on a busy
        machine) needs the stream, not one chunk.
        """
        stop = threading.Event()

        def publish() -> None:
            while not stop.is_set():
                self.fake.chunks.publish(make_chunk())
                stop.wait(period)

        thread = threading.Thread(target=publish, name="chunk_stream", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=2.0)

    def activate(self) -> None:
        assert self.fake.transition(1), "configure failed"  # lifecycle_msgs Transition.TRANSITION_CONFIGURE
        assert self.fake.transition(3), "activate failed"  # TRANSITION_ACTIVATE
        self.wait_for(lambda: self.node.controller is not None and self.node.controller.filter.seeded, 5.0,
                      "the controller to seed from /joint_states")


def arm_path(name: str) -> str:
    return str(bundled_arm_path(name))


@contextmanager
def bench(arm_name: str = "panda", start: np.ndarray | None = None, activate: bool = True,
          **parameters: Any) -> Iterator[Bench]:
    """The controller node and a fake arm in one fresh rclpy context, each on its own executor thread."""
    arm = load_arm(arm_name if arm_name.endswith((".urdf", ".xacro")) else arm_path(arm_name))
    start = arm.spec.middle_configuration() if start is None else start
    parameters.setdefault("urdf_path", arm_name if arm_name.endswith((".urdf", ".xacro")) else arm_path(arm_name))
    parameters.setdefault("realtime_priority", 0)
    context = Context()
    # Each bench in a DDS domain of its own: the nodes of earlier benches in this process
    # (same names, same services) can never be matched, even while they are torn down.
    rclpy.init(context=context, domain_id=next_domain())
    node = ArmControllerNode(
        context=context, parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()]
    )
    fake = FakeArm(arm, start, context)
    executors = []
    threads = []
    stop = threading.Event()
    for member in (node, fake):
        # The node gets the arm_controller script's executor (events when cooperative).
        executor = make_executor(member) if member is node else SingleThreadedExecutor(context=context)
        executor.add_node(member)
        spin = (lambda e=executor: node.spin(e, stop)) if member is node else executor.spin
        thread = threading.Thread(target=spin, daemon=True)
        thread.start()
        executors.append(executor)
        threads.append(thread)
    try:
        result = Bench(node, fake, arm)
        if activate:
            result.activate()
        yield result
    finally:
        stop.set()
        if node.loop is not None:
            node.loop.stop()
        for executor in executors:
            executor.shutdown(timeout_sec=2.0)
        for thread in threads:
            thread.join(timeout=2.0)
        node.destroy_node()
        fake.destroy_node()
        context.try_shutdown()
