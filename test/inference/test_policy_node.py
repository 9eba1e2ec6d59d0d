"""The policy lifecycle node over real DDS: chunks from the reach demo, skips, rejections, bad models."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from robot_brain_msgs.msg import ActionChunk
from ros_fixtures import PANDA, wait_for
from sensor_msgs.msg import JointState

from robot_brain.embodiment import load_arm
from robot_brain.inference.builders import build_policy, mlp_contract
from robot_brain.nodes.policy import PolicyNode
from robot_brain.ros.policy_io import chunk_from_msg

pytestmark = pytest.mark.dds
REPO = Path(__file__).resolve().parents[2]
PANDA_Q = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.8])


class Probe(Node):
    """The test's side of the wire: publishes observations, records chunks and diagnostics."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.chunks: list[ActionChunk] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.create_subscription(ActionChunk, "/policy/action_chunk", self.chunks.append, 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.joints = self.create_publisher(JointState, "/joint_states", 10)
        self.target = self.create_publisher(PointStamped, "/perception/target_point", 10)

    def publish_state(self, names: list[str], q: np.ndarray) -> JointState:
        msg = JointState(name=names, position=[float(v) for v in q], velocity=[0.0] * len(names))
        msg.header.stamp = self.get_clock().now().to_msg()
        self.joints.publish(msg)
        return msg

    def diag_values(self, node_name: str) -> dict[str, str]:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.startswith(node_name):
                    return {kv.key: kv.value for kv in status.values}
        return {}


def policy_node(name: str, **params: object) -> PolicyNode:
    overrides = [
        Parameter(k, value=v) for k, v in {"providers": ["cpu"], "diagnostics_period_s": 0.2, **params}.items()
    ]
    return PolicyNode(parameter_overrides=overrides, namespace=f"/{name}")


def test_reach_demo_publishes_chunks_toward_target(executor: MultiThreadedExecutor) -> None:
    arm = load_arm(PANDA)
    node = policy_node("reach", urdf_path=str(PANDA), rate_hz=20.0)
    probe = Probe("probe_reach")
    executor.add_node(node)
    executor.add_node(probe)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    tip = arm.kinematics.fk(PANDA_Q)[:3, 3]
    target = tip + np.array([0.1, -0.05, -0.1])
    point = PointStamped()
    point.header.frame_id = arm.spec.base_link
    point.point.x, point.point.y, point.point.z = (float(v) for v in target)
    sent: dict[float, JointState] = {}

    def feed() -> bool:
        probe.target.publish(point)
        state = probe.publish_state(list(arm.spec.joint_names), PANDA_Q)
        sent[state.header.stamp.sec + state.header.stamp.nanosec * 1e-9] = state
        time.sleep(0.02)
        return len(probe.chunks) >= 3

    assert wait_for(feed, timeout=15.0), "no ActionChunk received"
    chunk = probe.chunks[-1]
    assert chunk.action_space == "ee_pose_delta" and chunk.horizon == 10 and chunk.dim == 7
    assert chunk.model_id.startswith("reach_p_controller@") and chunk.header.frame_id == arm.spec.base_link
    assert chunk.header.stamp.sec + chunk.header.stamp.nanosec * 1e-9 in sent, "stamped with the observation time"
    assert [c.step for c in probe.chunks] == sorted(c.step for c in probe.chunks)
    waypoints = chunk_from_msg(chunk)
    distances = np.linalg.norm(target - (tip + waypoints[:, :3]), axis=1)
    assert distances[-1] < distances[0] < np.linalg.norm(target - tip)
    assert wait_for(lambda: int(probe.diag_values("reach/policy").get("published_chunks", 0)) >= 3)
    values = probe.diag_values("reach/policy")
    assert values["provider"] == "CPUExecutionProvider" and values["gpu"] == "False"
    assert float(values["inference_ms_median"]) > 0.0 and float(values["observation_age_ms"]) < 500.0
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    count = len(probe.chunks)
    time.sleep(0.3)
    assert len(probe.chunks) <= count + 1, "no chunks after deactivate"


def test_missing_and_stale_inputs_skip_steps(executor: MultiThreadedExecutor) -> None:
    node = policy_node("stale", urdf_path=str(PANDA), rate_hz=50.0, max_observation_age_s=0.1)
    probe = Probe("probe_stale")
    executor.add_node(node)
    executor.add_node(probe)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    names = list(load_arm(PANDA).spec.joint_names)
    old = JointState(name=names, position=PANDA_Q.tolist())
    old.header.stamp = (node.get_clock().now() - rclpy.duration.Duration(seconds=5.0)).to_msg()
    probe.joints.publish(old)
    assert wait_for(
        lambda: any(k.startswith("skip: missing input 'target_point'") for k in probe.diag_values("stale/policy")),
        timeout=10.0,
    )
    point = PointStamped()
    point.point.x = 0.5

    def stale_reported() -> bool:
        probe.target.publish(point)
        probe.joints.publish(old)
        return any("older than" in k for k in probe.diag_values("stale/policy"))

    assert wait_for(stale_reported, timeout=10.0)
    assert probe.chunks == []
    assert int(probe.diag_values("stale/policy")["dropped_steps"]) > 0


def test_nan_outputs_are_never_published(executor: MultiThreadedExecutor, tmp_path: Path) -> None:
    path = tmp_path / "nan.onnx"
    path.write_bytes(build_policy(mlp_contract(dof=7, gripper=False), hidden=(8,), poison="nan").SerializeToString())
    node = policy_node("nan", model_path=str(path), urdf_path=str(PANDA), rate_hz=50.0)
    probe = Probe("probe_nan")
    executor.add_node(node)
    executor.add_node(probe)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    names = list(load_arm(PANDA).spec.joint_names)

    def rejected() -> bool:
        probe.publish_state(names, PANDA_Q)
        return int(probe.diag_values("nan/policy").get("rejected_non_finite", 0)) >= 3

    assert wait_for(rejected, timeout=10.0)
    assert probe.chunks == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model_path": "/nonexistent/model.onnx"}, "expected an ONNX file at /nonexistent/model.onnx"),
        ({"model_path": "builtin:reach", "urdf_path": ""}, "ee_pose): expected a robot description"),
        ({"model_path": "builtin:reach", "model_sha256": "ab" * 32}, "expected SHA-256"),
        (
            {"model_path": "builtin:reach", "urdf_path": str(PANDA), "providers": ["tpu"]},
            "providers: expected 'auto' or names",
        ),
    ],
)
def test_bad_configuration_fails_configure_with_reason(
    executor: MultiThreadedExecutor, params: dict[str, object], message: str
) -> None:
    node = policy_node("bad", **params)
    probe = Probe("probe_bad")
    executor.add_node(node)
    executor.add_node(probe)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert wait_for(lambda: message in probe.diag_values("bad/policy").get("state", ""), timeout=5.0)


def test_joint_model_wrong_dof_is_rejected_for_the_arm(executor: MultiThreadedExecutor, tmp_path: Path) -> None:
    path = tmp_path / "six.onnx"
    path.write_bytes(build_policy(mlp_contract(dof=6, gripper=False), hidden=(8,)).SerializeToString())
    node = policy_node("six", model_path=str(path), urdf_path=str(PANDA))
    executor.add_node(node)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert "expected 7 values per waypoint" in node._status


def test_console_script_with_params_file_and_autostart(ros_context: None, tmp_path: Path) -> None:
    """The real executable: config/policy.yaml + overrides, autostart, chunks received in this process."""
    params = yaml.safe_load((REPO / "config/policy.yaml").read_text())
    params["/**"]["ros__parameters"].update(
        {"urdf_path": str(PANDA), "autostart": True, "providers": ["cpu"], "rate_hz": 20.0}
    )
    params_file = tmp_path / "policy.yaml"
    params_file.write_text(yaml.safe_dump(params))
    process = subprocess.Popen(
        [sys.executable, "-m", "robot_brain.nodes.policy", "--ros-args", "--params-file", str(params_file)],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    executor = MultiThreadedExecutor()
    probe = Probe("probe_process")
    executor.add_node(probe)
    arm = load_arm(PANDA)
    point = PointStamped()
    point.point.x, point.point.z = 0.5, 0.3
    try:

        def feed() -> bool:
            probe.target.publish(point)
            probe.publish_state(list(arm.spec.joint_names), PANDA_Q)
            executor.spin_once(timeout_sec=0.05)
            return bool(probe.chunks)

        assert wait_for(feed, timeout=30.0), "no chunk from the policy process"
        assert probe.chunks[0].action_space == "ee_pose_delta"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
        executor.shutdown()
        probe.destroy_node()
    assert "loaded reach_p_controller@" in output and "CPUExecutionProvider" in output


def test_visuomotor_policy_from_camera_and_joints(executor: MultiThreadedExecutor, tmp_path: Path) -> None:
    """Image role end to end: a CNN policy fed by a 640x480 camera topic and joint states."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from robot_brain.inference.builders import cnn_contract
    from robot_brain.ros.image import array_to_image

    path = tmp_path / "cnn.onnx"
    path.write_bytes(build_policy(cnn_contract(size=64), hidden=(32,), conv_channels=(4, 8)).SerializeToString())
    node = policy_node("cnn", model_path=str(path), urdf_path=str(PANDA), rate_hz=30.0, sync_tolerance_s=0.2)
    probe = Probe("probe_cnn")
    camera = probe.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
    executor.add_node(node)
    executor.add_node(probe)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    names = list(load_arm(PANDA).spec.joint_names)
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)

    def feed() -> bool:
        image = array_to_image(frame, "rgb8")
        image.header.stamp = probe.get_clock().now().to_msg()
        camera.publish(image)
        probe.publish_state(names, PANDA_Q)
        time.sleep(0.03)
        return len(probe.chunks) >= 2

    assert wait_for(feed, timeout=15.0), "no chunk from the visuomotor policy"
    chunk = probe.chunks[-1]
    assert chunk.action_space == "joint_position" and chunk.has_gripper and list(chunk.joint_names) == names
    assert chunk_from_msg(chunk).shape == (16, 8)
