"""Messages of the sim node ↔ core types: camera info, episode results, trajectories, time."""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point
from robot_brain_msgs.msg import EpisodeResult
from sensor_msgs.msg import CameraInfo
from trajectory_msgs.msg import JointTrajectory

from robot_brain.sim.task import EpisodeState


def time_msg(seconds: float) -> Time:
    """A ``builtin_interfaces/Time`` from float seconds (non-negative)."""
    nanoseconds = max(round(seconds * 1e9), 0)
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def duration_seconds(duration: Duration) -> float:
    return duration.sec + duration.nanosec * 1e-9


def camera_info_msg(k: np.ndarray, width: int, height: int, frame_id: str) -> CameraInfo:
    """A distortion-free pinhole ``CameraInfo`` (what a rectified camera publishes)."""
    msg = CameraInfo()
    msg.header.frame_id = frame_id
    msg.width, msg.height = width, height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in k.reshape(9)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(k[0, 0]), 0.0, float(k[0, 2]), 0.0, 0.0, float(k[1, 1]), float(k[1, 2]), 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def episode_result_msg(state: EpisodeState) -> EpisodeResult:
    msg = EpisodeResult()
    msg.episode = max(state.episode, 0)
    msg.seed = int(state.seed)
    msg.done = state.done
    msg.success = state.success
    msg.time_to_success = float(state.time_to_success) if math.isfinite(state.time_to_success) else -1.0
    msg.final_distance = float(state.final_distance) if math.isfinite(state.final_distance) else -1.0
    msg.target = Point(x=float(state.target[0]), y=float(state.target[1]), z=float(state.target[2]))
    msg.message = state.message
    return msg


def trajectory_arrays(msg: JointTrajectory) -> tuple[list[str], list[float], list[list[float]]]:
    """Joint names, ``time_from_start`` seconds and positions of a JointTrajectory."""
    times = [duration_seconds(point.time_from_start) for point in msg.points]
    points = []
    for index, point in enumerate(msg.points):
        if len(point.positions) != len(msg.joint_names):
            raise ValueError(
                f"trajectory point {index}: expected {len(msg.joint_names)} positions, found {len(point.positions)}"
            )
        points.append(list(point.positions))
    return list(msg.joint_names), times, points
