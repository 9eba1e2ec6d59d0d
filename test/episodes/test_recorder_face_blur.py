"""The recorder's blur_faces over real DDS: a face frame on the camera topic is blurred in the bag, or kept as sent.

The bag is read back with the independent MCAP reader (mcap + mcap_ros2), not with the
project's own reader; the face is a real photograph (test/helpers/face_images.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from helpers.domains import next_domain
from helpers.face_images import FACE_BOX, grace_hopper_bgr, sharpness
from helpers.waiting import wait_for
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message, serialize_message
from robot_brain_msgs.msg import EpisodeEvent
from sensor_msgs.msg import Image

from robot_brain.embodiment.catalog import bundled_arm_path
from robot_brain.episodes.store import EpisodeStore
from robot_brain.nodes.recorder import RecorderNode
from robot_brain.perception.faces import FaceBlurrer, FaceDetector
from robot_brain.perception.image import ImageFormatError
from robot_brain.ros.face_blur import blur_serialized_image
from robot_brain.ros.image import array_to_image, image_to_array

CAMERA = "/camera/image_raw"
TOPICS = [f"{CAMERA}:sensor_msgs/msg/Image", "/episode/events:robot_brain_msgs/msg/EpisodeEvent"]
INNER = (slice(FACE_BOX[1] + 20, FACE_BOX[3] - 20), slice(FACE_BOX[0] + 20, FACE_BOX[2] - 20))


class Camera(Node):
    """A camera that sees a person, the episode buttons, and the recorder's answers and diagnostics."""

    def __init__(self, context: Context) -> None:
        super().__init__("face_camera", context=context)
        self.images = self.create_publisher(Image, CAMERA, QoSProfile(depth=10))  # reliable: every frame arrives
        self.events = self.create_publisher(EpisodeEvent, "/episode/events", QoSProfile(depth=50))
        self.answers: list[EpisodeEvent] = []
        self.statuses: list[DiagnosticStatus] = []
        self.create_subscription(EpisodeEvent, "/episode/events", self._on_event, QoSProfile(depth=50))
        self.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.statuses.extend(m.status), 10)

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.event not in ("start", "stop", "success", "failure", "discard"):
            self.answers.append(msg)

    def answer(self, kind: str) -> EpisodeEvent:
        wait_for(lambda: any(a.event == kind for a in self.answers), 20.0, f"a '{kind}' answer")
        return next(a for a in self.answers if a.event == kind)

    def recorder_values(self) -> dict[str, str]:
        statuses = [s for s in self.statuses if s.name.startswith("recorder")]
        return {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}


@contextmanager
def recording(root: Path, **parameters: object) -> Iterator[tuple[RecorderNode, Camera]]:
    context = Context()
    rclpy.init(context=context, domain_id=next_domain())
    values = {"urdf_path": str(bundled_arm_path("panda")), "data_root": str(root), "operator": "scripted",
              "topics": TOPICS, "diagnostics_period_s": 0.2, "cell_id": "cell-test", **parameters}
    recorder = RecorderNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    camera = Camera(context)
    executors = [MultiThreadedExecutor(num_threads=3, context=context), SingleThreadedExecutor(context=context)]
    executors[0].add_node(recorder)
    executors[1].add_node(camera)
    threads = [threading.Thread(target=e.spin, daemon=True) for e in executors]
    for thread in threads:
        thread.start()
    try:
        yield recorder, camera
    finally:
        for executor in executors:
            executor.shutdown(timeout_sec=2.0)
        for thread in threads:
            thread.join(timeout=5.0)
        recorder.destroy_node()
        camera.destroy_node()
        context.try_shutdown()


def _record(root: Path, frames: list[Image], **parameters: object) -> tuple[str, list[Image], dict[str, str]]:
    """One episode holding ``frames``; returns its id, the frames as the bag holds them, and the last diagnostics."""
    with recording(root, **parameters) as (recorder, camera):
        assert recorder.trigger_configure() == TransitionCallbackReturn.SUCCESS, recorder.startup_error
        recorder.trigger_activate()
        wait_for(lambda: CAMERA in recorder._recorded_topics, 15.0, "the recorder to subscribe to the camera")
        wait_for(lambda: camera.images.get_subscription_count() > 0, 15.0, "the recorder's subscription to match")
        camera.events.publish(EpisodeEvent(event="start", task="hand-over"))
        camera.answer("recording")
        for frame in frames:
            camera.images.publish(frame)
            time.sleep(0.2)
        time.sleep(0.5)
        camera.events.publish(EpisodeEvent(event="success"))
        saved = camera.answer("saved")
        time.sleep(0.5)  # one more diagnostics period after the episode
        values = camera.recorder_values()
    bag = next((root / "episodes" / saved.episode_id).glob("*.mcap"))
    with bag.open("rb") as handle:
        decoded = list(make_reader(handle, decoder_factories=[DecoderFactory()]).iter_decoded_messages())
    return saved.episode_id, [m for _, c, _, m in decoded if c.topic == CAMERA], values


def _pixels(msg: Image) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 3].reshape(
        msg.height, msg.width, 3)


@pytest.mark.dds
def test_with_blur_faces_the_bag_holds_the_face_blurred_and_never_the_frame_as_sent(tmp_path: Path) -> None:
    face = grace_hopper_bgr()
    no_face = np.ascontiguousarray(face[400:, :])  # her uniform: nothing to blur
    depth = Image(height=4, width=4, encoding="16UC1", step=8, data=bytes(32))  # cannot be searched: dropped
    frames = [array_to_image(face, "bgr8"), array_to_image(no_face, "bgr8"), depth]
    episode, recorded, values = _record(tmp_path, frames, blur_faces=True)
    assert len(recorded) == 2, [m.encoding for m in recorded]  # the 16UC1 frame never reached the bag
    blurred, kept = (_pixels(m) for m in recorded)
    assert sharpness(blurred[INNER]) < sharpness(face[INNER]) / 50
    np.testing.assert_array_equal(blurred[500:, :80], face[500:, :80])  # far from the face: byte-identical
    np.testing.assert_array_equal(blurred[:, 450:], face[:, 450:])
    np.testing.assert_array_equal(kept, no_face)
    manifest = EpisodeStore(tmp_path).load_manifest(episode)
    assert manifest.faces_blurred is True
    assert manifest.topics[CAMERA].count == 2 and manifest.topics[CAMERA].dropped == 1
    assert values["blur_faces"] == "True" and values["faces blurred"] == "1", values
    assert values["frames searched for faces"] == "2" and values["frames dropped unblurred"] == "1", values
    assert float(values["face blur max ms"]) > 0.0


@pytest.mark.dds
def test_without_blur_faces_the_frame_is_recorded_as_sent(tmp_path: Path) -> None:
    face = grace_hopper_bgr()
    episode, recorded, values = _record(tmp_path, [array_to_image(face, "bgr8")])
    assert len(recorded) == 1
    np.testing.assert_array_equal(_pixels(recorded[0]), face)
    assert EpisodeStore(tmp_path).load_manifest(episode).faces_blurred is False
    assert values["blur_faces"] == "False" and "faces blurred" not in values


@pytest.mark.dds
def test_blur_faces_refuses_compressed_frames_and_a_missing_model_at_configure(tmp_path: Path) -> None:
    compressed = [*TOPICS, "/camera/image_raw/compressed:sensor_msgs/msg/CompressedImage"]
    with recording(tmp_path, blur_faces=True, topics=compressed) as (recorder, _):
        assert recorder.trigger_configure() != TransitionCallbackReturn.SUCCESS
        assert "CompressedImage" in recorder.startup_error or "compressed" in recorder.startup_error
    with recording(tmp_path, blur_faces=True, face_model_path=str(tmp_path / "none.onnx")) as (recorder, _):
        assert recorder.trigger_configure() != TransitionCallbackReturn.SUCCESS
        assert "none.onnx" in recorder.startup_error
    with recording(tmp_path, topics=compressed) as (recorder, _):  # without blur_faces nothing changes
        assert recorder.trigger_configure() == TransitionCallbackReturn.SUCCESS, recorder.startup_error


def test_serialized_frames_keep_their_header_and_a_frame_without_a_face_keeps_its_bytes() -> None:
    blurrer = FaceBlurrer(FaceDetector())
    face = grace_hopper_bgr()
    padded = np.zeros((600, 520, 3), np.uint8)
    padded[:, :512] = face
    msg = array_to_image(padded, "bgr8")
    msg.width, msg.header.frame_id = 512, "camera_optical"  # rows padded: step 1560 for 512 px
    msg.header.stamp.sec = 42
    result = blur_serialized_image(blurrer, serialize_message(msg))
    assert result.faces == 1
    out = deserialize_message(result.data, Image)
    assert (out.header.frame_id, out.header.stamp.sec, out.width, out.height, out.encoding) == (
        "camera_optical", 42, 512, 600, "bgr8")
    assert sharpness(image_to_array(out)[INNER]) < sharpness(face[INNER]) / 50
    plain = serialize_message(array_to_image(np.ascontiguousarray(face[400:]), "bgr8"))
    kept = blur_serialized_image(blurrer, plain)
    assert kept.faces == 0 and kept.data == plain
    with pytest.raises(ImageFormatError):
        blur_serialized_image(blurrer, b"\x00\x01\x00\x00garbage")
