"""A real photograph of a face for the face-blurring tests, from a wheel the project installs anyway.

matplotlib (requirements/base.txt) ships ``grace_hopper.jpg`` in its sample data: the official
portrait of Rear Admiral Grace Hopper, a US Navy photograph (public domain), 512x600 px, the face
about 185x210 px around (267, 230). No test draws a fake face.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from matplotlib import cbook

#: The face's box as CenterFace finds it at 320 px (x0, y0, x1, y1), give or take a few pixels.
FACE_BOX = (175, 118, 357, 338)


def grace_hopper_path() -> Path:
    path = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    if not path.is_file():
        raise RuntimeError(f"{path}: matplotlib's sample photograph is missing (is matplotlib installed?)")
    return path


def grace_hopper_bgr() -> np.ndarray:
    """``(600, 512, 3)`` uint8, BGR."""
    image = cv2.imread(str(grace_hopper_path()), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (600, 512, 3), "grace_hopper.jpg did not decode as expected"
    return image


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: large for detail, near zero for a smooth blob."""
    grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
