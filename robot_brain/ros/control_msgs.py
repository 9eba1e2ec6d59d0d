"""Messages of the arm controller ↔ core types: ActionChunk, TwistStamped, commands, e-stop QoS.

Joint states reuse :class:`robot_brain.ros.policy_io.JointStateIndexer` (one cached index per
distinct name list); diagnostics reuse :func:`robot_brain.ros.model_diagnostics.diagnostic_array`.
Output messages are allocated once and refilled in place (their float64[] arrays written
element-wise or through a numpy view), so the control loop's publish step allocates nothing.
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import TwistStamped
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from robot_brain_msgs.msg import ActionChunk
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_brain.control.chunks import RawChunk

#: QoS of the latched ``~/estopped`` topic: late subscribers get the current state at once.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def raw_chunk(msg: ActionChunk, stamp: float) -> RawChunk:
    """The chunk as plain data; ``stamp`` is its header stamp already on the loop's clock."""
    return RawChunk(
        stamp=stamp,
        action_space=msg.action_space,
        horizon=int(msg.horizon),
        dt=float(msg.dt),
        dim=int(msg.dim),
        joint_names=tuple(msg.joint_names),
        has_gripper=bool(msg.has_gripper),
        actions=np.asarray(msg.actions, dtype=np.float64),
        model_id=msg.model_id,
        step=int(msg.step),
    )


def twist_to_array(msg: TwistStamped) -> np.ndarray:
    """``[vx vy vz wx wy wz]`` of a TwistStamped."""
    linear, angular = msg.twist.linear, msg.twist.angular
    return np.array([linear.x, linear.y, linear.z, angular.x, angular.y, angular.z])


class _InPlace:
    """Writes values into a message's float64[] field in place, optionally reordered (no allocation per fill).

    A generated message keeps a float64[] field as an ``array.array('d')``; assigning to the
    field always builds a new one, but the array the field holds can be written in place and
    is what ``publish`` serializes. ``order[i]`` is the index in ``values`` of entry ``i``
    (e.g. the arm joint of the controller's i-th joint); ``None`` keeps the order.
    """

    def __init__(self, msg: Any, field: str, size: int, order: Sequence[int] | None) -> None:
        setattr(msg, field, [0.0] * size)
        self.data: array.array = getattr(msg, field)
        self.size = size
        self._view = np.frombuffer(self.data, dtype=np.float64)  # shares the array's memory
        self._order: list[int] | None = None
        self._inverse: np.ndarray | None = None
        if order is not None:
            indices = [int(i) for i in order]
            if sorted(indices) != list(range(size)):
                raise ValueError(f"order must list each of 0..{size - 1} once, found {indices}")
            if indices != list(range(size)):
                self._order = indices
                inverse = np.empty(size, dtype=np.intp)
                inverse[indices] = np.arange(size)
                self._inverse = inverse

    def write(self, values: np.ndarray | Sequence[float]) -> None:
        if isinstance(values, np.ndarray):
            # ndarray.put/np.copyto into the view: no temporary (fancy indexing would make one).
            if self._inverse is None:
                np.copyto(self._view, values)
            else:
                self._view.put(self._inverse, values)
            return
        data, order, size = self.data, self._order, self.size
        j = 0
        while j < size:  # not ``for``: its iterator would be an allocation per fill
            data[j] = values[j] if order is None else values[order[j]]
            j += 1


class ForwardCommand:
    """A reusable ``Float64MultiArray`` for ros2_control forward command controllers, filled in place.

    ``ForwardCommand(size, order)`` preallocates ``size`` values; :meth:`fill` takes a numpy
    array or a sequence of floats (``order`` as in the controller's joint order, see
    ``_InPlace``) and allocates nothing. Without ``size`` the buffer is sized by the first
    fill (and again whenever the length changes).
    """

    def __init__(self, size: int = 0, order: Sequence[int] | None = None) -> None:
        self.msg = Float64MultiArray()
        self._order = order
        self._out = _InPlace(self.msg, "data", size, order)

    def fill(self, values: np.ndarray | Sequence[float]) -> Float64MultiArray:
        if len(values) != self._out.size:
            self._out = _InPlace(self.msg, "data", len(values), None if self._order is None else self._order)
        self._out.write(values)
        return self.msg


class TrajectoryCommand:
    """A reusable one-point ``JointTrajectory`` (positions and velocities), as MoveIt Servo streams to a JTC.

    The header stamp stays zero ("start now"); the point is reached ``time_from_start`` later.
    ``order[i]``: index in the filled arrays of ``joint_names[i]`` (``None``: the same order).
    :meth:`fill` writes in place and allocates nothing.
    """

    def __init__(
        self, joint_names: Sequence[str], time_from_start: float, order: Sequence[int] | None = None
    ) -> None:
        self.msg = JointTrajectory()
        self.msg.joint_names = list(joint_names)
        self.point = JointTrajectoryPoint()
        seconds = int(time_from_start)
        self.point.time_from_start = Duration(sec=seconds, nanosec=round((time_from_start - seconds) * 1e9))
        size = len(joint_names)
        self._positions = _InPlace(self.point, "positions", size, order)
        self._velocities = _InPlace(self.point, "velocities", size, order)
        self.msg.points = [self.point]

    def fill(
        self, positions: np.ndarray | Sequence[float], velocities: np.ndarray | Sequence[float]
    ) -> JointTrajectory:
        self._positions.write(positions)
        self._velocities.write(velocities)
        return self.msg
