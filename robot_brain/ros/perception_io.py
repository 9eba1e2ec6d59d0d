"""Messages of the perception node ↔ core types: CameraInfo, PointStamped, model outputs."""

from __future__ import annotations

import array as pyarray
import re

import numpy as np
from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float32MultiArray, Header, MultiArrayDimension

from robot_brain.perception.geometry import CameraModel
from robot_brain.ros.image import array_to_image


def topic_token(name: str) -> str:
    """A graph output name as a valid topic token (``537`` → ``out_537``, ``a.b:0`` → ``a_b_0``)."""
    token = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "out"
    return f"out_{token}" if token[0].isdigit() else token


def camera_model_from_info(msg: CameraInfo) -> CameraModel:
    """Intrinsics from CameraInfo; raises ConfigurationError for an uncalibrated (zero) K."""
    return CameraModel.from_values(msg.width, msg.height, list(msg.k), list(msg.d))


def point_stamped(point: np.ndarray, header: Header) -> PointStamped:
    """A PointStamped with the given header (stamp of the image, frame of the point)."""
    msg = PointStamped()
    msg.header = header
    msg.point.x, msg.point.y, msg.point.z = (float(v) for v in point[:3])
    return msg


def tensor_msg(array: np.ndarray, label: str) -> Float32MultiArray:
    """A model output as Float32MultiArray, one layout dimension per axis (labelled ``label/axisN``)."""
    msg = Float32MultiArray()
    values = np.ascontiguousarray(array, dtype=np.float32)
    strides = [int(np.prod(values.shape[i:])) for i in range(values.ndim)]
    msg.layout.dim = [
        MultiArrayDimension(label=f"{label}/axis{i}", size=int(size), stride=stride)
        for i, (size, stride) in enumerate(zip(values.shape, strides, strict=True))
    ]
    msg.data = pyarray.array("f", values.tobytes())
    return msg


def heatmap_msg(array: np.ndarray, header: Header) -> Image:
    """The first map of a ``[N, C, H, W]`` (or ``[H, W]``) output as a 32FC1 Image."""
    values = np.asarray(array, dtype=np.float32)
    while values.ndim > 2:
        values = values[0]
    return array_to_image(values, "32FC1", header)
