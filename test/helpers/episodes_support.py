"""Shared pieces of the episode-store tests (no tests here), and the child process they kill.

Messages are real CDR built with rosbags' typestore (the same bytes an rclpy ``raw=True``
subscription hands the recorder); the robot description is a real URDF from a pip package.
Values are a function of the message index, so any reader can check every field it decodes.

Run as a script, this module is the child process of the crash and full-disk tests::

    python test/helpers/episodes_support.py crash DATA_ROOT      # two episodes, then a third until killed
    python test/helpers/episodes_support.py disk-full DATA_ROOT LIMIT_BYTES
    python test/helpers/episodes_support.py recover-limited DATA_ROOT LIMIT_BYTES
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import time
from pathlib import Path

import numpy as np

from robot_brain.embodiment.catalog import bundled_arm_path
from robot_brain.episodes.message_types import episode_typestore
from robot_brain.episodes.store import EpisodeProvenance, EpisodeStore, TopicSpec, make_qos

TYPESTORE = episode_typestore()
JOINT_NAMES = [f"panda_joint{i}" for i in range(1, 8)]
OPERATOR = "op-0123456789abcdef"
CONSENT_ID = "c-00000000000000aa"

JOINT_STATES = TopicSpec("/joint_states", "sensor_msgs/msg/JointState", (make_qos(depth=100),))
IMAGES = TopicSpec("/camera/image_raw", "sensor_msgs/msg/Image", (make_qos(reliable=False, depth=5),))
CHUNKS = TopicSpec("/policy/action_chunk", "robot_brain_msgs/msg/ActionChunk", (make_qos(),))
EVENTS = TopicSpec("/episode/events", "robot_brain_msgs/msg/EpisodeEvent", (make_qos(transient_local=True),))
ALL_TOPICS = (JOINT_STATES, IMAGES, CHUNKS, EVENTS)


def urdf_text() -> str:
    return bundled_arm_path("panda").read_text(encoding="utf-8")


def provenance(task: str = "reach the red cube", operator: str = OPERATOR) -> EpisodeProvenance:
    return EpisodeProvenance(
        operator=operator,
        consent_id=CONSENT_ID,
        consent_scopes=("record", "train"),
        cell_id="cell-test",
        robot_name="panda",
        robot_description=urdf_text(),
        base_link="panda_link0",
        tip_link="panda_hand",
        task=task,
    )


def _types(name: str) -> type:
    return TYPESTORE.types[name]


def _header(stamp_ns: int, frame_id: str) -> object:
    time_type, header_type = _types("builtin_interfaces/msg/Time"), _types("std_msgs/msg/Header")
    return header_type(stamp=time_type(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)


def joint_positions(index: int) -> np.ndarray:
    return np.array([0.001 * index + 0.1 * joint for joint in range(7)], dtype=np.float64)


def joint_state_cdr(index: int, stamp_ns: int) -> bytes:
    message = _types("sensor_msgs/msg/JointState")(
        header=_header(stamp_ns, ""),
        name=JOINT_NAMES,
        position=joint_positions(index),
        velocity=np.full(7, -0.5 * index, dtype=np.float64),
        effort=np.zeros(0, dtype=np.float64),
    )
    return bytes(TYPESTORE.serialize_cdr(message, JOINT_STATES.type))


def image_pixels(index: int, height: int, width: int) -> np.ndarray:
    """rgb8 pixels that differ per frame and per position."""
    rows = np.arange(height, dtype=np.uint32)[:, None, None]
    cols = np.arange(width, dtype=np.uint32)[None, :, None]
    channels = np.arange(3, dtype=np.uint32)[None, None, :]
    return ((rows * 7 + cols * 3 + channels * 50 + index * 11) % 256).astype(np.uint8)


def image_cdr(index: int, stamp_ns: int, height: int = 48, width: int = 64) -> bytes:
    pixels = image_pixels(index, height, width)
    message = _types("sensor_msgs/msg/Image")(
        header=_header(stamp_ns, "camera_optical"),
        height=height,
        width=width,
        encoding="rgb8",
        is_bigendian=0,
        step=width * 3,
        data=pixels.reshape(-1),
    )
    return bytes(TYPESTORE.serialize_cdr(message, IMAGES.type))


def chunk_actions(index: int) -> np.ndarray:
    return np.array([0.01 * index + 0.1 * k for k in range(3 * 8)], dtype=np.float64)


def action_chunk_cdr(index: int, stamp_ns: int) -> bytes:
    message = _types("robot_brain_msgs/msg/ActionChunk")(
        header=_header(stamp_ns, "panda_link0"),
        model_id="generalist-mlp@3f2a9c1e",
        step=index,
        action_space="joint_position",
        horizon=3,
        dt=0.05,
        dim=8,
        joint_names=JOINT_NAMES,
        has_gripper=True,
        actions=chunk_actions(index),
    )
    return bytes(TYPESTORE.serialize_cdr(message, CHUNKS.type))


def event_cdr(event: str, stamp_ns: int, episode_id: str = "") -> bytes:
    message = _types("robot_brain_msgs/msg/EpisodeEvent")(
        header=_header(stamp_ns, ""),
        event=event,
        episode_id=episode_id,
        task="reach the red cube",
        label="",
        message="héllo ✓",
    )
    return bytes(TYPESTORE.serialize_cdr(message, EVENTS.type))


def write_joint_states(writer, count: int, start_ns: int = 1_000_000_000, period_ns: int = 2_000_000) -> None:
    for index in range(count):
        stamp = start_ns + index * period_ns
        writer.write(JOINT_STATES.name, stamp, joint_state_cdr(index, stamp))


def _crash_child(root: Path) -> None:
    """Two complete episodes, then a third in real time (500 Hz joints, 30 Hz 640x480 images for 0.4 s) until killed."""
    store = EpisodeStore(root)
    finished = []
    for episode in range(2):
        with store.start_episode(provenance(f"earlier {episode}"), [JOINT_STATES, IMAGES]) as writer:
            write_joint_states(writer, 200)
            finished.append(writer.episode_id)
    writer = store.start_episode(provenance("killed"), [JOINT_STATES, IMAGES], flush_interval_s=0.25)
    print(json.dumps({"finished": finished, "live": writer.episode_id}), flush=True)
    started = time.monotonic()
    joint_index = image_index = 0
    while time.monotonic() - started < 1.2:
        elapsed = time.monotonic() - started
        while joint_index * 0.002 <= elapsed:
            stamp = time.time_ns()
            writer.write(JOINT_STATES.name, stamp, joint_state_cdr(joint_index, stamp))
            joint_index += 1
        # The camera stops after 0.4 s: from then on only the time-based flush closes chunks
        # (rosbags alone would wait for 1 MiB, some 7 s of joint states).
        if image_index / 30 <= elapsed < 0.4:
            stamp = time.time_ns()
            writer.write(IMAGES.name, stamp, image_cdr(image_index, stamp, 480, 640))
            image_index += 1
        time.sleep(0.001)
    manifest = writer.manifest
    print(
        json.dumps(
            {
                "joint_states": joint_index,
                "images": image_index,
                "last_ns": max(topic.last_ns for topic in manifest.topics.values()),
            }
        ),
        flush=True,
    )
    time.sleep(60)  # killed here, with whatever the writer had not flushed


def _disk_full_child(root: Path, limit: int) -> None:
    """One small episode, then images until the file-size limit stops the second one."""
    from robot_brain.episodes.store import DiskFullError

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write() instead of a kill by signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    store = EpisodeStore(root)
    with store.start_episode(provenance("small"), [JOINT_STATES, IMAGES]) as writer:
        write_joint_states(writer, 100)
        first = writer.episode_id
    writer = store.start_episode(provenance("fills the disk"), [JOINT_STATES, IMAGES], flush_interval_s=0.05)
    written = 0
    try:
        for index in range(10_000):
            stamp = 2_000_000_000 + index * 33_000_000
            writer.write(IMAGES.name, stamp, image_cdr(index, stamp, 120, 160))
            written += 1
            if index % 10 == 9:
                writer.flush()
        outcome = {"error": None}
    except DiskFullError as error:
        outcome = {"error": str(error), "kind": type(error).__name__}
        try:
            writer.write(IMAGES.name, 0, image_cdr(0, 0))
        except DiskFullError as again:
            outcome["again"] = str(again)
    print(json.dumps({"first": first, "second": writer.episode_id, "written": written, **outcome}), flush=True)


def _recover_limited_child(root: Path, limit: int) -> None:
    """A recovery scan under a file-size limit too small for the rebuilt bag."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    results = EpisodeStore(root).recover()
    print(json.dumps([{"outcome": r.outcome, "detail": r.detail} for r in results]), flush=True)


if __name__ == "__main__":
    mode, data_root = sys.argv[1], Path(sys.argv[2])
    if mode == "crash":
        _crash_child(data_root)
    elif mode == "disk-full":
        _disk_full_child(data_root, int(sys.argv[3]))
    elif mode == "recover-limited":
        _recover_limited_child(data_root, int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode}")
