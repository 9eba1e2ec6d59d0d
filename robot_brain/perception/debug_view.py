"""An annotated copy of a camera frame: what perception masked, what it found, where the 3D point projects.

Published (optionally) on ``/perception/debug_image`` and shown beside the raw frame in the
demo's contact sheet, so a person sees at a glance why perception did what it did: the
robot's self-mask (tinted, outlined), the detected blob (circle of its area, cross at its
centroid), the 3D target point projected back through the camera model (it should sit on
the cross: if it does not, the extrinsics or the plane are wrong) and one status line.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from robot_brain.errors import ConfigurationError
from robot_brain.perception.detector import Detection
from robot_brain.perception.geometry import CameraModel
from robot_brain.perception.image import encoding_info

#: Overlay colours, RGB.
MASK_COLOUR = (0, 200, 255)
DETECTION_COLOUR = (40, 230, 40)
POINT_COLOUR = (255, 0, 255)
TEXT_COLOUR = (255, 255, 255)
_MASK_TINT = 0.35


def annotate(
    image: np.ndarray,
    encoding: str,
    *,
    mask: np.ndarray | None = None,
    detection: Detection | None = None,
    point: np.ndarray | None = None,
    camera: CameraModel | None = None,
    camera_pose: np.ndarray | None = None,
    status: str = "",
) -> tuple[np.ndarray, str]:
    """An annotated copy of ``image`` and its encoding (``rgb8`` or ``bgr8``; alpha and mono become colour).

    Args:
        mask: the self-filter's mask (uint8, image-sized); tinted and outlined.
        detection: the detector's blob; a circle of its area and a cross at its centroid.
        point: the 3D target in the frame of ``camera_pose`` (with ``camera``); drawn where it projects.
        status: one line of text (e.g. the self-filter's status), top left.
    """
    info = encoding_info(encoding)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ConfigurationError(f"debug image: expected an 8-bit image, found {image.dtype} with shape {image.shape}")
    swap = info.order in ("bgr", "bgra")
    if image.ndim == 2 or image.shape[2] == 1:
        out = cv2.cvtColor(image.reshape(image.shape[0], image.shape[1]), cv2.COLOR_GRAY2RGB)
        swap = False
    else:
        out = np.ascontiguousarray(image[:, :, :3]).copy()
    out_encoding = "bgr8" if swap else "rgb8"

    def colour(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
        return (rgb[2], rgb[1], rgb[0]) if swap else rgb

    height, width = out.shape[:2]
    if mask is not None:
        if mask.shape != (height, width):
            raise ConfigurationError(
                f"debug image mask: expected {width}x{height} like the image, found {mask.shape[1::-1]}"
            )
        inside = mask > 0
        if inside.any():
            tint = np.array(colour(MASK_COLOUR), dtype=np.float32)
            out[inside] = (out[inside] * (1.0 - _MASK_TINT) + tint * _MASK_TINT).astype(np.uint8)
            contours, _ = cv2.findContours(inside.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, colour(MASK_COLOUR), 1, cv2.LINE_AA)
    if detection is not None:
        centre = (round(detection.u), round(detection.v))
        radius = max(3, round(math.sqrt(max(detection.area, 0.0) / math.pi)))
        cv2.circle(out, centre, radius, colour(DETECTION_COLOUR), 1, cv2.LINE_AA)
        cv2.drawMarker(out, centre, colour(DETECTION_COLOUR), cv2.MARKER_CROSS, 2 * radius + 6, 1)
    if point is not None and camera is not None:
        pose = np.eye(4) if camera_pose is None else camera_pose
        in_camera = pose[:3, :3].T @ (np.asarray(point, dtype=np.float64) - pose[:3, 3])
        if in_camera[2] > 1e-6:
            u, v = camera.project(in_camera)
            if -1e4 < u < 1e4 and -1e4 < v < 1e4:
                scale_u, scale_v = width / camera.width, height / camera.height
                where = (round(u * scale_u), round(v * scale_v))
                cv2.drawMarker(out, where, colour(POINT_COLOUR), cv2.MARKER_TILTED_CROSS, 14, 2)
                label = "({:.3f} {:.3f} {:.3f}) m".format(*(float(c) for c in point))
                cv2.putText(out, label, (where[0] + 9, where[1] - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                            colour(POINT_COLOUR), 1, cv2.LINE_AA)
    if status:
        cv2.putText(out, status, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, status, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour(TEXT_COLOUR), 1, cv2.LINE_AA)
    return out, out_encoding
