"""``perception`` lifecycle node: camera images → target point (OpenCV) and ONNX vision model outputs.

Subscribes to ``sensor_msgs/Image`` + ``CameraInfo`` (+ an optional aligned depth image)
with sensor-data QoS. Callbacks only keep the newest frame; a worker thread converts it
(zero-copy view of the message buffer), runs the colour/shape detector and turns the pixel
into a 3D point on a known plane (or from depth) in ``target_frame``, and runs the optional
vision model. Frames that arrive while the worker is busy replace the pending one and are
counted as dropped: perception never queues latency.

Bad input (unknown encodings, inconsistent sizes, missing camera info) is logged as one
rate-limited line and counted in diagnostics; the node never crashes on a frame. The worker
is supervised by the node skeleton (:class:`robot_brain.ros.node_skeleton.BrainNode`): an
unexpected failure outside the per-frame guard is a fault (error state, diagnostics ERROR),
and on SIGINT/SIGTERM it is stopped and joined before the context goes down.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import PointStamped
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float32MultiArray, Header

from robot_brain.errors import ConfigurationError, UserError
from robot_brain.inference.contract import ROLE_HEATMAP
from robot_brain.inference.stats import LatencyStats
from robot_brain.perception.detector import ColorTargetDetector
from robot_brain.perception.geometry import (
    CameraModel,
    depth_at,
    point_from_depth,
    point_on_plane,
    pose_to_matrix,
)
from robot_brain.perception.tracking import OcclusionGate
from robot_brain.perception.vision import VisionModel
from robot_brain.ros.image import image_to_array
from robot_brain.ros.model_diagnostics import OK, WARN, runtime_values
from robot_brain.ros.model_params import load_model_from_parameters, model_parameters, runtime_options, value
from robot_brain.ros.node_skeleton import BrainNode, run_node
from robot_brain.ros.perception_io import (
    camera_model_from_info,
    heatmap_msg,
    point_stamped,
    tensor_msg,
    topic_token,
)
from robot_brain.ros.policy_io import stamp_to_nanoseconds

LOG_THROTTLE_S = 5.0


PARAMETERS: tuple[tuple[str, Any, str], ...] = (
    *model_parameters("", intra_threads=0),
    ("image_topic", "/camera/image_raw", "sensor_msgs/Image input (sensor-data QoS)"),
    ("camera_info_topic", "/camera/camera_info", "sensor_msgs/CameraInfo of the image"),
    ("depth_topic", "", "Depth image aligned with the colour image (empty: use the plane)"),
    ("depth_scale", 0.001, "Metres per unit of integer depth images (16UC1 in mm: 0.001)"),
    ("target_topic", "/perception/target_point", "geometry_msgs/PointStamped output"),
    ("detector_enabled", True, "Run the colour/shape target detector"),
    ("hsv_lower", [0, 120, 70], "Lower HSV bound (OpenCV: H 0-179); H above upper wraps (red)"),
    ("hsv_upper", [10, 255, 255], "Upper HSV bound"),
    ("min_area", 30.0, "Smallest blob area, px^2"),
    (
        "occlusion_hold_ratio",
        0.6,
        "Hold the last full view while the blob is smaller than this fraction of its largest area "
        "(a tool hiding part of the target); 0 disables",
    ),
    ("shape", "any", "Blob shape filter: any, circle or square"),
    ("min_circularity", 0.85, "Circularity threshold for shape=circle (disc: ~0.9, square: ~0.8)"),
    ("target_frame", "", "Frame of published points (empty: the image's optical frame)"),
    (
        "camera_pose",
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        "Pose of the camera optical frame in target_frame: [x y z qx qy qz qw]",
    ),
    ("plane", [0.0, 0.0, 1.0, 0.0], "Plane n.p = d holding the target, in target_frame: [nx ny nz d]"),
    (
        "model_output_prefix",
        "/perception/model",
        "Vision model outputs are published on <prefix>/<output name> unless the contract names a topic",
    ),
)


class PerceptionNode(BrainNode):
    """Detects a coloured target in 3D and runs an optional ONNX vision model on camera frames."""

    PARAMETERS = PARAMETERS
    DIAGNOSTIC_TASK = "perception"

    def __init__(self, **kwargs: Any) -> None:
        self._reset_state()
        super().__init__("perception", **kwargs)

    def _reset_state(self) -> None:
        self._vision: VisionModel | None = None
        self._detector: ColorTargetDetector | None = None
        self._occlusion_gate: OcclusionGate | None = None
        self._camera: CameraModel | None = None
        self._camera_pose = np.eye(4)
        self._plane: list[float] = [0.0, 0.0, 1.0, 0.0]
        self._depth: Image | None = None
        self._topic_subscriptions: list[Any] = []
        self._output_publishers: dict[str, Any] = {}
        self._pending: Image | None = None
        self._wake = threading.Condition()
        self._latency = LatencyStats()
        self._model_latency = LatencyStats()
        self._counts: Counter[str] = Counter()

    # ----------------------------------------------------------------------------- lifecycle
    def configure_node(self) -> None:
        if value(self, "detector_enabled"):
            self._detector = ColorTargetDetector(
                list(value(self, "hsv_lower")),
                list(value(self, "hsv_upper")),
                min_area=float(value(self, "min_area")),
                shape=str(value(self, "shape")),
                min_circularity=float(value(self, "min_circularity")),
            )
            self._occlusion_gate = OcclusionGate(float(value(self, "occlusion_hold_ratio")))
            self._output_publishers["target"] = self.create_lifecycle_publisher(
                PointStamped, str(value(self, "target_topic")), QoSProfile(depth=10)
            )
        self._camera_pose = pose_to_matrix(list(value(self, "camera_pose")))
        self._plane = [float(v) for v in value(self, "plane")]
        if len(self._plane) != 4 or np.linalg.norm(self._plane[:3]) < 1e-9:
            raise ConfigurationError(f"plane: expected [nx ny nz d] with a non-zero normal, found {self._plane}")
        if str(value(self, "model_path")):
            self._vision = VisionModel(load_model_from_parameters(self), runtime_options(self))
            runtime = self._vision.runtime
            if runtime.providers.warning:
                self.get_logger().warning(f"{self._vision.model_id}: {runtime.providers.warning}")
            prefix = str(value(self, "model_output_prefix")).rstrip("/")
            for output in self._vision.contract.outputs:
                kind = Image if output.role == ROLE_HEATMAP else Float32MultiArray
                self._output_publishers[output.name] = self.create_lifecycle_publisher(
                    kind, output.topic or f"{prefix}/{topic_token(output.name)}", QoSProfile(depth=5)
                )
            self.get_logger().info(f"vision model {self._vision.model_id} on {runtime.providers.primary}")
        if self._detector is None and self._vision is None:
            raise ConfigurationError("perception: expected detector_enabled or a model_path, found neither")
        self._topic_subscriptions = [
            self.create_subscription(Image, str(value(self, "image_topic")), self._on_image, qos_profile_sensor_data),
            self.create_subscription(
                CameraInfo, str(value(self, "camera_info_topic")), self._on_info, qos_profile_sensor_data
            ),
        ]
        if str(value(self, "depth_topic")):
            self._topic_subscriptions.append(
                self.create_subscription(
                    Image, str(value(self, "depth_topic")), self._on_depth, qos_profile_sensor_data
                )
            )

    def activate_node(self) -> None:
        """Start the frame worker (its publishers are already enabled)."""
        self.start_worker("frames", self._worker)

    def deactivate_node(self) -> None:
        """Wake the frame worker so it sees its stop event at once."""
        with self._wake:
            self._wake.notify_all()

    def teardown_node(self) -> None:
        """Drop subscriptions, publishers and the model (the worker is already joined)."""
        for subscription in self._topic_subscriptions:
            self.destroy_subscription(subscription)
        for publisher in self._output_publishers.values():
            self.destroy_lifecycle_publisher(publisher)
        self._reset_state()

    # ----------------------------------------------------------------------------- callbacks
    def _on_info(self, msg: CameraInfo) -> None:
        try:
            camera = camera_model_from_info(msg)
        except UserError as error:
            self._problem("camera_info", str(error))
            return
        self._camera = camera

    def _on_depth(self, msg: Image) -> None:
        self._depth = msg

    def _on_image(self, msg: Image) -> None:
        with self._wake:
            if self._pending is not None:
                self._counts["frames dropped (worker busy)"] += 1
            self._pending = msg
            self._wake.notify()

    def _problem(self, key: str, text: str) -> None:
        """Count and log (rate-limited) a bad input; never raise."""
        self._counts[f"error: {key}"] += 1
        self.get_logger().error(text, throttle_duration_sec=LOG_THROTTLE_S)

    # ----------------------------------------------------------------------------- worker
    def _worker(self, stop: threading.Event) -> None:
        """Worker body: the newest pending frame, one at a time, until ``stop``."""
        while not stop.is_set():
            with self._wake:
                while not stop.is_set() and self._pending is None:
                    self._wake.wait(timeout=0.1)
                if stop.is_set():
                    return
                msg, self._pending = self._pending, None
            start = time.perf_counter()
            try:
                self._process(msg)
            except UserError as error:
                self._problem("image", f"frame skipped: {error}")
            except Exception as error:  # a bad frame must never kill the worker
                self._problem("internal", f"frame skipped after an unexpected {type(error).__name__}: {error}")
            self._latency.record(time.perf_counter() - start)

    def _process(self, msg: Image) -> None:
        image = image_to_array(msg)
        self._counts["frames processed"] += 1
        if self._vision is not None:
            start = time.perf_counter()
            try:
                outputs = self._vision(image, msg.encoding)
            except Exception as error:  # InvalidOutputError or a runtime failure: counted, not published
                self._problem("model", f"vision model output rejected: {error}")
            else:
                self._model_latency.record(time.perf_counter() - start)
                self._publish_outputs(outputs, msg.header)
        if self._detector is not None:
            self._detect(image, msg)

    def _publish_outputs(self, outputs: dict[str, np.ndarray], header: Header) -> None:
        assert self._vision is not None
        for output in self._vision.contract.outputs:
            publisher = self._output_publishers[output.name]
            if output.role == ROLE_HEATMAP:
                publisher.publish(heatmap_msg(outputs[output.name], header))
            else:
                publisher.publish(tensor_msg(outputs[output.name], output.name))

    def _detect(self, image: np.ndarray, msg: Image) -> None:
        assert self._detector is not None
        camera = self._camera
        if camera is None:
            self._problem(
                "camera_info",
                f"no CameraInfo received on {value(self, 'camera_info_topic')}: "
                "expected intrinsics before detecting targets in 3D",
            )
            return
        if (camera.width, camera.height) != (msg.width, msg.height):
            self._problem(
                "size",
                f"image size: expected {camera.width}x{camera.height} (camera_info), found {msg.width}x{msg.height}",
            )
            return
        detection = self._detector.detect(image, msg.encoding)
        if detection is None:
            self._counts["frames without target"] += 1
            return
        assert self._occlusion_gate is not None
        held_before = self._occlusion_gate.held_frames
        detection = self._occlusion_gate.update(detection)
        if self._occlusion_gate.held_frames != held_before:
            self._counts["occluded frames held"] += 1
        point = self._point(camera, detection.u, detection.v, msg)
        if point is None:
            self._counts["targets without 3D point"] += 1
            return
        header = Header(stamp=msg.header.stamp, frame_id=str(value(self, "target_frame")) or msg.header.frame_id)
        self._output_publishers["target"].publish(point_stamped(point, header))
        self._counts["targets published"] += 1

    def _point(self, camera: CameraModel, u: float, v: float, msg: Image) -> np.ndarray | None:
        depth = self._depth
        if not str(value(self, "depth_topic")):
            return point_on_plane(camera, u, v, self._camera_pose, self._plane)
        if depth is None:
            self._problem("depth", "no depth image received: expected one on " + str(value(self, "depth_topic")))
            return None
        if abs(stamp_to_nanoseconds(depth.header.stamp) - stamp_to_nanoseconds(msg.header.stamp)) > 100_000_000:
            self._counts["depth not aligned"] += 1
        depth_image = image_to_array(depth)
        scale = 1.0 if depth_image.dtype.kind == "f" else float(value(self, "depth_scale"))
        sx, sy = depth.width / msg.width, depth.height / msg.height
        return point_from_depth(camera, u, v, depth_at(depth_image, u * sx, v * sy, scale=scale), self._camera_pose)

    # ----------------------------------------------------------------------------- diagnostics
    def diagnostics(self) -> tuple[int, str, dict[str, object], str]:
        median, p99 = self._latency.percentiles()
        values: dict[str, object] = {
            "frame_ms_median": median * 1e3,
            "frame_ms_p99": p99 * 1e3,
            "camera_info": self._camera is not None,
        }
        level, message = OK, self.status
        model_id = "none"
        if self._vision is not None:
            values.update(runtime_values(self._vision.runtime, self._model_latency))
            model_id = self._vision.model_id
            if self._vision.runtime.providers.warning:
                level, message = WARN, self._vision.runtime.providers.warning
        values.update(dict(self._counts))
        errors = {k: v for k, v in self._counts.items() if k.startswith("error")}
        if errors and level == OK:
            level, message = WARN, f"{self.status}; bad input: {', '.join(sorted(errors))}"
        return level, message, values, model_id


def main(args: Sequence[str] | None = None) -> int:
    """Run the perception node until SIGINT/SIGTERM (then: worker joined, exit 0)."""
    return run_node(PerceptionNode, args, program="perception", executor_factory=lambda node: MultiThreadedExecutor(2))


if __name__ == "__main__":
    sys.exit(main())
