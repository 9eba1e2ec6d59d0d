"""Face blurring of serialized ``sensor_msgs/Image`` messages, for the recorder's ``blur_faces``.

The recorder subscribes with ``raw=True`` and writes CDR bytes; a frame that may show a
person is turned into a message, searched for faces (:mod:`robot_brain.perception.faces`),
and serialized again with the faces blurred. A frame without a face is returned as the very
bytes that came in (nothing re-encoded). A frame that cannot be searched (an encoding such
as ``16UC1`` or ``yuv422``, a broken message) raises, so the caller can drop it: an unblurred
frame must never reach the bag.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from robot_brain.perception.faces import FaceBlurrer
from robot_brain.perception.image import ImageFormatError
from robot_brain.ros.image import image_to_array

IMAGE_TYPE = "sensor_msgs/msg/Image"
#: Camera types a recorder with blur_faces refuses to record: their JPEG/PNG frames are not decoded here.
UNBLURRABLE_TYPES = ("sensor_msgs/msg/CompressedImage",)


@dataclass(frozen=True)
class BlurredFrame:
    """What to write instead of the frame that came in, how many faces were blurred, and what it cost."""

    data: bytes
    faces: int
    seconds: float


def blur_serialized_image(blurrer: FaceBlurrer, data: bytes) -> BlurredFrame:
    """The CDR bytes of an Image message with its faces blurred (``data`` itself when there is none).

    Raises :class:`ImageFormatError` when the message cannot be read or its encoding searched.
    """
    start = time.perf_counter()
    try:
        msg = deserialize_message(data, Image)
    except Exception as error:  # rclpy raises a bare RuntimeError-like error for bad CDR
        raise ImageFormatError(f"face blurring: not a readable sensor_msgs/Image ({error})") from None
    result = blurrer.blur(image_to_array(msg), msg.encoding)
    if not result.faces:
        return BlurredFrame(bytes(data), 0, time.perf_counter() - start)
    blurred = result.image  # C-contiguous: rows are no longer padded
    msg.step = int(blurred.strides[0])
    msg.data = blurred.tobytes()
    return BlurredFrame(serialize_message(msg), len(result.faces), time.perf_counter() - start)
