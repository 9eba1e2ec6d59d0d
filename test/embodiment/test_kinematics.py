"""Pinocchio kinematics checked against an independent numpy implementation, and IK success rates."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from robots import ARMS

from robot_brain.embodiment import Arm, IKOptions, load_arm


def _rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = (
        math.cos(roll),
        math.sin(roll),
        math.cos(pitch),
        math.sin(pitch),
        math.cos(yaw),
        math.sin(yaw),
    )
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def independent_fk(arm: Arm, q: np.ndarray) -> np.ndarray:
    """Tip pose by chaining the URDF's joint origins and axes with plain numpy (no Pinocchio)."""
    root = ET.fromstring(arm.description.xml)
    joints = {joint.get("name"): joint for joint in root.findall("joint")}
    chain = set(arm.tree.path_to_root(arm.spec.tip_link)) - set(arm.tree.path_to_root(arm.spec.base_link))
    ordered = [name for name in arm.tree.path_to_root(arm.spec.tip_link) if name in chain]
    pose = np.eye(4)
    for name in ordered:
        joint = joints[name]
        origin = joint.find("origin")
        xyz = np.array([float(v) for v in (origin.get("xyz", "0 0 0") if origin is not None else "0 0 0").split()])
        rpy = [float(v) for v in (origin.get("rpy", "0 0 0") if origin is not None else "0 0 0").split()]
        step = np.eye(4)
        step[:3, :3] = _rpy_matrix(*rpy)
        step[:3, 3] = xyz
        pose = pose @ step
        if joint.get("type") in ("revolute", "continuous", "prismatic"):
            axis_element = joint.find("axis")
            axis = np.array(
                [float(v) for v in (axis_element.get("xyz") if axis_element is not None else "1 0 0").split()]
            )
            value = q[arm.spec.joint_names.index(name)]
            motion = np.eye(4)
            if joint.get("type") == "prismatic":
                motion[:3, 3] = axis / np.linalg.norm(axis) * value
            else:
                motion[:3, :3] = _axis_angle(axis, value)
            pose = pose @ motion
    return pose


@pytest.mark.parametrize("name", ["ur5", "panda", "xarm7", "so101", "iiwa", "xarm6", "z1"])
def test_fk_matches_an_independent_computation(name: str) -> None:
    arm = load_arm(ARMS[name])
    rng = np.random.default_rng(7)
    for _ in range(20):
        q = arm.kinematics.random_configuration(rng)
        assert np.allclose(arm.kinematics.fk(q), independent_fk(arm, q), atol=1e-9)


@pytest.mark.parametrize("name", ["panda", "ur5", "so101"])
def test_jacobian_matches_finite_differences(name: str) -> None:
    kinematics = load_arm(ARMS[name]).kinematics
    rng = np.random.default_rng(3)
    q = kinematics.random_configuration(rng)
    pose, jacobian = kinematics.fk_and_jacobian(q)
    epsilon = 1e-6
    for j in range(kinematics.dof):
        dq = np.zeros(kinematics.dof)
        dq[j] = epsilon
        moved = kinematics.fk(q + dq)
        linear = (moved[:3, 3] - pose[:3, 3]) / epsilon
        skew = (moved[:3, :3] @ pose[:3, :3].T - np.eye(3)) / epsilon
        angular = np.array([skew[2, 1], skew[0, 2], skew[1, 0]])
        assert np.allclose(jacobian[:, j], np.concatenate((linear, angular)), atol=1e-4)


@pytest.mark.parametrize("name", ["ur5", "panda", "xarm7", "iiwa", "xarm6", "panda_pybullet"])
def test_ik_reaches_random_reachable_targets(name: str) -> None:
    """>= 99% of targets sampled by FK of random configurations are reached (6- and 7-DOF arms)."""
    kinematics = load_arm(ARMS[name]).kinematics
    rng = np.random.default_rng(11)
    trials, successes = 200, 0
    for _ in range(trials):
        target = kinematics.fk(kinematics.random_configuration(rng))
        result = kinematics.ik(target, rng=rng)
        if result.success:
            successes += 1
            reached = kinematics.fk(result.q)
            assert np.linalg.norm(reached[:3, 3] - target[:3, 3]) < 1e-4
            assert np.all(result.q >= kinematics.spec.lower - 1e-12) and np.all(
                result.q <= kinematics.spec.upper + 1e-12
            )
    assert successes / trials >= 0.99


def test_ik_on_a_five_dof_arm_tracks_position_and_follows_orientation() -> None:
    """A 5-DOF desktop arm cannot take every orientation: IK gets the position and does its best."""
    kinematics = load_arm(ARMS["so101"]).kinematics
    rng = np.random.default_rng(5)
    reached = 0
    for _ in range(100):
        target = kinematics.fk(kinematics.random_configuration(rng))
        # Tilt the requested orientation: generally unreachable for 5 joints.
        target[:3, :3] = target[:3, :3] @ _axis_angle(np.array([1.0, 0.0, 0.0]), 0.3)
        result = kinematics.ik(target, rng=rng)
        if result.success:
            reached += 1
            assert result.position_error < 1e-4
    assert reached >= 80


def test_twist_to_joint_velocity_realises_the_twist_away_from_singularities() -> None:
    kinematics = load_arm(ARMS["panda"]).kinematics
    q = kinematics.spec.middle_configuration()
    twist = np.array([0.05, -0.02, 0.03, 0.1, 0.0, -0.2])
    qdot, condition = kinematics.twist_to_joint_velocity(q, twist)
    assert condition < 100
    assert np.allclose(kinematics.jacobian(q) @ qdot, twist, atol=1e-3)


def test_condition_number_grows_at_a_singularity() -> None:
    kinematics = load_arm(ARMS["ur5"]).kinematics
    stretched = np.zeros(6)  # UR5 at zero: elbow straight and wrist aligned, a singular pose
    bent = np.array([0.0, -1.2, 1.5, -1.5, -1.5, 0.0])
    _, singular = kinematics.twist_to_joint_velocity(stretched, np.zeros(6))
    _, regular = kinematics.twist_to_joint_velocity(bent, np.zeros(6))
    assert singular > 1e3 and regular < 1e2


def test_five_dof_arm_tracks_small_cartesian_steps_near_a_joint_limit() -> None:
    """A controller's IK: 12.5 mm steps from a tool-down pose with the wrist near its limit.

    The unreachable part of the orientation error must not leak into the position (it used
    to make the SO-101 drift away instead of converging).
    """
    from robot_brain.sim.workspace import compute_layout

    arm = load_arm(ARMS["so101"])
    kinematics = arm.kinematics
    home = np.asarray(compute_layout(arm).home)
    start = kinematics.fk(home)
    options = IKOptions(damping=1e-4, max_step=0.2)
    for offset in ([0.0125, 0, 0], [0, 0.0125, 0], [0, 0, -0.0125], [0.01, 0.01, -0.005], [-0.0125, 0, 0]):
        target = start.copy()
        target[:3, 3] += offset
        result = kinematics.solve_from(home, target, options, posture=home, max_iterations=20)
        assert result.position_error < 1e-4, offset
