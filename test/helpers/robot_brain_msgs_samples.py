"""Sample robot_brain_msgs values shared by test/test_interfaces.py and its child processes.

Why a module: the DDS tests build a message in one process and check it in another, so both
sides must construct the *same* expected values from the same plain-data description. Child
scripts import it as ``robot_brain_msgs_samples`` (their own folder is ``sys.path[0]``), the
tests as ``helpers.robot_brain_msgs_samples``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from geometry_msgs.msg import Point
from robot_brain_msgs.msg import ActionChunk, EpisodeResult

# A chunk that exercises every field with non-default values, including the edges of the
# integer types and non-ASCII text: 3 waypoints of 7 arm joints + 1 gripper channel.
SAMPLE_CHUNK: dict[str, Any] = {
    "stamp_sec": 1_700_000_123,
    "stamp_nanosec": 456_789_012,
    "frame_id": "panda_link0",
    "model_id": "generalist-mlp@3f2a9c1e",
    "step": 2**64 - 1,
    "action_space": "joint_position",
    "horizon": 3,
    "dt": 0.05,
    "dim": 8,
    "joint_names": [f"panda_joint{i}" for i in range(1, 8)],
    "has_gripper": True,
    "actions": [round(0.1 * k + 0.01 * i - 0.3, 6) for k in range(3) for i in range(8)],
}

NEGATIVE_SEED_MESSAGE = "seed must be >= 0"


def make_action_chunk(spec: dict[str, Any]) -> ActionChunk:
    """Build an ActionChunk from a plain dict such as SAMPLE_CHUNK (JSON-friendly)."""
    msg = ActionChunk(check_fields=True)
    msg.header.stamp.sec = spec["stamp_sec"]
    msg.header.stamp.nanosec = spec["stamp_nanosec"]
    msg.header.frame_id = spec["frame_id"]
    msg.model_id = spec["model_id"]
    msg.step = spec["step"]
    msg.action_space = spec["action_space"]
    msg.horizon = spec["horizon"]
    msg.dt = spec["dt"]
    msg.dim = spec["dim"]
    msg.joint_names = list(spec["joint_names"])
    msg.has_gripper = spec["has_gripper"]
    msg.actions = [float(v) for v in spec["actions"]]
    return msg


def action_chunk_to_dict(msg: ActionChunk) -> dict[str, Any]:
    """The inverse of make_action_chunk, so received messages compare as plain data."""
    return {
        "stamp_sec": msg.header.stamp.sec,
        "stamp_nanosec": msg.header.stamp.nanosec,
        "frame_id": msg.header.frame_id,
        "model_id": msg.model_id,
        "step": msg.step,
        "action_space": msg.action_space,
        "horizon": msg.horizon,
        "dt": msg.dt,
        "dim": msg.dim,
        "joint_names": list(msg.joint_names),
        "has_gripper": msg.has_gripper,
        "actions": list(msg.actions),
    }


def episode_result_for(episode: int, seed: int) -> EpisodeResult:
    """The deterministic result the test episode server reports after `reset(seed)`.

    Derived from the seed so a caller can tell one reset from another by value alone.
    """
    return EpisodeResult(
        episode=episode,
        seed=seed,
        done=False,
        success=False,
        time_to_success=0.0,
        final_distance=0.25 + (seed % 7) * 0.01,
        target=Point(x=0.4 + (seed % 5) * 0.01, y=-0.1 + (seed % 3) * 0.05, z=0.2),
        message=f"episode {episode} from seed {seed}",
    )


def run_until_stdin_closes(spin_once: Callable[[float], None], timeout_s: float) -> bool:
    """Spin a child's executor until its parent closes our stdin (or the timeout passes).

    Closing stdin is how the test asks a child to stop: it needs no signal handling and
    lets the child shut rclpy down cleanly and exit 0. Returns False on timeout.
    """
    closed = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.buffer.read()
        closed.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not closed.is_set():
        if time.monotonic() > deadline:
            return False
        spin_once(0.05)
    return True
