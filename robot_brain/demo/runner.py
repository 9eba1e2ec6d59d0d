"""Runs demo episodes against the node processes: reset, watch, score (one rclpy node in this process).

Per episode: deactivate the arm controller (it brakes and goes quiet, as a cell's controller
would before an operator repositions the arm), reset the sim with the episode's seed (arm
home, object placed), wait until perception reports the new object, re-activate the
controller (it re-seeds from the measured joints), then watch until the sim says the
episode is done. The brain's nodes are never told anything else: a learned policy goes
through exactly the same topics.

An episode whose object perception does not locate (out of view, hidden, another colour) is
a failed episode with perception's own reason (its diagnostics), and the run goes on: the
controller stays inactive, so the arm holds at home. Only nodes that stop answering end the run.
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
from rclpy.signals import SignalHandlerOptions
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
LOCATE_TIMEOUT_S = 5.0  # perception must report the new object within this after a reset
LOCATE_RADIUS_M = 0.1  # ... within this of the object (horizontally)
DEBUG_IMAGE_TOPIC = "/perception/debug_image"
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
        self.perception_status: dict[str, str] = {}  # perception's last diagnostics (message and values)
        self._frame_index: dict[tuple[int, int], int] = {}  # recorded frame stamp -> index in record.frames
        self._acting = False  # the controller is active in the recorded episode: latency and loop figures count
        self.joint_count = 0
        self.image_count = 0
        self.chunk_count = 0
        self._branch_moves_before = 0  # the controller's count when the episode's controller became active
        self._recording: EpisodeRecord | None = None
        self._last_path = 0.0
        self._last_frame = 0.0
        self._episode_start = 0.0
        self.create_subscription(JointState, "/joint_states", self._on_joints, 10)
        self.create_subscription(Image, "/camera/image_raw", self._on_image, qos_profile_sensor_data)
        self.create_subscription(Image, DEBUG_IMAGE_TOPIC, self._on_debug_image, 2)
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
        record.debug_frames.append(None)
        self._frame_index[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = len(record.frames) - 1

    def _on_debug_image(self, msg: Image) -> None:
        """Perception's annotated copy of a recorded frame (same stamp) goes beside it in the contact sheet."""
        record = self._recording
        if record is None:
            return
        index = self._frame_index.get((msg.header.stamp.sec, msg.header.stamp.nanosec))
        if index is not None and index < len(record.debug_frames):
            pixels = image_to_array(msg)
            record.debug_frames[index] = (pixels[:, :, ::-1] if msg.encoding == "bgr8" else pixels).copy()

    def _on_command(self, msg: object) -> None:
        self.last_command = time.monotonic()

    def _on_target(self, msg: PointStamped) -> None:
        with self._lock:
            self.target_stamp = time.monotonic()
            self.target_point = np.array([msg.point.x, msg.point.y, msg.point.z])

    def _on_chunk(self, msg: ActionChunk) -> None:
        self.chunk_count += 1
        if self._recording is None or not self._acting:
            return
        latency = self.get_clock().now().nanoseconds * 1e-9 - stamp_to_seconds(msg.header.stamp)
        if 0.0 <= latency < 5.0:
            self.latencies_ms.append(1e3 * latency)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {item.key: item.value for item in status.values}
            if "target_visible" in values:  # perception's status
                self.perception_status = {**values, "message": status.message}
            acting = self._recording is not None and self._acting
            if status.name.endswith("arm_controller") or "p99_us" in values:
                number = _number(values.get("p99_us"))
                if number is not None and acting:
                    self.control_p99_us.append(number)
                stall, record = values.get("stall", "none"), self._recording
                if acting and record is not None:
                    if stall != "none":
                        record.stall = stall
                    record.branch_moves = int(_number(values.get("branch_moves")) or 0) - self._branch_moves_before
                elif "branch_moves" in values:
                    self._branch_moves_before = int(_number(values.get("branch_moves")) or 0)
            if "real_time_factor" in values:
                number = _number(values.get("real_time_factor"))
                if number is not None and acting:
                    self.real_time_factors.append(number)

    # -- episode control ------------------------------------------------------------------

    def begin(self, record: EpisodeRecord) -> None:
        """Record camera frames and the tool path from the reset on (the controller is not active yet)."""
        self._episode_start = time.monotonic()
        self._last_frame = self._last_path = 0.0
        self._frame_index = {}
        self._acting = False
        self._recording = record

    def act(self) -> None:
        """The controller is active: latencies and the loop's figures count from now."""
        self._acting = True

    def end(self) -> None:
        self._recording = None
        self._acting = False


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
        if self._owns_context:  # signals are the CLI's (stop_on_signals): rclpy must not end the context itself
            rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
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

    def add_node(self, node: Node) -> None:
        """Spin another node of this process (e.g. the collector's pad) on the runner's executor."""
        self._executor.add_node(node)

    def remove_node(self, node: Node) -> None:
        self._executor.remove_node(node)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``predicate``; ``DemoError`` on a timeout or when a node exits meanwhile."""
        self._wait(predicate, timeout, what)

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        if not self._wait_until(predicate, timeout, what):
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")

    def _wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> bool:
        """Poll ``predicate`` until true (True) or ``timeout`` (False); a node that exits ends the run."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if not self._alive():
                raise DemoError(f"a node exited while waiting for {what}")
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

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
        """One scored episode: reset and locate (:meth:`start_episode`), activate, wait for the sim's verdict."""
        record = self.start_episode(index, seed)
        if not record.located:
            return record
        self.node.act()
        self.activate()
        return self.finish_episode(record, timeout)

    def start_episode(self, index: int, seed: int) -> EpisodeRecord:
        """Controller inactive (braked, quiet), sim reset with ``seed``, the new object located by perception.

        ``record.located`` is False (with perception's reason in ``record.message``) when
        perception did not locate the object in time; the controller then stays inactive.
        """
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
        node.begin(record)

        def located() -> bool:
            point = node.target_point
            return (node.target_stamp > reset_time + 0.05 and point is not None
                    and float(np.linalg.norm(point[:2] - target[:2])) < LOCATE_RADIUS_M)

        if not self._wait_until(located, LOCATE_TIMEOUT_S, "perception to locate the new object"):
            node.end()
            record.located = False
            record.message = self._not_located(target, reset_time)
        return record

    def activate(self) -> None:
        """Activate the arm controller (it re-seeds from the measured joints)."""
        self._transition(Transition.TRANSITION_ACTIVATE, "activate")

    def episode_result(self) -> Any:
        """The sim's current ``EpisodeResult``."""
        return self._call(self.node.result_client, GetEpisodeResult.Request(), "/sim/get_result").result

    def finish_episode(self, record: EpisodeRecord, timeout: float,
                       idle: Callable[[], None] | None = None) -> EpisodeRecord:
        """Wait until the sim says the episode is done (``idle`` runs between polls) and score it."""
        deadline = time.monotonic() + timeout
        result = None
        while time.monotonic() < deadline:
            result = self.episode_result()
            if result.done:
                break
            if idle is not None:
                idle()
            time.sleep(0.1)
        self.node.end()
        if result is None or not result.done:
            record.message = f"no result within {timeout:.0f} s"
            return record
        record.success = bool(result.success)
        record.time_to_success = float(result.time_to_success) if result.success else math.nan
        record.final_distance = float(result.final_distance)
        record.message = result.message
        if not record.success and record.stall:
            record.message += f"; the arm controller reported: {record.stall}"
        return record

    def _not_located(self, target: np.ndarray, reset_time: float) -> str:
        """Why perception did not locate the object: what it published instead, or its own diagnostics."""
        node = self.node
        status = node.perception_status
        point = node.target_point
        if status.get("target_visible") == "False":
            reason = status.get("target_missing_reason") or status.get("message") or "no reason given"
        elif node.target_stamp > reset_time + 0.05 and point is not None:
            off = float(np.linalg.norm(point[:2] - target[:2]))
            reason = f"it located a point {off:.2f} m away, expected within {LOCATE_RADIUS_M:.2f} m"
        else:
            reason = status.get("message") or "no perception diagnostics"
        return f"perception did not locate the object in {LOCATE_TIMEOUT_S:.0f} s ({reason}); the arm held still"
