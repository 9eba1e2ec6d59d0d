"""The recorder's ``blur_faces``: what one 640x480 camera frame costs the writer worker, against not blurring.

Measures, in one process on the same frames (serialized ``sensor_msgs/Image``, ``bgr8``,
640x480: a real portrait, matplotlib's ``grace_hopper.jpg``, scaled to 480 px high on grey,
and a frame without a face), the recorder's hot path:

- baseline: ``EpisodeWriter.write`` of the frame as it came (what ``blur_faces: false`` costs);
- the CDR round trip alone (deserialize, serialize: what blurring adds besides detection);
- ``blur_serialized_image`` (decode, CenterFace on ONNX Runtime with 1 thread as in the
  recorder, blur, encode) with and without a face, at detection widths 160, 320 (the default)
  and 640 px;
- blur + write at the default width (the total per frame with ``blur_faces: true``).

Usage: python bench/face_blur.py [--iterations N]

Prints a table and one JSON line. At 30 frames/s the worker has 33 ms per frame for
everything it writes; a frame that waits longer than ``late_threshold_s`` is counted late,
and a full queue drops (and counts) frames.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from matplotlib import cbook
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from robot_brain.episodes.store import EpisodeProvenance, EpisodeStore, TopicSpec
from robot_brain.perception.faces import DEFAULT_DETECT_WIDTH, FaceBlurrer, FaceDetector
from robot_brain.ros.face_blur import blur_serialized_image
from robot_brain.ros.image import array_to_image

TOPIC = "/camera/image_raw"


def timed(call: Callable[[], object], iterations: int) -> dict[str, float]:
    call()  # warm-up
    samples = np.empty(iterations)
    for i in range(iterations):
        start = time.perf_counter()
        call()
        samples[i] = time.perf_counter() - start
    samples *= 1e3
    return {"median_ms": float(np.median(samples)), "p99_ms": float(np.percentile(samples, 99))}


def frames() -> tuple[bytes, bytes]:
    """(a 640x480 bgr8 frame with a face, one without), serialized."""
    portrait = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.IMREAD_COLOR)
    face = np.full((480, 640, 3), 128, np.uint8)
    scaled = cv2.resize(portrait, (410, 480), interpolation=cv2.INTER_AREA)
    face[:, 115:525] = scaled
    no_face = cv2.resize(portrait[400:], (640, 480), interpolation=cv2.INTER_LINEAR)  # her uniform
    return (serialize_message(array_to_image(face, "bgr8")), serialize_message(array_to_image(no_face, "bgr8")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    with_face, without_face = frames()
    rows: dict[str, dict[str, float]] = {}
    faces_found: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as root:
        provenance = EpisodeProvenance(operator="scripted", consent_id=None, consent_scopes=(), cell_id="bench",
                                       robot_name="bench", robot_description="<robot name='bench'/>",
                                       base_link="base", tip_link="tip")
        writer = EpisodeStore(Path(root)).start_episode(provenance, [TopicSpec(TOPIC, "sensor_msgs/msg/Image")])
        stamp = iter(range(1, 10**9))
        rows["baseline: write as received"] = timed(
            lambda: writer.write(TOPIC, next(stamp), with_face), args.iterations)
        rows["CDR round trip only"] = timed(
            lambda: serialize_message(deserialize_message(with_face, Image)), args.iterations)
        for width in (160, DEFAULT_DETECT_WIDTH, 640):
            blurrer = FaceBlurrer(FaceDetector(detect_width=width, threads=1))
            for name, data in (("face", with_face), ("no face", without_face)):
                key = f"blur {width} px, {name}"
                faces_found[key] = blur_serialized_image(blurrer, data).faces
                rows[key] = timed(lambda b=blurrer, d=data: blur_serialized_image(b, d), args.iterations)
            if width == DEFAULT_DETECT_WIDTH:
                rows[f"blur {width} px + write, face"] = timed(
                    lambda b=blurrer: writer.write(TOPIC, next(stamp), blur_serialized_image(b, with_face).data),
                    args.iterations)
        writer.discard()
    print(f"{'path (640x480 bgr8, 1 thread)':<34} {'median ms':>10} {'p99 ms':>10} {'faces':>6}")
    for name, row in rows.items():
        faces = str(faces_found[name]) if name in faces_found else ""
        print(f"{name:<34} {row['median_ms']:>10.3f} {row['p99_ms']:>10.3f} {faces:>6}")
    print(json.dumps({"bench": "face_blur", "opencv": cv2.__version__, "onnxruntime": ort.__version__,
                      "iterations": args.iterations, "faces_found": faces_found, "rows": rows}))


if __name__ == "__main__":
    main()
