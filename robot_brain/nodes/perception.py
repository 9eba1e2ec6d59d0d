"""``perception`` lifecycle node: camera images → target point (OpenCV) and ONNX vision model outputs.

Subscribes to ``sensor_msgs/Image`` + ``CameraInfo`` (+ an optional aligned depth image)
with sensor-data QoS. Callbacks only keep the newest frame; a worker thread converts it
(zero-copy view of the message buffer), runs the colour/shape detector and turns the pixel
into a 3D point on a known plane (or from depth) in ``target_frame``, and runs the optional
vision model. Frames that arrive while the worker is busy replace the pending one and are
counted as dropped: perception never queues latency.

**The robot filters itself out** (:mod:`robot_brain.perception.self_filter`): an arm painted
like the target would otherwise be the largest blob of its colour. From the robot
description, ``/joint_states`` (kept by stamp, so a frame is masked where the arm was when it
was exposed) and the camera pose, every pixel the robot covers is masked before detection,
and with ``object_size`` set, blobs of the wrong apparent size for where they lie are turned
down. Stale or missing joint states mask nothing and are reported, never fatal. The mask,
the detection and the 3D point can be published as an annotated image (``debug_image``).
When no target is seen, diagnostics say so and why (WARN after ``NOT_VISIBLE_WARN_S``), with
a rate-limited log line; nothing is published, so consumers keep their last target or skip.

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
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float32MultiArray, Header

from robot_brain.errors import ConfigurationError, UserError
from robot_brain.inference.contract import ROLE_HEATMAP
from robot_brain.inference.stats import LatencyStats
from robot_brain.perception.debug_view import annotate
from robot_brain.perception.detector import ApparentSize, ColorTargetDetector, Detection
from robot_brain.perception.geometry import (
    CameraModel,
    depth_at,
    point_from_depth,
    point_on_plane,
    pose_to_matrix,
)
from robot_brain.perception.self_filter import SampleStatus, SelfFilter, SelfFilterOptions
from robot_brain.perception.tracking import OcclusionGate
from robot_brain.perception.vision import VisionModel
from robot_brain.ros.arm_params import ARM_PARAMETERS, arm_from_parameters
from robot_brain.ros.diagnostics import OK, WARN
from robot_brain.ros.image import array_to_image, image_to_array
from robot_brain.ros.model_diagnostics import runtime_values
from robot_brain.ros.model_params import load_model_from_parameters, model_parameters, runtime_options
from robot_brain.ros.node_skeleton import BrainNode, run_node
from robot_brain.ros.params import value
from robot_brain.ros.perception_io import (
    camera_model_from_info,
    heatmap_msg,
    point_stamped,
    tensor_msg,
    topic_token,
)
from robot_brain.ros.policy_io import stamp_to_nanoseconds

LOG_THROTTLE_S = 5.0
#: No target for this long (while frames arrive): diagnostics WARN and a rate-limited log line, s.
NOT_VISIBLE_WARN_S = 1.0
#: A frame newer than every joint state received waits at most this long for the late ones, s.
JOINT_STATE_CATCH_UP_S = 0.1
#: After this many frames in a row whose wait did not help (joint stamps lag the camera's clock), stop waiting.
CATCH_UP_GIVE_UP = 3


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
    *ARM_PARAMETERS,
    (
        "self_filter_enabled",
        True,
        "Mask the robot out of the image before detection (needs the robot description, joint states, and "
        "target_frame = the arm's base link; otherwise off with a warning)",
    ),
    ("joint_states_topic", "/joint_states", "sensor_msgs/JointState input of the self-filter"),
    (
        "self_filter_geometry",
        "visual",
        "Robot geometry drawn into the mask: visual, collision or both (the MuJoCo sim, which shows collision "
        "meshes where it cannot decode a visual: both)",
    ),
    ("self_filter_margin_px", 4.0, "Padding of the robot's mask, px"),
    (
        "self_filter_max_joint_state_age_s",
        0.1,
        "Mask a frame only with a joint state this close to its stamp; otherwise mask nothing and report it, s",
    ),
    (
        "object_size",
        0.0,
        "Target size in m (a cube's edge, a ball's diameter): blobs of the wrong apparent size for where they lie "
        "on the plane are rejected (0: no size check)",
    ),
    ("size_tolerance", 0.5, "Relative slack of the size check (0.5: 1/1.5 to 1.5 times the expected extent)"),
    (
        "size_min_visible",
        0.15,
        "Smallest fraction of its expected area a partly hidden target may show (smaller: the last full view is "
        "held while it lies where the target was)",
    ),
    ("debug_image", False, "Publish an annotated image (robot mask, detection, projected 3D point, status)"),
    ("debug_image_topic", "/perception/debug_image", "sensor_msgs/Image of the annotated frame (when subscribed)"),
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
        self._self_filter: SelfFilter | None = None
        self._self_filter_state = "off"  # "off: why", or the last frame's status
        self._self_filter_detail = ""
        self._self_filter_offset_s = float("nan")
        self._self_filter_latency = LatencyStats()
        self._joint_states_received = 0
        #: Notified at each joint state, so a worker waiting for a late one wakes when it arrives.
        self._joint_state_arrived = threading.Condition()
        self._catch_up_misses = 0
        self._joint_scratch = np.zeros(0)
        self._debug_publisher: Any = None
        self._target_seen = False
        self._missing_since: float | None = None
        self._missing_reason = ""

    # ----------------------------------------------------------------------------- lifecycle
    def configure_node(self) -> None:
        self._camera_pose = pose_to_matrix(list(value(self, "camera_pose")))
        self._plane = [float(v) for v in value(self, "plane")]
        if len(self._plane) != 4 or np.linalg.norm(self._plane[:3]) < 1e-9:
            raise ConfigurationError(f"plane: expected [nx ny nz d] with a non-zero normal, found {self._plane}")
        if value(self, "detector_enabled"):
            object_size = float(value(self, "object_size"))
            size_check = (
                ApparentSize(
                    object_size,
                    self._camera_pose,
                    self._plane,
                    float(value(self, "size_tolerance")),
                    float(value(self, "size_min_visible")),
                )
                if object_size > 0.0
                else None
            )
            self._detector = ColorTargetDetector(
                list(value(self, "hsv_lower")),
                list(value(self, "hsv_upper")),
                min_area=float(value(self, "min_area")),
                shape=str(value(self, "shape")),
                min_circularity=float(value(self, "min_circularity")),
                size_check=size_check,
            )
            self._occlusion_gate = OcclusionGate(float(value(self, "occlusion_hold_ratio")))
            self._output_publishers["target"] = self.create_lifecycle_publisher(
                PointStamped, str(value(self, "target_topic")), QoSProfile(depth=10)
            )
            self._configure_self_filter()
            if value(self, "debug_image"):
                self._debug_publisher = self.create_lifecycle_publisher(
                    Image, str(value(self, "debug_image_topic")), QoSProfile(depth=2)
                )
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
        self._topic_subscriptions += [  # after the self-filter's /joint_states subscription
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

    def _configure_self_filter(self) -> None:
        """Load the robot's geometry and follow its joint states, or say once why the self-filter is off."""
        if not value(self, "self_filter_enabled"):
            self._self_filter_state = "off: self_filter_enabled is false"
            return
        arm = arm_from_parameters(self, required=False)
        if arm is None:
            self._self_filter_off("no robot description (robot_description or urdf_path)")
            return
        target_frame = str(value(self, "target_frame"))
        if target_frame != arm.spec.base_link:
            self._self_filter_off(
                f"camera_pose must be given in the arm's base link '{arm.spec.base_link}', "
                f"but target_frame is '{target_frame}'"
            )
            return
        started = time.perf_counter()
        self._self_filter = SelfFilter(
            arm,
            SelfFilterOptions(
                geometry=str(value(self, "self_filter_geometry")),
                margin_px=float(value(self, "self_filter_margin_px")),
                max_joint_state_age_s=float(value(self, "self_filter_max_joint_state_age_s")),
            ),
        )
        self._joint_scratch = np.zeros(len(self._self_filter.joint_names))
        for warning in self._self_filter.shape.warnings:
            self.get_logger().warning(f"self-filter: {warning}")
        self._self_filter_state = "waiting for the first frame"
        self._topic_subscriptions.append(
            self.create_subscription(
                JointState, str(value(self, "joint_states_topic")), self._on_joint_state, QoSProfile(depth=50)
            )
        )
        self.get_logger().info(
            f"self-filter: {arm.spec.name}, {self._self_filter.piece_count} pieces "
            f"({value(self, 'self_filter_geometry')}) loaded in {time.perf_counter() - started:.2f} s, "
            f"joint states from {value(self, 'joint_states_topic')}"
        )

    def _self_filter_off(self, why: str) -> None:
        self._self_filter_state = f"off: {why}"
        self.get_logger().warning(f"self-filter off: {why}; the robot is not masked out of the image")

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
        if self._debug_publisher is not None:
            self.destroy_lifecycle_publisher(self._debug_publisher)
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

    def _on_joint_state(self, msg: JointState) -> None:
        """Subscription callback (hundreds of hertz): one sample into the self-filter's history."""
        self_filter = self._self_filter
        if self_filter is None:
            return
        stamp = stamp_to_nanoseconds(msg.header.stamp)
        if stamp == 0:  # a driver that does not stamp: now is the best guess
            stamp = self.get_clock().now().nanoseconds
        self_filter.add_joint_state(stamp, msg.name, msg.position)
        with self._joint_state_arrived:
            self._joint_states_received += 1
            self._joint_state_arrived.notify_all()

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
        mask = self._robot_mask(camera, msg)
        detector = self._detector
        detection: Detection | None = detector.detect(image, msg.encoding, ignore=mask, camera=camera)
        if detector.last_rejected_by_size:
            self._counts["blobs rejected by size"] += detector.last_rejected_by_size
        assert self._occlusion_gate is not None
        held = False
        if detection is not None:
            held_before = self._occlusion_gate.held_frames
            detection = self._occlusion_gate.update(detection)
            held = self._occlusion_gate.held_frames != held_before
        elif detector.last_too_small is not None:
            # The size check turned down a target the tool almost hides: keep its last full view.
            detection = self._occlusion_gate.hold_for(detector.last_too_small)
            held = detection is not None
        if held:
            self._counts["occluded frames held"] += 1
        point = None
        if detection is None:
            self._target_missing(self._why_missing(mask is not None))
        else:
            point = self._point(camera, detection.u, detection.v, msg)
            if point is None:
                self._counts["targets without 3D point"] += 1
                self._target_missing("the target's pixel has no 3D point (ray misses the plane, or no depth)")
            else:
                header = Header(
                    stamp=msg.header.stamp, frame_id=str(value(self, "target_frame")) or msg.header.frame_id
                )
                self._output_publishers["target"].publish(point_stamped(point, header))
                self._counts["targets published"] += 1
                self._target_seen, self._missing_since = True, None
        self._publish_debug(image, msg, camera, mask, detection, point, held)

    def _robot_mask(self, camera: CameraModel, msg: Image) -> np.ndarray | None:
        """The robot's mask for this frame, or None (self-filter off, or no usable joint state: reported)."""
        self_filter = self._self_filter
        if self_filter is None:
            return None
        stamp = stamp_to_nanoseconds(msg.header.stamp)
        started = time.perf_counter()
        result = self_filter.mask_at(stamp, camera, self._camera_pose)
        if result.status is SampleStatus.STALE and result.offset_s > 0.0 and self._catch_up_misses < CATCH_UP_GIVE_UP:
            if self._wait_for_joint_states(self_filter, stamp):
                started = time.perf_counter()  # the mask's cost, not the wait
                result = self_filter.mask_at(stamp, camera, self._camera_pose)
            if not result.ok:
                self._catch_up_misses += 1
        self._self_filter_latency.record(time.perf_counter() - started)
        if result.ok:
            self._catch_up_misses = 0
        self._self_filter_state = str(result.status)
        self._self_filter_detail = result.detail
        self._self_filter_offset_s = result.offset_s
        if not result.ok:
            self._counts[_SELF_FILTER_KEYS[result.status]] += 1
            self.get_logger().warning(
                f"self-filter masks nothing: {result.detail}", throttle_duration_sec=LOG_THROTTLE_S
            )
        return result.mask

    def _wait_for_joint_states(self, self_filter: SelfFilter, stamp: int) -> bool:
        """Wait (bounded) for joint states that are late rather than gone; True once the frame's time is covered.

        The frame is newer than every joint state received. On a busy host the joint states
        (hundreds a second) queue behind the executor while a frame is already here; masking
        nothing would let an arm of the target's colour through, so the worker waits for the
        state at the frame's time while new states keep arriving, at most
        ``JOINT_STATE_CATCH_UP_S``. A camera whose clock runs ahead of the robot's would make every
        frame wait: after ``CATCH_UP_GIVE_UP`` useless waits in a row it stops until a frame is masked.
        """
        self._counts["self-filter: waited for late joint states"] += 1
        tolerance = self_filter.options.max_joint_state_age_s
        deadline = time.monotonic() + JOINT_STATE_CATCH_UP_S
        received = self._joint_states_received
        while (left := deadline - time.monotonic()) > 0.0:
            with self._joint_state_arrived:  # woken by the next joint state, not by polling
                while self._joint_states_received == received and left > 0.0:
                    self._joint_state_arrived.wait(left)
                    left = deadline - time.monotonic()
                if self._joint_states_received == received:
                    return False
                received = self._joint_states_received
            lookup = self_filter.history.sample(stamp, tolerance, self._joint_scratch)
            if lookup.status is not SampleStatus.STALE or lookup.offset_s <= 0.0:
                return True
        return False

    def _why_missing(self, masked: bool) -> str:
        assert self._detector is not None
        rejected = self._detector.last_rejected_by_size
        if rejected:
            return f"{rejected} blob(s) of the target's colour, none of its size where it lies"
        if masked:
            return "no blob of the target's colour outside the robot's mask"
        return "no blob of the target's colour"

    def _target_missing(self, reason: str) -> None:
        """Count a frame without a target; after NOT_VISIBLE_WARN_S say so (rate-limited)."""
        self._counts["frames without target"] += 1
        now = time.monotonic()
        if self._target_seen or self._missing_since is None:
            self._missing_since = now
        self._target_seen = False
        self._missing_reason = reason
        if now - self._missing_since >= NOT_VISIBLE_WARN_S:
            self.get_logger().warning(
                f"target not visible for {now - self._missing_since:.1f} s: {reason}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )

    def _publish_debug(
        self,
        image: np.ndarray,
        msg: Image,
        camera: CameraModel,
        mask: np.ndarray | None,
        detection: Detection | None,
        point: np.ndarray | None,
        held: bool,
    ) -> None:
        """The annotated frame, only when someone listens (it costs a copy and a few drawing calls)."""
        publisher = self._debug_publisher
        if publisher is None or publisher.get_subscription_count() == 0:
            return
        mask_text = "mask ok" if mask is not None else f"mask {self._self_filter_state}"
        target_text = "target held (occluded)" if held else "target" if point is not None else "no target"
        annotated, encoding = annotate(
            image, msg.encoding, mask=mask, detection=detection, point=point, camera=camera,
            camera_pose=self._camera_pose, status=f"{mask_text} | {target_text}",
        )
        publisher.publish(array_to_image(annotated, encoding, msg.header))

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
    def diagnostics(self) -> tuple[bytes, str, dict[str, object], str]:
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
        if self._detector is not None:
            filter_median, filter_p99 = self._self_filter_latency.percentiles()
            missing_s = time.monotonic() - self._missing_since if self._missing_since is not None else 0.0
            values.update({
                "target_visible": self._target_seen,
                "target_missing_s": round(missing_s, 2),
                "target_missing_reason": "" if self._target_seen else self._missing_reason,
                "self_filter": self._self_filter_state,
                "self_filter_offset_s": self._self_filter_offset_s,
                "self_filter_ms_median": filter_median * 1e3,
                "self_filter_ms_p99": filter_p99 * 1e3,
                "size_check": self._detector.size_check is not None,
            })
            if level == OK and self.active and missing_s >= NOT_VISIBLE_WARN_S:
                level, message = WARN, f"target not visible for {missing_s:.1f} s: {self._missing_reason}"
            elif level == OK and self._self_filter is not None and self._self_filter_detail:
                level, message = WARN, f"self-filter masks nothing: {self._self_filter_detail}"
        values.update(dict(self._counts))
        errors = {k: v for k, v in self._counts.items() if k.startswith("error")}
        if errors and level == OK:
            level, message = WARN, f"{self.status}; bad input: {', '.join(sorted(errors))}"
        return level, message, values, model_id


#: Diagnostics counter of each reason the self-filter masked nothing (built once, not per frame).
_SELF_FILTER_KEYS = {status: f"self-filter: {status}" for status in SampleStatus}


def main(args: Sequence[str] | None = None) -> int:
    """Run the perception node until SIGINT/SIGTERM (then: worker joined, exit 0)."""
    return run_node(PerceptionNode, args, program="perception", executor_factory=lambda node: MultiThreadedExecutor(2))


if __name__ == "__main__":
    sys.exit(main())
