"""Classical colour/shape target detector (OpenCV), for the reach task and quick demos.

Thresholds the frame in HSV (OpenCV ranges: H 0–179, S and V 0–255; a lower hue above the
upper hue wraps through red), cleans the mask with an opening, and keeps the largest
contour that passes the area and shape tests. Circularity ``4πA/P²`` is 1 for a disc and
~0.785 for a square, so ``shape="circle"`` accepts blobs above ``min_circularity``.

Two more filters make it usable next to an arm painted like the target:

- ``ignore``: a mask of pixels to leave out before blobs are formed (the robot's own
  silhouette from :mod:`robot_brain.perception.self_filter`);
- :class:`ApparentSize`: the target's known size, the camera pose and the plane it rests on
  give the area a blob *must* have where it lies in the image; a blob much larger (an arm
  link of the same colour) or much smaller (a speck) than that is rejected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from robot_brain.errors import ConfigurationError
from robot_brain.perception.geometry import CameraModel, point_on_plane
from robot_brain.perception.image import encoding_info

SHAPES = ("any", "circle", "square")
_TO_HSV = {
    "rgb": cv2.COLOR_RGB2HSV,
    "bgr": cv2.COLOR_BGR2HSV,
    "rgba": cv2.COLOR_RGB2HSV,
    "bgra": cv2.COLOR_BGR2HSV,
}


@dataclass(frozen=True)
class Detection:
    """The target in pixels (sub-pixel centroid) with what the filters measured."""

    u: float
    v: float
    area: float
    circularity: float


#: Silhouette area of a target of size ``s`` in units of ``s²``, over every viewing direction:
#: a ball or a disc seen face-on (π/4) to a cube seen along its diagonal (√3).
SILHOUETTE_FACTOR_RANGE = (math.pi / 4.0, math.sqrt(3.0))


@dataclass(frozen=True)
class ApparentSize:
    """The area a target of known size must cover at each pixel, from the camera pose and the table plane.

    Args:
        object_size: the target's size in metres (a cube's edge, a ball's diameter).
        camera_pose: 4x4 pose of the optical frame in the plane's frame.
        plane: ``[nx ny nz d]``, the plane ``n·p = d`` through the target's centre.
        tolerance: relative slack on the size (0.5: 1/1.5 to 1.5 times the expected extent), for
            calibration error, blur and the object standing above the plane.
        min_visible: the smallest fraction of its expected area a partly hidden target may show
            (the gripper closing in on it hides much of it).
    """

    object_size: float
    camera_pose: np.ndarray
    plane: Sequence[float]
    tolerance: float = 0.5
    min_visible: float = 0.15
    _normal: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.object_size > 0.0:
            raise ConfigurationError(f"object_size: expected a size > 0 m, found {self.object_size}")
        if self.tolerance < 0.0 or not 0.0 <= self.min_visible <= 1.0:
            raise ConfigurationError(
                f"size check: expected tolerance >= 0 and min_visible in [0, 1], "
                f"found {self.tolerance} and {self.min_visible}"
            )
        if len(self.plane) != 4 or np.linalg.norm(self.plane[:3]) < 1e-9:
            raise ConfigurationError(f"plane: expected [nx ny nz d] with a non-zero normal, found {list(self.plane)}")
        pose = np.asarray(self.camera_pose, dtype=np.float64)
        if pose.shape != (4, 4):
            raise ConfigurationError(f"camera pose: expected a 4x4 transform, found shape {pose.shape}")
        object.__setattr__(self, "camera_pose", pose)
        object.__setattr__(self, "_normal", np.asarray(self.plane[:3], dtype=np.float64))

    def area_bounds(self, camera: CameraModel, u: float, v: float) -> tuple[float, float] | None:
        """Smallest and largest acceptable blob area (px²) centred at (u, v); None when the pixel misses the plane.

        A target of area ``A`` (m², seen from the camera) at distance ``r`` along a ray that
        makes an angle θ with the optical axis (depth ``z = r cos θ``) covers ``fx fy A r / z³``
        pixels: the usual ``f² A / z²`` stretched by ``1 / cos θ`` off-axis.
        """
        point = point_on_plane(camera, u, v, self.camera_pose, self.plane)
        if point is None:
            return None
        offset = point - self.camera_pose[:3, 3]
        distance = float(np.linalg.norm(offset))
        depth = float(self.camera_pose[:3, 2] @ offset)
        if depth <= 1e-6:
            return None
        scale = camera.k[0, 0] * camera.k[1, 1] * self.object_size**2 * distance / depth**3
        low, high = SILHOUETTE_FACTOR_RANGE
        slack = (1.0 + self.tolerance) ** 2
        return self.min_visible * low * scale / slack, high * scale * slack


class ColorTargetDetector:
    """Finds the largest blob of one colour (and optionally one shape) in a colour frame."""

    def __init__(
        self,
        hsv_lower: Sequence[int],
        hsv_upper: Sequence[int],
        *,
        min_area: float = 30.0,
        shape: str = "any",
        min_circularity: float = 0.85,
        size_check: ApparentSize | None = None,
    ) -> None:
        if len(hsv_lower) != 3 or len(hsv_upper) != 3:
            raise ConfigurationError(
                f"detector HSV bounds: expected 3 values each, found {list(hsv_lower)} and {list(hsv_upper)}"
            )
        if shape not in SHAPES:
            raise ConfigurationError(f"detector shape: expected one of {', '.join(SHAPES)}, found {shape!r}")
        lower, upper = np.asarray(hsv_lower, dtype=np.uint8), np.asarray(hsv_upper, dtype=np.uint8)
        if lower[0] > upper[0]:  # hue wraps through 180 (red)
            self._ranges = [
                (lower, np.array([179, upper[1], upper[2]], np.uint8)),
                (np.array([0, lower[1], lower[2]], np.uint8), upper),
            ]
        else:
            self._ranges = [(lower, upper)]
        self.min_area = float(min_area)
        self.shape = shape
        self.min_circularity = float(min_circularity)
        self.size_check = size_check
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.last_rejected_by_size = 0  # blobs the size check turned down in the last detect()
        # The largest blob of the last detect() that the size check found too small for where it lies:
        # a target the tool almost hides (the perception node then keeps its last full view).
        self.last_too_small: Detection | None = None

    def mask(self, image: np.ndarray, encoding: str, ignore: np.ndarray | None = None) -> np.ndarray:
        """Binary mask (uint8 0/255) of pixels in the colour range, less the non-zero pixels of ``ignore``."""
        order = encoding_info(encoding).order
        if order not in _TO_HSV or image.dtype != np.uint8:
            raise ConfigurationError(f"colour detector: expected an 8-bit colour image, found encoding {encoding!r}")
        if image.shape[2] == 4:
            image = image[:, :, :3]
        hsv = cv2.cvtColor(image, _TO_HSV[order])
        mask = cv2.inRange(hsv, *self._ranges[0])
        for lower, upper in self._ranges[1:]:
            mask |= cv2.inRange(hsv, lower, upper)
        if ignore is not None:
            if ignore.shape != mask.shape or ignore.dtype != np.uint8:
                raise ConfigurationError(
                    f"detector ignore mask: expected uint8 {mask.shape[1]}x{mask.shape[0]} like the image, "
                    f"found {ignore.dtype} {ignore.shape[1::-1] if ignore.ndim >= 2 else ignore.shape}"
                )
            # Before the opening, so slivers left along the mask's edge are opened away too.
            cv2.subtract(mask, ignore, dst=mask)
        return cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)

    def detect(
        self,
        image: np.ndarray,
        encoding: str,
        *,
        ignore: np.ndarray | None = None,
        camera: CameraModel | None = None,
    ) -> Detection | None:
        """The best detection in one frame, or None.

        Args:
            ignore: uint8 mask (image-sized) of pixels to leave out, e.g. ``SelfMask.mask``; None ignores nothing.
            camera: the frame's intrinsics; required when the detector has a ``size_check``.
        """
        if self.size_check is not None and camera is None:
            raise ConfigurationError("detector size check: expected the frame's camera model, found none")
        contours, _ = cv2.findContours(self.mask(image, encoding, ignore), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        best: Detection | None = None
        self.last_rejected_by_size = 0
        self.last_too_small = None
        for contour in contours:
            area = float(cv2.contourArea(contour))
            if area < self.min_area or (best is not None and area <= best.area):
                continue
            perimeter = float(cv2.arcLength(contour, True))
            circularity = 4.0 * np.pi * area / (perimeter * perimeter) if perimeter > 0 else 0.0
            if self.shape == "circle" and circularity < self.min_circularity:
                continue
            if self.shape == "square" and len(cv2.approxPolyDP(contour, 0.04 * perimeter, True)) != 4:
                continue
            moments = cv2.moments(contour)
            if moments["m00"] <= 0.0:
                continue
            u, v = moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]
            if self.size_check is not None:
                assert camera is not None
                bounds = self.size_check.area_bounds(camera, u, v)
                if bounds is None or not bounds[0] <= area <= bounds[1]:
                    self.last_rejected_by_size += 1
                    if bounds is not None and area < bounds[0] and (
                        self.last_too_small is None or area > self.last_too_small.area
                    ):
                        self.last_too_small = Detection(u=u, v=v, area=area, circularity=circularity)
                    continue
            best = Detection(u=u, v=v, area=area, circularity=circularity)
        return best
