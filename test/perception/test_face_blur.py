"""Face blurring (robot_brain.perception.faces) on a real photograph: the face is smoothed away, nothing else moves."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.face_images import FACE_BOX, grace_hopper_bgr, sharpness
from matplotlib import cbook

from robot_brain.errors import ConfigurationError, ModelContractError
from robot_brain.perception.faces import DEFAULT_MARGIN, FaceBlurrer, FaceDetector, blur_regions
from robot_brain.perception.image import ImageFormatError


@pytest.fixture(scope="module")
def blurrer() -> FaceBlurrer:
    return FaceBlurrer(FaceDetector())


def _grown_box_mask(shape: tuple[int, ...], faces: tuple, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    mask = np.zeros(shape[:2], bool)
    for f in faces:
        gx, gy = margin * (f.x1 - f.x0), margin * (f.y1 - f.y0)
        mask[max(0, int(f.y0 - gy) - 1): int(f.y1 + gy) + 2, max(0, int(f.x0 - gx) - 1): int(f.x1 + gx) + 2] = True
    return mask


def test_the_face_is_found_where_it_is(blurrer: FaceBlurrer) -> None:
    rgb = cv2.cvtColor(grace_hopper_bgr(), cv2.COLOR_BGR2RGB)
    faces = blurrer.detector.detect(rgb)
    assert len(faces) == 1, faces
    (face,) = faces
    assert face.score > 0.6
    assert np.allclose((face.x0, face.y0, face.x1, face.y1), FACE_BOX, atol=15), face


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "mono8"])
def test_the_face_is_smoothed_away_and_every_pixel_outside_its_box_is_untouched(
        blurrer: FaceBlurrer, encoding: str) -> None:
    bgr = grace_hopper_bgr()
    image = {"bgr8": bgr, "rgb8": cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
             "bgra8": cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), "mono8": cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)}[encoding]
    before = image.copy()
    result = blurrer.blur(image, encoding)
    assert len(result.faces) == 1 and result.image is not image
    np.testing.assert_array_equal(image, before)  # the input is never written to
    x0, y0, x1, y1 = FACE_BOX
    inner = (slice(y0 + 20, y1 - 20), slice(x0 + 20, x1 - 20))  # eyes, nose, mouth
    sharp, blurred = sharpness(before[inner]), sharpness(result.image[inner])
    assert blurred < sharp / 50, (encoding, sharp, blurred)
    outside = ~_grown_box_mask(image.shape, result.faces)
    np.testing.assert_array_equal(result.image[outside], before[outside])
    np.testing.assert_array_equal(result.image[500:, :80], before[500:, :80])  # far corner: byte-identical


def test_a_padded_frame_view_is_blurred_the_same(blurrer: FaceBlurrer) -> None:
    """A message whose rows are padded (step > width * 3) arrives as a strided view."""
    bgr = grace_hopper_bgr()
    padded = np.zeros((600, 520, 3), np.uint8)
    padded[:, :512] = bgr
    view = padded[:, :512]
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(blurrer.blur(view, "bgr8").image, blurrer.blur(bgr, "bgr8").image)


def test_frames_without_a_face_come_back_unchanged(blurrer: FaceBlurrer) -> None:
    bgr = grace_hopper_bgr()
    frames = [np.ascontiguousarray(bgr[400:, :]), np.ascontiguousarray(bgr[:330, :140]),  # uniform, flag
              np.zeros((480, 640, 3), np.uint8), np.full((480, 640, 3), 200, np.uint8),
              np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)]
    for name in ("Minduka_Present_Blue_Pack.png", "logo2.png"):  # matplotlib's other sample pictures
        frames.append(cv2.imread(str(cbook.get_sample_data(name, asfileobj=False)), cv2.IMREAD_COLOR))
    for frame in frames:
        before = frame.copy()
        result = blurrer.blur(frame, "bgr8")
        assert result.faces == () and result.image is frame, result.faces
        np.testing.assert_array_equal(frame, before)


def test_a_smaller_face_is_still_found_and_a_tiny_frame_is_searched(blurrer: FaceBlurrer) -> None:
    small = cv2.resize(grace_hopper_bgr(), (128, 150), interpolation=cv2.INTER_AREA)  # face ~45 px wide
    assert len(blurrer.blur(small, "bgr8").faces) == 1
    tiny = np.full((4, 6, 3), 7, np.uint8)  # what the other recorder tests publish
    assert blurrer.blur(tiny, "rgb8").image is tiny


def test_what_cannot_be_searched_is_refused_not_passed_through(blurrer: FaceBlurrer) -> None:
    with pytest.raises(ImageFormatError, match="16UC1"):
        blurrer.blur(np.zeros((48, 64), np.uint16), "16UC1")
    with pytest.raises(ImageFormatError, match="yuv422"):
        blurrer.blur(np.zeros((48, 64, 2), np.uint8), "yuv422")
    with pytest.raises(ImageFormatError, match="channel"):
        blurrer.blur(np.zeros((48, 64), np.uint8), "bgr8")


def test_bad_settings_and_models_fail_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="detect_width"):
        FaceDetector(detect_width=16)
    with pytest.raises(ConfigurationError, match="threshold"):
        FaceDetector(threshold=1.5)
    with pytest.raises(ConfigurationError, match="no such file"):
        FaceDetector(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelContractError, match=r"junk\.onnx"):
        FaceDetector(junk)


def test_blur_regions_clips_boxes_at_the_frame_edge() -> None:
    from robot_brain.perception.faces import FaceBox

    image = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    out = blur_regions(image, [FaceBox(60, 40, 90, 70, 0.9)], margin=0.5)
    assert out.shape == image.shape
    np.testing.assert_array_equal(out[:, :40], image[:, :40])
    assert not np.array_equal(out[40:, 60:], image[40:, 60:])
