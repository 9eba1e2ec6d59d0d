"""Messages of the arm controller ↔ core types: ActionChunk, TwistStamped, commands, e-stop QoS.

Joint states reuse :class:`robot_brain.ros.policy_io.JointStateIndexer` (one cached index per
distinct name list); diagnostics reuse :func:`robot_brain.ros.model_diagnostics.diagnostic_array`.
Output messages are allocated once and refilled, so the control loop's publish step does
not build message objects per cycle.
"""

from __future__ import annotations

from collections.abc import Sequence

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


class ForwardCommand:
    """A reusable ``Float64MultiArray`` for ros2_control forward command controllers."""

    def __init__(self) -> None:
        self.msg = Float64MultiArray()

    def fill(self, values: Sequence[float]) -> Float64MultiArray:
        self.msg.data = values
        return self.msg


class TrajectoryCommand:
    """A reusable one-point ``JointTrajectory`` (positions and velocities), as MoveIt Servo streams to a JTC.

    The header stamp stays zero ("start now"); the point is reached ``time_from_start`` later.
    """

    def __init__(self, joint_names: Sequence[str], time_from_start: float) -> None:
        self.msg = JointTrajectory()
        self.msg.joint_names = list(joint_names)
        self.point = JointTrajectoryPoint()
        seconds = int(time_from_start)
        self.point.time_from_start = Duration(sec=seconds, nanosec=round((time_from_start - seconds) * 1e9))
        self.msg.points = [self.point]

    def fill(self, positions: Sequence[float], velocities: Sequence[float]) -> JointTrajectory:
        self.point.positions = positions
        self.point.velocities = velocities
        return self.msg
