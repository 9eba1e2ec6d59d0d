"""640x480 ``sensor_msgs/Image`` → normalised CHW float tensor (target ≤ 1.5 ms median).

Measures, in one run on the same frame: the zero-copy message view alone, the project's
path (view + fused OpenCV preprocessing into a reused buffer) at 224x224 and 96x96, and a
baseline written the usual way (``np.array(msg.data)`` copy, resize, cvtColor, numpy
normalise, transpose).

Usage: python bench/images.py [--iterations N]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import cv2
import numpy as np

from robot_brain.inference.contract import ImageSpec
from robot_brain.perception.preprocess import Preprocessor
from robot_brain.ros.image import array_to_image, image_to_array

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def timed(call: Callable[[], object], iterations: int) -> dict[str, float]:
    samples = np.empty(iterations)
    for i in range(iterations):
        start = time.perf_counter()
        call()
        samples[i] = time.perf_counter() - start
    samples *= 1e3
    return {"median_ms": float(np.median(samples)), "p99_ms": float(np.percentile(samples, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args()
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    msg = array_to_image(frame, "bgr8")
    mean, std = np.array(MEAN, np.float32), np.array(STD, np.float32)

    def naive(size: int) -> np.ndarray:
        image = np.array(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, 3)
        rgb = cv2.cvtColor(cv2.resize(image, (size, size)), cv2.COLOR_BGR2RGB)
        return ((rgb.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)[None].copy()

    rows: dict[str, dict[str, float]] = {"Image -> ndarray view": timed(lambda: image_to_array(msg), args.iterations)}
    for size in (224, 96):
        preprocess = Preprocessor(ImageSpec(width=size, height=size, mean=MEAN, std=STD))
        out = preprocess(image_to_array(msg), msg.encoding)
        np.testing.assert_allclose(out, naive(size), atol=2e-2)  # same tensor as the baseline (resize rounding)
        rows[f"robot_brain -> 1x3x{size}x{size}"] = timed(
            lambda p=preprocess: p(image_to_array(msg), msg.encoding), args.iterations
        )
        rows[f"baseline numpy -> 1x3x{size}x{size}"] = timed(lambda s=size: naive(s), args.iterations)
    print(f"{'path (640x480 bgr8)':<34} {'median ms':>10} {'p99 ms':>10}")
    for name, row in rows.items():
        print(f"{name:<34} {row['median_ms']:>10.3f} {row['p99_ms']:>10.3f}")
    target = rows["robot_brain -> 1x3x224x224"]["median_ms"] <= 1.5
    print(json.dumps({"bench": "images", "opencv": cv2.__version__, "target_1_5ms_met": target, "rows": rows}))


if __name__ == "__main__":
    main()
