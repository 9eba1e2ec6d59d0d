"""Messages of the policy node ↔ numpy: joint states, target points, ActionChunk.

Joint order is resolved once per distinct ``JointState.name`` list and cached, so the hot
path is one fancy-index per message, whatever order the driver publishes in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import PointStamped
from robot_brain_msgs.msg import ActionChunk
from sensor_msgs.msg import JointState

from robot_brain.inference.contract import OutputSpec


def stamp_to_seconds(stamp: TimeMsg) -> float:
    """A header stamp as float seconds (for arithmetic; use nanoseconds to carry a stamp unchanged)."""
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_to_nanoseconds(stamp: TimeMsg) -> int:
    """A header stamp as integer nanoseconds (exact, unlike float seconds at epoch scale)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class JointStateIndexer:
    """Picks named joints out of JointState messages, in a fixed order."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._cache: dict[tuple[str, ...], np.ndarray] = {}

    def _index(self, msg_names: Sequence[str]) -> np.ndarray:
        key = tuple(msg_names)
        index = self._cache.get(key)
        if index is None:
            position = {name: i for i, name in enumerate(key)}
            missing = [n for n in self.names if n not in position]
            if missing:
                raise ValueError(f"joint_states: expected joints {list(self.names)}, missing {missing}")
            index = np.array([position[n] for n in self.names], dtype=np.intp)
            self._cache[key] = index
        return index

    def positions(self, msg: JointState) -> np.ndarray:
        """Positions in this indexer's order (float64); ValueError for missing joints or a short array."""
        if len(msg.position) != len(msg.name):
            raise ValueError(f"joint_states: {len(msg.name)} names but {len(msg.position)} positions")
        return np.asarray(msg.position, dtype=np.float64)[self._index(msg.name)]

    def velocities(self, msg: JointState) -> np.ndarray:
        """Velocities in this indexer's order; zeros when the driver publishes none."""
        if len(msg.velocity) != len(msg.name):
            return np.zeros(len(self.names))
        return np.asarray(msg.velocity, dtype=np.float64)[self._index(msg.name)]


def point_to_array(msg: PointStamped) -> np.ndarray:
    """``[x, y, z]`` of a PointStamped."""
    return np.array([msg.point.x, msg.point.y, msg.point.z])


def action_chunk_msg(
    chunk: np.ndarray,
    spec: OutputSpec,
    stamp: TimeMsg,
    frame_id: str,
    model_id: str,
    step: int,
    joint_names: Sequence[str],
) -> ActionChunk:
    """The ActionChunk for a decoded ``[horizon, dim]`` chunk, stamped with the observation time."""
    msg = ActionChunk()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.model_id = model_id
    msg.step = int(step)
    msg.action_space = spec.action_space or ""
    msg.horizon = int(spec.horizon)
    msg.dt = float(spec.dt)
    msg.dim = int(spec.dim)
    msg.joint_names = list(joint_names)
    msg.has_gripper = bool(spec.gripper)
    msg.actions = chunk.astype(np.float64, copy=False).ravel().tolist()
    return msg


def chunk_from_msg(msg: ActionChunk) -> np.ndarray:
    """``[horizon, dim]`` view of an ActionChunk's actions (for subscribers and tests)."""
    return np.asarray(msg.actions, dtype=np.float64).reshape(int(msg.horizon), int(msg.dim))
