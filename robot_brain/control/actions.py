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

Stalls and other branches. After each end-effector chunk the mapper measures how far the
reachable part of the chunk leaves the tool from the chunk's last requested position (the
residual; :mod:`robot_brain.control.stall`). When that gap stops closing, the arm is stuck:
the local IK step cannot continue on the branch the arm is on (a joint pinned at a limit,
typically) although another branch may reach the pose. The mapper then solves IK for the
chunk's last pose from many seeds (the search the task's placement uses), outside the
control cycle, and if a solution exists it answers the chunk with a *branch move*: a
joint-space path from the measured configuration to that solution, timed at half the
velocity limits and followed through the safety filter like any chunk. The policy's chunks
during the move are answered with the same move, so it is not cut short. If no seed reaches
the pose, the stall stays reported with its cause. The move is planned in joint space only:
it checks no collisions, as the rest of the controller does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pinocchio as pin

from robot_brain.control.chunks import ChunkError, JointChunk, RawChunk, first_kept_waypoint, validate
from robot_brain.control.stall import Stall, StallMonitor, joints_at_limits
from robot_brain.embodiment import ArmKinematics, ArmSpec, IKOptions

#: Seeds tried for another branch once the arm stalls (the first is the measured configuration).
RESOLVE_RESTARTS = 40
#: A branch move's speed, as a fraction of each joint's velocity limit (the safety filter bounds it anyway).
BRANCH_MOVE_SPEED_FRACTION = 0.5
#: Shortest branch move, s, and its number of waypoints.
BRANCH_MOVE_MIN_DURATION = 0.5
BRANCH_MOVE_WAYPOINTS = 20
#: Least time between two branch searches, s: a pose no branch reaches is not searched at every chunk.
RESOLVE_COOLDOWN = 2.0


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
        stall_monitor: StallMonitor | None = None,
        resolve_on_stall: bool = True,
    ) -> None:
        self.spec = spec
        self.kinematics = kinematics
        self.state_at = state_at
        self.ik_options = ik_options or IKOptions(damping=1e-4, max_step=0.2)
        self.ik_iterations = ik_iterations
        self.interpolation = interpolation
        self._orders: dict[tuple[str, ...], np.ndarray] = {}
        self._full_pose = spec.dof >= 6
        self.stall_monitor = stall_monitor or StallMonitor()
        self.resolve_on_stall = resolve_on_stall
        #: The latest stall (None: the arm follows); read by diagnostics from other threads.
        self.stall: Stall | None = None
        self.branch_moves = 0
        self.last_branch_move_reason = ""
        self.branch_searches_failed = 0
        self._branch_move: tuple[np.ndarray, np.ndarray, float] | None = None  # times, joints, end
        self._last_search = -math.inf
        self._rng = np.random.default_rng(0)

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
                move = self._active_branch_move(now)
                if move is not None:
                    return move, 0
                poses = self._poses(space, arm_values, observed, chunk.dt)[first:]
                joints = self._solve(poses, observed)
                dropped = len(poses) - len(joints)
                move = self._watch_progress(poses, joints, observed, chunk.stamp, now)
                if move is not None:
                    return move, dropped
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

    def _watch_progress(
        self, poses: list[np.ndarray], joints: np.ndarray, observed: np.ndarray, stamp: float, now: float
    ) -> JointChunk | None:
        """Feed the stall monitor this chunk's residual; on a stall, search another branch (a move, or None)."""
        if not poses:
            return None
        reached = joints[-1] if len(joints) else observed
        residual = float(np.linalg.norm(poses[-1][:3, 3] - self.kinematics.fk(reached)[:3, 3]))
        at_limits = joints_at_limits(self.spec.joint_names, reached, self.kinematics.lower, self.kinematics.upper)
        self.stall = stall = self.stall_monitor.observe(now, residual, at_limits)
        if stall is None or not self.resolve_on_stall or now - self._last_search < RESOLVE_COOLDOWN:
            return None
        self._last_search = now
        goal = self._search_branch(poses[-1], observed)
        if goal is None:
            self.branch_searches_failed += 1
            return None
        self.branch_moves += 1
        self.last_branch_move_reason = stall.describe()
        self.stall_monitor.clear()
        self.stall = None  # moving on: diagnostics count the move and say why
        return self._start_branch_move(observed, goal, stamp, now)

    def _search_branch(self, target: np.ndarray, observed: np.ndarray) -> np.ndarray | None:
        """A configuration reaching ``target`` from many seeds: the full pose, else the position first.

        The second search keeps as much of the orientation as the position leaves free (what
        arms below six joints always do): a reach that cannot keep the tool's orientation on
        any branch still gets there.
        """
        full = IKOptions(damping=1e-6, restarts=RESOLVE_RESTARTS)
        for options in (full, replace(full, position_priority=True, rotation_weight=0.5)):
            result = self.kinematics.ik(target, observed, options, self._rng)
            if result.success and not np.allclose(result.q, observed, atol=1e-3):
                return result.q
        return None

    def _start_branch_move(self, start: np.ndarray, goal: np.ndarray, stamp: float, now: float) -> JointChunk:
        """A joint-space path from ``start`` to ``goal`` beginning ``now``, at a fraction of the velocity limits."""
        velocity = np.asarray(self.spec.velocity, dtype=float)
        speed = np.where(np.isfinite(velocity) & (velocity > 0.0), velocity, 1.0) * BRANCH_MOVE_SPEED_FRACTION
        duration = max(BRANCH_MOVE_MIN_DURATION, float(np.max(np.abs(goal - start) / speed)))
        fractions = np.linspace(0.0, 1.0, BRANCH_MOVE_WAYPOINTS)
        smooth = fractions * fractions * (3.0 - 2.0 * fractions)  # starts and ends at rest
        joints = start + np.outer(smooth, goal - start)
        times = now + duration * fractions
        self._branch_move = (times, joints, now + duration)
        return self._branch_chunk(stamp, now)

    def _active_branch_move(self, now: float) -> JointChunk | None:
        """The branch move under way (answering every end-effector chunk until it ends), or None."""
        if self._branch_move is None:
            return None
        if now >= self._branch_move[2]:
            self._branch_move = None
            self.stall_monitor.clear()
            return None
        return self._branch_chunk(now, now)

    def _branch_chunk(self, stamp: float, now: float) -> JointChunk:
        assert self._branch_move is not None
        times, joints, _ = self._branch_move
        values = np.column_stack((joints, np.full(len(joints), np.nan)))
        return JointChunk(times=times, values=values, has_gripper=False, stamp=stamp, arrival=now,
                          space="branch_move", interpolation=self.interpolation)

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
