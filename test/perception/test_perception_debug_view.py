"""The annotated debug image: the self-mask tinted and outlined, the detection, the 3D point where it projects."""

from __future__ import annotations

import numpy as np
import pytest
from test_perception_detector import CAMERA, CAMERA_POSE, RED, scene

from robot_brain.errors import ConfigurationError
from robot_brain.perception.debug_view import DETECTION_COLOUR, MASK_COLOUR, POINT_COLOUR, annotate
from robot_brain.perception.detector import ColorTargetDetector
from robot_brain.perception.geometry import point_on_plane


def near(pixel: np.ndarray, colour: tuple[int, int, int], slack: int = 40) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - colour) <= slack))


def test_annotations_land_where_they_belong_in_either_channel_order() -> None:
    target = np.array([0.45, -0.08, 0.0])
    frame, (u, v) = scene(target)
    detection = ColorTargetDetector(*RED).detect(frame, "bgr8")
    assert detection is not None
    point = point_on_plane(CAMERA, detection.u, detection.v, CAMERA_POSE, [0, 0, 1, 0])
    mask = np.zeros((480, 640), np.uint8)
    mask[300:400, 400:560] = 255
    for encoding, flip in (("bgr8", True), ("rgb8", False)):
        image = frame if flip else frame[:, :, ::-1].copy()
        before = image.copy()
        out, out_encoding = annotate(image, encoding, mask=mask, detection=detection, point=point, camera=CAMERA,
                                     camera_pose=CAMERA_POSE, status="self-filter: ok")
        assert out_encoding == encoding and out.shape == image.shape
        np.testing.assert_array_equal(image, before)  # the frame itself is left alone
        as_rgb = out[:, :, ::-1] if flip else out
        assert near(as_rgb[300, 480], MASK_COLOUR, 60)  # the outline
        assert np.any(as_rgb[350, 480] != (before[:, :, ::-1] if flip else before)[350, 480])  # the tint
        assert np.all(as_rgb[100, 100] == (before[:, :, ::-1] if flip else before)[100, 100])  # untouched elsewhere
        radius = max(3, round(float(np.sqrt(detection.area / np.pi))))
        ring = as_rgb[round(detection.v), round(detection.u) + radius + 3]  # the cross's arm beyond the circle
        assert near(ring, DETECTION_COLOUR)
        marker = as_rgb[round(v) - 4 : round(v) + 5, round(u) - 4 : round(u) + 5].reshape(-1, 3)
        assert any(near(p, POINT_COLOUR, 30) for p in marker)  # the 3D point projects onto the detection
        assert np.any(as_rgb[8:20, 6:100] != (before[:, :, ::-1] if flip else before)[8:20, 6:100])  # status text


def test_mono_and_alpha_frames_and_a_wrong_mask() -> None:
    grey = np.full((48, 64), 90, np.uint8)
    out, encoding = annotate(grey, "mono8", status="no joint states")
    assert out.shape == (48, 64, 3) and encoding == "rgb8"
    rgba = np.zeros((48, 64, 4), np.uint8)
    out, encoding = annotate(rgba, "bgra8")
    assert out.shape == (48, 64, 3) and encoding == "bgr8"
    with pytest.raises(ConfigurationError, match="debug image mask: expected 64x48"):
        annotate(rgba, "bgra8", mask=np.zeros((10, 10), np.uint8))
