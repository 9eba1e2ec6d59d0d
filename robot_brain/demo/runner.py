"""Runs demo episodes against the node processes: reset, watch, score (one rclpy node in this process).

Per episode: deactivate the arm controller (it brakes and goes quiet, as a cell's controller
would before an operator repositions the arm), reset the sim with the episode's seed (arm
home, object placed), wait until perception reports the new object, re-activate the
controller (it re-seeds from the measured joints), then watch until the sim says the
episode is done. The brain's nodes are never told anything else: a learned policy goes
through exactly the same topics.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from robot_brain_msgs.msg import ActionChunk
from robot_brain_msgs.srv import GetEpisodeResult, ResetEpisode
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from robot_brain.demo.report import EpisodeRecord
from robot_brain.embodiment import Arm
from robot_brain.errors import UserError
from robot_brain.ros.image import image_to_array
from robot_brain.ros.policy_io import JointStateIndexer, stamp_to_seconds

FRAME_PERIOD_S = 0.25  # camera frames kept for the contact sheet
PATH_PERIOD_S = 0.02  # tool positions kept for the plot
QUIET_S = 0.3  # no arm command for this long: the deactivated controller has stopped publishing


class DemoError(UserError):
    """The demo's nodes did not come up or stopped answering."""


class DemoObserver(Node):
    """Subscribes to what the demo reports on and calls the sim's and controller's services."""

    def __init__(self, arm: Arm, command_topics: Sequence[tuple[str, type]] = ()) -> None:
        super().__init__("demo_runner")
        self.arm = arm
        self._lock = threading.Lock()
        self._indexer = JointStateIndexer(arm.spec.joint_names)
        self.latencies_ms: list[float] = []
        self.control_p99_us: list[float] = []
        self.real_time_factors: list[float] = []
        self.target_stamp = 0.0
        self.target_point: np.ndarray | None = None
        self.joint_count = 0
        self.image_count = 0
        self.chunk_count = 0
        self._recording: EpisodeRecord | None = None
        self._last_path = 0.0
        self._last_frame = 0.0
        self._episode_start = 0.0
        self.create_subscription(JointState, "/joint_states", self._on_joints, 10)
        self.create_subscription(Image, "/camera/image_raw", self._on_image, qos_profile_sensor_data)
        self.create_subscription(PointStamped, "/perception/target_point", self._on_target, 10)
        self.create_subscription(ActionChunk, "/policy/action_chunk", self._on_chunk, 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.last_command = 0.0
        for topic, kind in command_topics:
            self.create_subscription(kind, topic, self._on_command, 10)
        self.reset_client = self.create_client(ResetEpisode, "/sim/reset_episode")
        self.result_client = self.create_client(GetEpisodeResult, "/sim/get_result")
        self.change_client = self.create_client(ChangeState, "/arm_controller/change_state")
        self.state_client = self.create_client(GetState, "/arm_controller/get_state")

    # -- subscriptions --------------------------------------------------------------------

    def _on_joints(self, msg: JointState) -> None:
        self.joint_count += 1
        record = self._recording
        now = time.monotonic()
        if record is None or now - self._last_path < PATH_PERIOD_S:
            return
        try:
            q = self._indexer.positions(msg)
        except (KeyError, ValueError):
            return
        self._last_path = now
        tool = self.arm.kinematics.fk(q)[:3, 3]
        record.tool_path.append((now - self._episode_start, float(tool[0]), float(tool[1]), float(tool[2])))

    def _on_image(self, msg: Image) -> None:
        self.image_count += 1
        record = self._recording
        now = time.monotonic()
        if record is None or now - self._last_frame < FRAME_PERIOD_S:
            return
        self._last_frame = now
        record.frames.append(image_to_array(msg).copy())

    def _on_command(self, msg: object) -> None:
        self.last_command = time.monotonic()

    def _on_target(self, msg: PointStamped) -> None:
        with self._lock:
            self.target_stamp = time.monotonic()
            self.target_point = np.array([msg.point.x, msg.point.y, msg.point.z])

    def _on_chunk(self, msg: ActionChunk) -> None:
        self.chunk_count += 1
        if self._recording is None:
            return
        latency = self.get_clock().now().nanoseconds * 1e-9 - stamp_to_seconds(msg.header.stamp)
        if 0.0 <= latency < 5.0:
            self.latencies_ms.append(1e3 * latency)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {item.key: item.value for item in status.values}
            if status.name.endswith("arm_controller") or "p99_us" in values:
                number = _number(values.get("p99_us"))
                if number is not None and self._recording is not None:
                    self.control_p99_us.append(number)
            if "real_time_factor" in values:
                number = _number(values.get("real_time_factor"))
                if number is not None and self._recording is not None:
                    self.real_time_factors.append(number)

    # -- episode control ------------------------------------------------------------------

    def begin(self, record: EpisodeRecord) -> None:
        self._episode_start = time.monotonic()
        self._last_frame = self._last_path = 0.0
        self._recording = record

    def end(self) -> None:
        self._recording = None


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class DemoRunner:
    """Owns the observer node and its executor thread; runs episodes one after the other."""

    def __init__(self, arm: Arm, alive: Callable[[], bool], command_topics: Sequence[str] = ()) -> None:
        self._owns_context = not rclpy.ok()
        if self._owns_context:
            rclpy.init()
        kinds = [(topic, JointTrajectory if topic.endswith("/joint_trajectory") else Float64MultiArray)
                 for topic in command_topics]
        self.node = DemoObserver(arm, kinds)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()
        self._alive = alive

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        if self._owns_context:
            rclpy.try_shutdown()

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if not self._alive():
                raise DemoError(f"a node exited while waiting for {what}")
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.02)

    def _call(self, client: Any, request: Any, what: str, timeout: float = 10.0) -> Any:
        self._wait(lambda: client.service_is_ready(), timeout, f"the {what} service")
        future = client.call_async(request)
        self._wait(future.done, timeout, f"the {what} response")
        result = future.result()
        if result is None:
            raise DemoError(f"the {what} service returned nothing")
        return result

    def wait_ready(self, timeout: float) -> None:
        """Joint states, camera frames, an active controller and the policy's first chunks."""
        node = self.node
        self._wait(lambda: node.joint_count > 0, timeout, "/joint_states from the sim")
        self._wait(lambda: node.image_count > 0, timeout, "/camera/image_raw from the sim")
        self._wait(lambda: self.controller_state() == "active", timeout, "the arm controller to become active")
        self._wait(lambda: node.chunk_count > 0, timeout, "action chunks from the policy")

    def controller_state(self) -> str:
        if not self.node.state_client.service_is_ready():
            return "unknown"
        return str(self._call(self.node.state_client, GetState.Request(), "arm_controller get_state")
                   .current_state.label)

    def _transition(self, transition: int, label: str) -> None:
        request = ChangeState.Request()
        request.transition.id = transition
        if not self._call(self.node.change_client, request, f"arm_controller {label}").success:
            raise DemoError(f"the arm controller refused to {label}")

    def run_episode(self, index: int, seed: int, timeout: float) -> EpisodeRecord:
        node = self.node
        if self.controller_state() == "active":
            self._transition(Transition.TRANSITION_DEACTIVATE, "deactivate")
            # The halt it repeats while braking must not land after the reset and drag the arm back.
            self._wait(lambda: time.monotonic() - node.last_command > QUIET_S, 5.0, "the arm controller to go quiet")
        reset = self._call(node.reset_client, ResetEpisode.Request(seed=seed), "/sim/reset_episode")
        target = np.array([reset.result.target.x, reset.result.target.y, reset.result.target.z])
        record = EpisodeRecord(episode=index, seed=seed, success=False, time_to_success=math.nan,
                               final_distance=math.inf, target=target, message="")
        # Perception must have seen the new object before the controller moves again.
        reset_time = time.monotonic()
        self._wait(lambda: node.target_stamp > reset_time + 0.05 and node.target_point is not None
                   and np.linalg.norm(node.target_point[:2] - target[:2]) < 0.1, 5.0,
                   "perception to locate the new object")
        node.begin(record)
        self._transition(Transition.TRANSITION_ACTIVATE, "activate")
        deadline = time.monotonic() + timeout
        result = None
        while time.monotonic() < deadline:
            result = self._call(node.result_client, GetEpisodeResult.Request(), "/sim/get_result").result
            if result.done:
                break
            time.sleep(0.1)
        node.end()
        if result is None or not result.done:
            record.message = f"no result within {timeout:.0f} s"
            return record
        record.success = bool(result.success)
        record.time_to_success = float(result.time_to_success) if result.success else math.nan
        record.final_distance = float(result.final_distance)
        record.message = result.message
        return record
