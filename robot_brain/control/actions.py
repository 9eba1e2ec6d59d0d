"""Mapping every action space onto joint-space waypoints (ROS-free).

One :class:`ActionMapper` per arm turns a validated :class:`RawChunk` into a
:class:`JointChunk` in the arm's base-to-tip joint order:

* ``joint_position``: reordered from the chunk's ``joint_names`` (empty = arm order);
* ``joint_delta``: offsets from the joint positions measured at the chunk's observation time;
* ``ee_pose``: absolute tip poses ``[x y z qx qy qz qw]`` in the base frame, through IK;
* ``ee_pose_delta``: relative to the tip pose at the observation time: the translation is
  added in the base frame and the rotation pre-multiplied (``R = R_delta · R_obs``), the
  convention of most teleoperation datasets;
* ``ee_twist``: base-frame tip twists ``[vx vy vz wx wy wz]``, each held for ``dt`` and
  integrated from the observation-time pose (waypoint ``k + 1`` is where twist ``k`` leads).

IK runs once per chunk, not per control period: each waypoint starts from the previous
one's solution (so consecutive targets stay on one branch) with a few damped-least-squares
steps. A waypoint the IK cannot reach within tolerance ends the chunk there (the arm holds
at the last reachable waypoint) and is counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pinocchio as pin

from robot_brain.control.chunks import ChunkError, JointChunk, RawChunk, first_kept_waypoint, validate
from robot_brain.embodiment import ArmKinematics, ArmSpec, IKOptions


def quaternion_to_matrix(quaternion: np.ndarray) -> np.ndarray:
    """Rotation matrix of ``[qx qy qz qw]`` (normalised first)."""
    x, y, z, w = quaternion / np.linalg.norm(quaternion)
    return pin.Quaternion(w, x, y, z).toRotationMatrix()


class ActionMapper:
    """Converts chunks of any action space to joint-space waypoints for one arm.

    ``kinematics`` must be an instance owned by the caller's thread (Pinocchio's data is not
    thread-safe). ``state_at`` returns the measured arm joint positions at a loop time (the
    chunk's observation time), or None when no state is known.
    """

    def __init__(
        self,
        spec: ArmSpec,
        kinematics: ArmKinematics,
        state_at: Callable[[float], np.ndarray | None],
        ik_options: IKOptions | None = None,
        ik_iterations: int = 20,
        interpolation: str = "cubic",
    ) -> None:
        self.spec = spec
        self.kinematics = kinematics
        self.state_at = state_at
        self.ik_options = ik_options or IKOptions(damping=1e-4, max_step=0.2)
        self.ik_iterations = ik_iterations
        self.interpolation = interpolation
        self._orders: dict[tuple[str, ...], np.ndarray] = {}
        self._full_pose = spec.dof >= 6

    def joint_order(self, names: tuple[str, ...]) -> np.ndarray:
        """Index of each arm joint in ``names`` (cached per distinct tuple of names)."""
        order = self._orders.get(names)
        if order is None:
            unknown = [name for name in names if name not in self.spec.joint_names]
            missing = [name for name in self.spec.joint_names if name not in names]
            if unknown or missing or len(set(names)) != len(names):
                raise ChunkError(
                    "joint_names",
                    f"joint_names must list each arm joint once ({', '.join(self.spec.joint_names)}); "
                    f"unknown: {unknown or 'none'}, missing: {missing or 'none'}",
                )
            order = np.array([names.index(name) for name in self.spec.joint_names])
            if len(self._orders) < 64:
                self._orders[names] = order
        return order

    def convert(self, chunk: RawChunk, now: float) -> tuple[JointChunk, int]:
        """The chunk in joint space, from the first waypoint still relevant at ``now``.

        Returns the joint chunk and the number of waypoints dropped because IK failed.
        Raises ChunkError with a counter key and a readable reason.
        """
        names = chunk.joint_names
        joint_count = len(names) if names else self.spec.dof
        values = validate(chunk, joint_count)
        first = first_kept_waypoint(chunk.stamp, chunk.dt, chunk.horizon, now)
        gripper = values[:, -1] if chunk.has_gripper else None
        arm_values = values[:, :-1] if chunk.has_gripper else values
        space = chunk.action_space
        dropped = 0
        if space == "joint_position":
            joints = self._reorder(arm_values[first:], names)
        else:
            observed = self.state_at(chunk.stamp)
            if observed is None:
                raise ChunkError("no_state", "no joint state is known at the chunk's observation time")
            if space == "joint_delta":
                joints = observed + self._reorder(arm_values[first:], names)
            else:
                poses = self._poses(space, arm_values, observed, chunk.dt)[first:]
                joints = self._solve(poses, observed)
                dropped = len(poses) - len(joints)
                if len(joints) == 0:
                    raise ChunkError("ik_failed", "IK could not reach the chunk's first remaining waypoint")
        count = len(joints)
        times = chunk.stamp + chunk.dt * np.arange(first, first + count)
        if space == "ee_twist":
            # ee_twist has one more pose than twists; its gripper value k goes with pose k.
            gripper = None if gripper is None else np.append(gripper, gripper[-1])
        column = gripper[first : first + count] if gripper is not None else np.full(count, np.nan)
        joint_values = np.column_stack((joints, np.clip(column, 0.0, 1.0)))
        if count == 1:  # one waypoint: hold it
            times = np.array([times[0], times[0] + chunk.dt])
            joint_values = np.vstack((joint_values, joint_values))
        return (
            JointChunk(
                times=times,
                values=joint_values,
                has_gripper=chunk.has_gripper,
                stamp=chunk.stamp,
                arrival=now,
                space=space,
                interpolation=self.interpolation,
            ),
            dropped,
        )

    def _reorder(self, values: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
        if not names:
            return values
        return values[:, self.joint_order(names)]

    def _poses(self, space: str, values: np.ndarray, observed: np.ndarray, dt: float) -> list[np.ndarray]:
        """4x4 tip targets in the base frame for each waypoint of an end-effector action space."""
        if space == "ee_pose":
            return [_pose(row[:3], quaternion_to_matrix(row[3:7])) for row in values]
        start = self.kinematics.fk(observed)
        if space == "ee_pose_delta":
            return [
                _pose(start[:3, 3] + row[:3], quaternion_to_matrix(row[3:7]) @ start[:3, :3]) for row in values
            ]
        poses = [start.copy()]  # ee_twist: integrate each twist for dt
        for row in values:
            previous = poses[-1]
            poses.append(_pose(previous[:3, 3] + row[:3] * dt, pin.exp3(row[3:6] * dt) @ previous[:3, :3]))
        return poses

    def _solve(self, poses: list[np.ndarray], seed: np.ndarray) -> np.ndarray:
        """Joint solutions of consecutive poses, each seeded with the previous; stops at the first failure."""
        options = self.ik_options
        solutions: list[np.ndarray] = []
        q = seed
        for target in poses:
            result = self.kinematics.solve_from(q, target, options, posture=seed, max_iterations=self.ik_iterations)
            q = result.q
            # Arms below 6 DOF track position and take the best orientation they can.
            reached = result.position_error < options.position_tolerance * 10 and (
                not self._full_pose or result.rotation_error < options.rotation_tolerance * 10
            )
            if not reached:
                break
            solutions.append(q.copy())
        return np.array(solutions).reshape(len(solutions), self.spec.dof)


def _pose(position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = position
    return pose


def twist_in_base(twist: np.ndarray, frame_is_tool: bool, tip_rotation: np.ndarray) -> np.ndarray:
    """A tip twist expressed in the base frame (a tool-frame twist is rotated by the tip's orientation)."""
    if not frame_is_tool:
        return twist
    return np.concatenate((tip_rotation @ twist[:3], tip_rotation @ twist[3:]))


def condition_scale(condition: float, lower: float, hard: float) -> float:
    """Speed scale for a Jacobian condition number: 1 below ``lower``, 0 from ``hard``, linear between."""
    if not math.isfinite(condition) or condition >= hard:
        return 0.0
    if condition <= lower:
        return 1.0
    return (hard - condition) / (hard - lower)
