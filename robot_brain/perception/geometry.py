"""Camera geometry: pixel → 3D point with pinhole intrinsics and a known plane or a depth image.

Conventions follow ``sensor_msgs/CameraInfo`` and REP 103/105: the camera's optical frame
has z forward, x right, y down; ``K = [fx 0 cx; 0 fy cy; 0 0 1]``. Distortion (plumb_bob /
rational_polynomial ``D``) is undone with OpenCV before back-projection. Points are
expressed in a *target* frame through a fixed camera pose (no tf2 exists in these wheels:
the extrinsics are a parameter), so the policy receives targets in the arm's base frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from robot_brain.errors import ConfigurationError


def quaternion_to_matrix(q: Sequence[float]) -> np.ndarray:
    """3x3 rotation of a unit quaternion ``[qx, qy, qz, qw]``."""
    x, y, z, w = (float(v) for v in q)
    norm = np.sqrt(x * x + y * y + z * z + w * w)
    if norm < 1e-9:
        raise ConfigurationError(f"quaternion: expected a non-zero [qx qy qz qw], found {list(q)}")
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """``[qx, qy, qz, qw]`` (qw >= 0) of a 3x3 rotation matrix (Shepperd's method, stable everywhere)."""
    m = rotation
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0.0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    quaternion = np.asarray(q, dtype=np.float64)
    quaternion /= np.linalg.norm(quaternion)
    return -quaternion if quaternion[3] < 0.0 else quaternion


def pose_to_matrix(pose: Sequence[float]) -> np.ndarray:
    """4x4 transform of ``[x y z qx qy qz qw]``."""
    if len(pose) != 7:
        raise ConfigurationError(f"pose: expected 7 values [x y z qx qy qz qw], found {len(pose)}")
    transform = np.eye(4)
    transform[:3, :3] = quaternion_to_matrix(pose[3:])
    transform[:3, 3] = pose[:3]
    return transform


def matrix_to_pose(transform: np.ndarray) -> np.ndarray:
    """``[x y z qx qy qz qw]`` of a 4x4 transform (what the ee_pose input role carries)."""
    return np.concatenate([transform[:3, 3], matrix_to_quaternion(transform[:3, :3])])


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics (with optional distortion) of one camera at its native resolution."""

    width: int
    height: int
    k: np.ndarray
    d: np.ndarray

    @classmethod
    def from_values(cls, width: int, height: int, k: Sequence[float], d: Sequence[float] = ()) -> CameraModel:
        """From CameraInfo-style fields; rejects a zero focal length (an uncalibrated camera)."""
        matrix = np.asarray(k, dtype=np.float64).reshape(3, 3)
        if matrix[0, 0] <= 0.0 or matrix[1, 1] <= 0.0:
            raise ConfigurationError(f"camera intrinsics: expected fx, fy > 0, found K={list(k)}")
        return cls(width=int(width), height=int(height), k=matrix, d=np.asarray(d, dtype=np.float64))

    def ray(self, u: float, v: float) -> np.ndarray:
        """Direction (z = 1) in the optical frame through pixel (u, v), distortion removed."""
        if self.d.size and np.any(self.d):
            point = cv2.undistortPoints(np.array([[[u, v]]], dtype=np.float64), self.k, self.d)[0, 0]
            return np.array([point[0], point[1], 1.0])
        return np.array([(u - self.k[0, 2]) / self.k[0, 0], (v - self.k[1, 2]) / self.k[1, 1], 1.0])

    def project(self, point: np.ndarray) -> tuple[float, float]:
        """Pixel of a 3D point in the optical frame (no distortion; for tests and overlays)."""
        return (
            float(self.k[0, 0] * point[0] / point[2] + self.k[0, 2]),
            float(self.k[1, 1] * point[1] / point[2] + self.k[1, 2]),
        )


def point_on_plane(
    camera: CameraModel, u: float, v: float, camera_pose: np.ndarray, plane: Sequence[float]
) -> np.ndarray | None:
    """Intersect the pixel's ray with the plane ``n · p = d`` (``plane = [nx ny nz d]`` in the target frame).

    ``camera_pose`` is the optical frame's 4x4 pose in the target frame. Returns None when the
    ray is parallel to the plane or the plane is behind the camera.
    """
    normal, offset = np.asarray(plane[:3], dtype=np.float64), float(plane[3])
    origin = camera_pose[:3, 3]
    direction = camera_pose[:3, :3] @ camera.ray(u, v)
    denominator = float(normal @ direction)
    if abs(denominator) < 1e-9:
        return None
    distance = (offset - float(normal @ origin)) / denominator
    if distance <= 0.0:
        return None
    return origin + distance * direction


def point_from_depth(
    camera: CameraModel, u: float, v: float, depth_m: float, camera_pose: np.ndarray
) -> np.ndarray | None:
    """Back-project a pixel with its depth (metres along the optical axis); None for invalid depth."""
    if not np.isfinite(depth_m) or depth_m <= 0.0:
        return None
    return camera_pose[:3, :3] @ (camera.ray(u, v) * depth_m) + camera_pose[:3, 3]


def depth_at(depth: np.ndarray, u: float, v: float, window: int = 2, scale: float = 1.0) -> float:
    """Median of valid depths in a small window around (u, v), in metres (``scale``: 0.001 for 16UC1 mm)."""
    rows, cols = depth.shape[:2]
    iu, iv = round(u), round(v)
    patch = depth[max(0, iv - window) : min(rows, iv + window + 1), max(0, iu - window) : min(cols, iu + window + 1)]
    values = patch.astype(np.float64).ravel() * scale
    values = values[np.isfinite(values) & (values > 0.0)]
    return float(np.median(values)) if values.size else float("nan")
