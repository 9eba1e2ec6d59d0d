"""Classical colour/shape target detector (OpenCV), for the reach task and quick demos.

Thresholds the frame in HSV (OpenCV ranges: H 0–179, S and V 0–255; a lower hue above the
upper hue wraps through red), cleans the mask with an opening, and keeps the largest
contour that passes the area and shape tests. Circularity ``4πA/P²`` is 1 for a disc and
~0.785 for a square, so ``shape="circle"`` accepts blobs above ``min_circularity``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from robot_brain.errors import ConfigurationError
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
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

    def mask(self, image: np.ndarray, encoding: str) -> np.ndarray:
        """Binary mask (uint8 0/255) of pixels in the colour range."""
        order = encoding_info(encoding).order
        if order not in _TO_HSV or image.dtype != np.uint8:
            raise ConfigurationError(f"colour detector: expected an 8-bit colour image, found encoding {encoding!r}")
        if image.shape[2] == 4:
            image = image[:, :, :3]
        hsv = cv2.cvtColor(image, _TO_HSV[order])
        mask = cv2.inRange(hsv, *self._ranges[0])
        for lower, upper in self._ranges[1:]:
            mask |= cv2.inRange(hsv, lower, upper)
        return cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)

    def detect(self, image: np.ndarray, encoding: str) -> Detection | None:
        """The best detection in one frame, or None."""
        contours, _ = cv2.findContours(self.mask(image, encoding), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        best: Detection | None = None
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
            best = Detection(
                u=moments["m10"] / moments["m00"],
                v=moments["m01"] / moments["m00"],
                area=area,
                circularity=circularity,
            )
        return best
