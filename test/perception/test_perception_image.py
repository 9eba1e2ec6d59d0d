"""Image ↔ numpy for the common encodings (zero-copy views), and preprocessing against numpy."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_brain.inference.contract import ImageSpec
from robot_brain.perception.image import ENCODINGS, ImageFormatError, buffer_to_array
from robot_brain.perception.preprocess import Preprocessor
from robot_brain.ros.image import array_to_image, image_to_array


def sample(encoding: str, height: int = 5, width: int = 7) -> np.ndarray:
    info = ENCODINGS[encoding]
    shape = (height, width, info.channels) if info.channels > 1 else (height, width)
    values = np.arange(int(np.prod(shape))) % 251
    return (values * 1.5 if info.dtype.startswith("float") else values).astype(info.dtype).reshape(shape)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_round_trip_every_encoding_is_a_view(encoding: str) -> None:
    original = sample(encoding)
    msg = array_to_image(original, encoding)
    assert isinstance(msg.data, array.array)
    view = image_to_array(msg)
    np.testing.assert_array_equal(view, original)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8)), "no Python-level copy"


@settings(max_examples=30, deadline=None)
@given(
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    pad=st.integers(0, 13),
    encoding=st.sampled_from(["rgb8", "mono16", "32FC1", "bgra8"]),
)
def test_padded_rows_are_viewed_without_copy(height: int, width: int, pad: int, encoding: str) -> None:
    original = sample(encoding, height, width)
    row = original.reshape(height, -1).view(np.uint8)
    padded = np.zeros((height, row.shape[1] + pad), np.uint8)
    padded[:, : row.shape[1]] = row
    view = buffer_to_array(padded.tobytes(), height, width, encoding, step=padded.shape[1])
    np.testing.assert_array_equal(view, original)


def test_big_endian_16_bit() -> None:
    values = np.array([[1, 256, 4097]], dtype=">u2")
    view = buffer_to_array(values.tobytes(), 1, 3, "16UC1", step=6, is_bigendian=True)
    assert view.tolist() == [[1, 256, 4097]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((b"\0" * 10, 2, 2, "yuv422", 4), "expected one of rgb8, .* found 'yuv422'"),
        ((b"\0" * 10, 2, 2, "rgb8", 6), r"expected >= 12 bytes for 2x2 rgb8 \(step 6\), found 10"),
        ((b"\0" * 12, 2, 2, "rgb8", 5), "image step: expected >= 6 bytes for 2 px of rgb8, found 5"),
        ((b"", 0, 2, "mono8", 2), "expected positive width and height, found 2x0"),
    ],
)
def test_bad_buffers_say_expected_and_found(args: tuple, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ImageFormatError, match=message):
        buffer_to_array(*args)


def reference(image_rgb: np.ndarray, spec: ImageSpec) -> np.ndarray:
    resized = cv2.resize(image_rgb, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    normalised = (resized * spec.scale - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    return normalised.transpose(2, 0, 1)[None]


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_preprocess_matches_numpy_reference(encoding: str) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frame = {
        "rgb8": rgb,
        "bgr8": rgb[:, :, ::-1],
        "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)]),
        "bgra8": np.dstack([rgb[:, :, ::-1], np.zeros(rgb.shape[:2], np.uint8)]),
    }[encoding]
    spec = ImageSpec(width=32, height=24, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    out = Preprocessor(spec)(np.ascontiguousarray(frame), encoding)
    assert out.shape == (1, 3, 24, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference(rgb, spec), atol=1e-4)


def test_preprocess_mono_and_hwc_layouts() -> None:
    gray = np.tile(np.arange(64, dtype=np.uint8), (48, 1))
    to_rgb = Preprocessor(ImageSpec(width=16, height=12, layout="hwc"))(gray, "mono8")
    assert to_rgb.shape == (1, 12, 16, 3) and np.allclose(to_rgb[..., 0], to_rgb[..., 2])
    rgb = np.dstack([gray] * 3)
    to_mono = Preprocessor(ImageSpec(width=16, height=12, channel_order="mono"))(rgb, "rgb8")
    assert to_mono.shape == (1, 1, 12, 16) and 0.0 <= to_mono.min() and to_mono.max() <= 1.0
    with pytest.raises(ImageFormatError, match="expected an 8-bit colour or mono encoding, found '32FC1'"):
        Preprocessor(ImageSpec(width=4, height=4))(np.zeros((4, 4), np.float32), "32FC1")
