"""Raw image buffers ↔ numpy, for the encodings of ``sensor_msgs/Image`` (no cv_bridge exists here).

:func:`buffer_to_array` returns a *view* of the message's buffer (``np.frombuffer`` plus
strides for row padding): no Python-level copy, ~µs for a 640x480 image. Rows padded
beyond ``width * channels`` (``step`` larger than needed) stay views; big-endian data keeps
a big-endian dtype. Colour conversion to what a model wants happens later, in
:mod:`robot_brain.perception.preprocess`, fused with resizing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_brain.errors import UserError


class ImageFormatError(UserError):
    """An image cannot be converted: unknown encoding, inconsistent size or step."""


@dataclass(frozen=True)
class Encoding:
    """Element type, channel count and colour order of one ``sensor_msgs/Image`` encoding."""

    dtype: str
    channels: int
    order: str
    """``rgb``, ``bgr``, ``rgba``, ``bgra``, ``mono`` or ``raw`` (no colour meaning: depth, generic)."""


ENCODINGS: dict[str, Encoding] = {
    "rgb8": Encoding("uint8", 3, "rgb"),
    "bgr8": Encoding("uint8", 3, "bgr"),
    "rgba8": Encoding("uint8", 4, "rgba"),
    "bgra8": Encoding("uint8", 4, "bgra"),
    "mono8": Encoding("uint8", 1, "mono"),
    "mono16": Encoding("uint16", 1, "mono"),
    "rgb16": Encoding("uint16", 3, "rgb"),
    "bgr16": Encoding("uint16", 3, "bgr"),
    "8UC1": Encoding("uint8", 1, "raw"),
    "8UC3": Encoding("uint8", 3, "raw"),
    "8UC4": Encoding("uint8", 4, "raw"),
    "16UC1": Encoding("uint16", 1, "raw"),
    "16SC1": Encoding("int16", 1, "raw"),
    "32SC1": Encoding("int32", 1, "raw"),
    "32FC1": Encoding("float32", 1, "raw"),
    "32FC3": Encoding("float32", 3, "raw"),
    "64FC1": Encoding("float64", 1, "raw"),
}
"""Encodings converted without a copy. Bayer and YUV need demosaicing (a copy): not accepted."""


def encoding_info(encoding: str) -> Encoding:
    """The :class:`Encoding` of a name, or an error listing the supported ones."""
    info = ENCODINGS.get(encoding)
    if info is None:
        raise ImageFormatError(f"image encoding: expected one of {', '.join(ENCODINGS)}, found {encoding!r}")
    return info


def buffer_to_array(
    data: object, height: int, width: int, encoding: str, step: int, is_bigendian: bool = False
) -> np.ndarray:
    """A zero-copy ``(H, W)`` or ``(H, W, C)`` view of an image buffer.

    ``data`` is anything exposing the buffer protocol (``array.array`` from rclpy,
    ``bytes``, ``memoryview``). The view keeps ``data`` alive; it is read-only when the
    buffer is.
    """
    info = encoding_info(encoding)
    dtype = np.dtype(info.dtype)
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if is_bigendian else "<")
    if height <= 0 or width <= 0:
        raise ImageFormatError(f"image size: expected positive width and height, found {width}x{height}")
    row_bytes = width * info.channels * dtype.itemsize
    if step < row_bytes:
        raise ImageFormatError(f"image step: expected >= {row_bytes} bytes for {width} px of {encoding}, found {step}")
    flat = np.frombuffer(data, dtype=np.uint8)  # type: ignore[call-overload]
    needed = step * (height - 1) + row_bytes
    if flat.size < needed:
        raise ImageFormatError(
            f"image data: expected >= {needed} bytes for {width}x{height} {encoding} (step {step}), found {flat.size}"
        )
    shape: tuple[int, ...] = (height, width, info.channels) if info.channels > 1 else (height, width)
    strides: tuple[int, ...] = (step, info.channels * dtype.itemsize, dtype.itemsize)[: len(shape)]
    if info.channels == 1:
        strides = (step, dtype.itemsize)
    return np.ndarray(shape=shape, dtype=dtype, buffer=flat, offset=0, strides=strides)


def array_encoding_ok(array: np.ndarray, encoding: str) -> None:
    """Check that an array can be published with ``encoding`` (dtype and channels)."""
    info = encoding_info(encoding)
    channels = 1 if array.ndim == 2 else array.shape[2] if array.ndim == 3 else -1
    if channels != info.channels or array.dtype.newbyteorder("=") != np.dtype(info.dtype):
        raise ImageFormatError(
            f"image array for {encoding}: expected {info.dtype} with {info.channels} channel(s), "
            f"found {array.dtype} with shape {list(array.shape)}"
        )
