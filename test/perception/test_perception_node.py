"""The perception lifecycle node over real DDS: target points, CenterFace outputs, bad input never crashes."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from pretrained import centerface_model
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from ros_fixtures import wait_for
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float32MultiArray
from test_perception_detector import CAMERA, CAMERA_POSE, CENTERFACE_SIDECAR, scene

from robot_brain.nodes.perception import PerceptionNode
from robot_brain.perception.geometry import matrix_to_pose
from robot_brain.ros.image import array_to_image

pytestmark = pytest.mark.dds


class Camera(Node):
    """Publishes frames and camera info; records what perception publishes."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.images = self.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        self.infos = self.create_publisher(CameraInfo, "/camera/camera_info", qos_profile_sensor_data)
        self.points: list[PointStamped] = []
        self.heatmaps: list[Image] = []
        self.tensors: list[Float32MultiArray] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.create_subscription(PointStamped, "/perception/target_point", self.points.append, 10)
        self.create_subscription(Image, "/perception/faces/heatmap", self.heatmaps.append, 10)
        self.create_subscription(Float32MultiArray, "/perception/model/out_538", self.tensors.append, 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def info(self, width: int = 640, height: int = 480) -> None:
        msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
        msg.k = CAMERA.k.ravel().tolist()
        msg.d = [0.0] * 5
        self.infos.publish(msg)

    def frame(self, image: np.ndarray, encoding: str = "bgr8") -> Image:
        msg = array_to_image(image, encoding)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = "camera_optical_frame"
        self.images.publish(msg)
        return msg

    def counts(self, node_name: str) -> dict[str, str]:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.startswith(node_name):
                    return {kv.key: kv.value for kv in status.values}
        return {}


def perception(name: str, **params: object) -> PerceptionNode:
    defaults = {
        "providers": ["cpu"],
        "diagnostics_period_s": 0.2,
        "target_frame": "base",
        "camera_pose": matrix_to_pose(CAMERA_POSE).tolist(),
        "shape": "circle",
    }
    overrides = [Parameter(k, value=v) for k, v in {**defaults, **params}.items()]
    node = PerceptionNode(parameter_overrides=overrides, namespace=f"/{name}")
    return node


def start(executor: MultiThreadedExecutor, node: PerceptionNode, camera: Camera) -> None:
    executor.add_node(node)
    executor.add_node(camera)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS


def test_target_point_in_base_frame(executor: MultiThreadedExecutor) -> None:
    node, camera = perception("det"), Camera("camera_det")
    start(executor, node, camera)
    target = np.array([0.58, -0.07, 0.0])
    image, _ = scene(target)
    sent: list[Image] = []

    def feed() -> bool:
        camera.info()
        sent.append(camera.frame(image))
        return wait_for(lambda: bool(camera.points), timeout=0.1)

    assert wait_for(feed, timeout=15.0), "no PointStamped"
    point = camera.points[-1]
    assert point.header.frame_id == "base"
    assert any(point.header.stamp == s.header.stamp for s in sent), "stamped with the image time"
    np.testing.assert_allclose([point.point.x, point.point.y, point.point.z], target, atol=3e-3)


def test_bad_input_is_counted_never_crashes(executor: MultiThreadedExecutor) -> None:
    node, camera = perception("bad_input"), Camera("camera_bad")
    start(executor, node, camera)
    image, _ = scene(np.array([0.5, 0.0, 0.0]))

    def reported(key: str) -> bool:
        return int(camera.counts("bad_input/perception").get(key, "0")) > 0

    assert wait_for(lambda: bool(camera.frame(image)) and reported("error: camera_info"), timeout=10.0)
    yuv = Image(height=4, width=4, encoding="yuv422", step=8, data=bytes(32))
    assert wait_for(lambda: camera.images.publish(yuv) is None and reported("error: image"), timeout=10.0)
    short = Image(height=480, width=640, encoding="rgb8", step=1920, data=bytes(100))
    camera.images.publish(short)
    camera.info(width=320, height=240)
    assert wait_for(lambda: bool(camera.frame(image)) and reported("error: size"), timeout=10.0)
    assert camera.points == []
    camera.info()
    assert wait_for(lambda: bool(camera.frame(image)) and bool(camera.points), timeout=10.0), "recovers"


def test_centerface_outputs_published(executor: MultiThreadedExecutor) -> None:
    model = centerface_model()
    node = perception(
        "faces", detector_enabled=False, model_path=str(model), contract_path=str(CENTERFACE_SIDECAR), warmup_runs=1
    )
    camera = Camera("camera_faces")
    start(executor, node, camera)
    image = np.full((480, 640, 3), 120, np.uint8)
    assert wait_for(
        lambda: bool(camera.frame(image)) and bool(camera.heatmaps) and bool(camera.tensors), timeout=20.0, period=0.2
    )
    heatmap = camera.heatmaps[-1]
    assert (heatmap.width, heatmap.height, heatmap.encoding) == (160, 120, "32FC1")
    assert [d.size for d in camera.tensors[-1].layout.dim] == [1, 2, 120, 160]
    assert wait_for(lambda: camera.counts("faces/perception").get("provider") == "CPUExecutionProvider")


def test_configure_fails_without_detector_or_model(executor: MultiThreadedExecutor) -> None:
    node = perception("nothing", detector_enabled=False)
    executor.add_node(node)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert "expected detector_enabled or a model_path" in node._status
