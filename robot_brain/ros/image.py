"""``sensor_msgs/Image`` ↔ numpy without cv_bridge (which is not installable from PyPI).

Reading is zero-copy: :func:`image_to_array` returns a view of the message's ``data``
buffer (rclpy stores ``uint8[]`` as ``array.array``), valid as long as the message is.
Writing uses ``ndarray.tobytes()``: assigning an ndarray to ``msg.data`` goes through
Python iteration and costs ~80 ms for 640x480x3 against ~0.2 ms for bytes.
"""

from __future__ import annotations

import sys

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from robot_brain.perception.image import array_encoding_ok, buffer_to_array


def image_to_array(msg: Image) -> np.ndarray:
    """A zero-copy ``(H, W[, C])`` view of an Image message's pixels; raises ImageFormatError."""
    return buffer_to_array(msg.data, msg.height, msg.width, msg.encoding, msg.step, bool(msg.is_bigendian))


def array_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """An Image message holding a copy of ``array`` (dtype and channels must fit ``encoding``)."""
    array_encoding_ok(array, encoding)
    contiguous = np.ascontiguousarray(array)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(contiguous.shape[0]), int(contiguous.shape[1])
    msg.encoding = encoding
    byteorder = contiguous.dtype.byteorder
    msg.is_bigendian = int(byteorder == ">" or (byteorder == "=" and sys.byteorder == "big"))
    msg.step = int(contiguous.strides[0])
    msg.data = contiguous.tobytes()
    return msg
