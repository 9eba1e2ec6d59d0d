"""Arm kinematics through Pinocchio: forward kinematics, Jacobians, IK and Cartesian velocity control.

The Pinocchio model holds only the arm chain (base link to tip link), so its configuration
vector is exactly the arm's joint positions in ``ArmSpec.joint_names`` order, with no
gripper or free-flyer entries to skip. Continuous joints are modelled as revolute joints
(one angle, not Pinocchio's cos/sin pair) for the same reason.

Conventions: poses are 4x4 homogeneous matrices of the tip in the base frame; twists and
Jacobians are ``[vx vy vz wx wy wz]`` in the base frame at the tip's origin
(Pinocchio's ``LOCAL_WORLD_ALIGNED``).
"""

from __future__ import annotations

import copy
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace

import eigenpy
import numpy as np
import pinocchio as pin

from robot_brain.embodiment.arm import ArmSpec, UrdfTree
from robot_brain.embodiment.description import RobotDescription
from robot_brain.errors import DescriptionError

SECONDARY_TASK_DAMPING = 1e-2


@dataclass(frozen=True)
class IKOptions:
    """Tuning of the damped-least-squares IK.

    Arms with fewer than six joints cannot follow every orientation: for them the solver
    tracks the position first and follows the orientation, scaled by ``rotation_weight``,
    with the motions left over (task priority), instead of failing.
    """

    position_tolerance: float = 1e-4  # m
    rotation_tolerance: float = 1e-3  # rad
    max_iterations: int = 100
    damping: float = 1e-6
    step_gain: float = 1.0
    max_step: float = 0.3  # rad (or m) per iteration, keeps steps inside the linear regime
    posture_gain: float = 0.01
    rotation_weight: float | None = None  # None: 1.0 for >= 6 joints, 0.5 below (secondary task)
    restarts: int = 30
    #: Position first, orientation in what is left, on any arm (always so below 6 joints): for a
    #: search that must reach a point even where the orientation cannot be kept.
    position_priority: bool = False


@dataclass(frozen=True)
class IKResult:
    """Outcome of an IK solve; ``success`` means both tolerances were met (position only below 6 DOF)."""

    q: np.ndarray
    success: bool
    position_error: float
    rotation_error: float
    iterations: int


class ArmKinematics:
    """Pinocchio kinematics of one arm chain."""

    def __init__(self, spec: ArmSpec, description: RobotDescription, tree: UrdfTree) -> None:
        self.spec = spec
        chain_xml = _chain_urdf(description, tree, spec)
        try:
            self.model: pin.Model = pin.buildModelFromXML(chain_xml)
        except Exception as error:  # Pinocchio raises ValueError/RuntimeError with long texts
            raise DescriptionError(f"{description.source}: Pinocchio cannot build the arm: {error}") from None
        self.data: pin.Data = self.model.createData()
        if self.model.nq != spec.dof or self.model.nv != spec.dof:
            raise DescriptionError(
                f"{description.source}: expected {spec.dof} configuration variables, Pinocchio built {self.model.nq}"
            )
        if not self.model.existFrame(spec.tip_link, pin.FrameType.BODY):
            raise DescriptionError(f"{description.source}: tip link '{spec.tip_link}' missing from the arm model")
        self.tip_frame = self.model.getFrameId(spec.tip_link, pin.FrameType.BODY)
        self.lower = np.where(np.isfinite(spec.lower), spec.lower, -np.inf)
        self.upper = np.where(np.isfinite(spec.upper), spec.upper, np.inf)
        self._identity = np.eye(spec.dof)
        self._eye6 = np.eye(6)
        self._error = np.empty(6)
        self._damping_cache: tuple[float, np.ndarray] = (0.0, np.zeros((6, 6)))
        self._eye3 = np.eye(3)
        self._middle = spec.middle_configuration()
        self._reference_frame = pin.ReferenceFrame.LOCAL_WORLD_ALIGNED
        #: The chain's length (joint offsets plus the tip's), m: the arm's size, for scale-free measures.
        self.length_scale = max(1e-3, sum(
            float(np.linalg.norm(self.model.jointPlacements[j].translation)) for j in range(1, self.model.njoints)
        ) + float(np.linalg.norm(self.model.frames[self.tip_frame].placement.translation)))

    @property
    def dof(self) -> int:
        return self.spec.dof

    # -- forward kinematics -------------------------------------------------------------

    def fk(self, q: np.ndarray) -> np.ndarray:
        """Pose of the tip in the base frame (4x4)."""
        pin.forwardKinematics(self.model, self.data, q)
        return pin.updateFramePlacement(self.model, self.data, self.tip_frame).homogeneous

    def fk_se3(self, q: np.ndarray) -> pin.SE3:
        pin.forwardKinematics(self.model, self.data, q)
        return pin.updateFramePlacement(self.model, self.data, self.tip_frame)

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """6 x dof Jacobian of the tip, base-aligned at the tip origin."""
        return self.fk_and_jacobian(q)[1]

    def fk_and_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tip pose (4x4) and its 6 x dof Jacobian from one pass over the chain."""
        pin.computeJointJacobians(self.model, self.data, q)
        placement = pin.updateFramePlacement(self.model, self.data, self.tip_frame)
        jacobian = pin.getFrameJacobian(self.model, self.data, self.tip_frame, self._reference_frame)
        return placement.homogeneous, jacobian

    # -- inverse kinematics -------------------------------------------------------------

    def rotation_weight(self, options: IKOptions) -> float:
        if options.rotation_weight is not None:
            return options.rotation_weight
        return 1.0 if self.dof >= 6 else 0.5

    def ik_step(
        self,
        q: np.ndarray,
        target: np.ndarray,
        options: IKOptions = IKOptions(),
        posture: np.ndarray | None = None,
    ) -> tuple[np.ndarray, float, float]:
        """One damped-least-squares step toward ``target`` (4x4), clamped to the joint limits.

        Returns the new configuration and the position and rotation errors *before* the step.
        A null-space term pulls toward ``posture`` (default: the middle of the ranges) so
        redundant arms stay away from their limits.
        """
        pin.computeJointJacobians(self.model, self.data, q)
        current = pin.updateFramePlacement(self.model, self.data, self.tip_frame)
        jacobian = pin.getFrameJacobian(self.model, self.data, self.tip_frame, self._reference_frame)
        position_error = target[:3, 3] - current.translation
        rotation_error = pin.log3(target[:3, :3] @ current.rotation.T)
        if self.dof >= 6 and not options.position_priority:
            jjt = jacobian @ jacobian.T
            jjt += self._damping_matrix(options.damping)
            error = self._error
            error[:3] = position_error
            error[3:] = rotation_error
            if options.posture_gain > 0.0 and self.dof > 6:
                # Only redundant arms have a null space; for the others the damped projector
                # would leak the posture pull into the task and stall convergence. With
                # A = J J^T + damping, the step J^T A^-1 e + g (p - J^T A^-1 J p) is folded
                # into one solve: J^T A^-1 (e - g J p) + g p.
                reference = self._middle if posture is None else posture
                pull = options.posture_gain * (reference - q)
                step = jacobian.T @ _solve_spd(jjt, error - jacobian @ pull) + pull
            else:
                step = jacobian.T @ _solve_spd(jjt, error)
        else:
            step = self._prioritised_step(jacobian, position_error, rotation_error, options)
        if options.step_gain != 1.0:
            step *= options.step_gain
        largest = np.abs(step).max()
        if largest > options.max_step:
            step *= options.max_step / largest
        q_next = q + step
        np.maximum(q_next, self.lower, out=q_next)
        np.minimum(q_next, self.upper, out=q_next)
        return (
            q_next,
            math.sqrt(position_error.dot(position_error)),
            math.sqrt(rotation_error.dot(rotation_error)),
        )

    def _damping_matrix(self, damping: float) -> np.ndarray:
        """``damping * I`` (6x6), rebuilt only when the damping changes."""
        if self._damping_cache[0] != damping:
            self._damping_cache = (damping, damping * self._eye6)
        return self._damping_cache[1]

    def _prioritised_step(
        self, jacobian: np.ndarray, position_error: np.ndarray, rotation_error: np.ndarray, options: IKOptions
    ) -> np.ndarray:
        """Position first, orientation in what is left (task priority, damped).

        Arms with fewer than six joints cannot meet every orientation: the position task
        gets the whole arm, and the orientation task only the motions that leave the tool
        position unchanged, weighted by ``rotation_weight``.
        """
        linear, angular = jacobian[:3], jacobian[3:]
        damping = options.damping * self._eye3
        linear_pinv = linear.T @ _solve_spd(linear @ linear.T + damping, self._eye3)
        step = linear_pinv @ position_error
        projected = angular @ (self._identity - linear_pinv @ linear)
        remaining = self.rotation_weight(options) * rotation_error - angular @ step
        # The orientation task has at most (dof - 3) usable directions; its damping is kept well
        # above the numerical residue of the others, which would otherwise amplify the
        # unreachable part of the rotation error into motion that leaks into the position.
        step += projected.T @ _solve_spd(projected @ projected.T + SECONDARY_TASK_DAMPING * self._eye3, remaining)
        return step

    def ik(
        self,
        target: np.ndarray,
        q_seed: np.ndarray | None = None,
        options: IKOptions = IKOptions(),
        rng: np.random.Generator | None = None,
    ) -> IKResult:
        """Solve IK for a 4x4 target, starting at ``q_seed``, then from random restarts if needed.

        Arms with fewer than six joints succeed when the position converges and the
        orientation error stops improving (the best they can do).
        """
        rng = rng or np.random.default_rng(0)
        first_seed = self._middle if q_seed is None else np.asarray(q_seed, dtype=float)
        best: IKResult | None = None
        total_iterations = 0
        for attempt in range(options.restarts + 1):
            q = first_seed if attempt == 0 else self.random_configuration(rng)
            result = self.solve_from(q, target, options)
            total_iterations += result.iterations
            if best is None or (result.success, -result.position_error) > (best.success, -best.position_error):
                best = result
            if result.success:
                break
        assert best is not None
        return IKResult(best.q, best.success, best.position_error, best.rotation_error, total_iterations)

    def solve_from(
        self,
        q: np.ndarray,
        target: np.ndarray,
        options: IKOptions = IKOptions(),
        posture: np.ndarray | None = None,
        max_iterations: int | None = None,
    ) -> IKResult:
        """Iterate IK steps from ``q`` (no restarts): what a controller tracking a moving target needs.

        Arms with fewer than six joints switch to position alone when the orientation task
        stalls the position against a joint limit.
        """
        full_pose = self.dof >= 6 and self.rotation_weight(options) > 0.0 and not options.position_priority
        iterations = options.max_iterations if max_iterations is None else max_iterations
        previous_rotation = math.inf
        position_error = rotation_error = math.inf
        recent_position_errors: list[float] = []
        step_options = options
        for iteration in range(1, iterations + 1):
            q_next, position_error, rotation_error = self.ik_step(q, target, step_options, posture)
            position_ok = position_error < options.position_tolerance
            if position_ok and (
                rotation_error < options.rotation_tolerance
                or (not full_pose and abs(previous_rotation - rotation_error) < options.rotation_tolerance)
            ):
                return IKResult(q, True, position_error, rotation_error, iteration)
            recent_position_errors.append(position_error)
            if not full_pose and step_options is options and len(recent_position_errors) > 5:
                # The orientation task is fighting a joint limit: the position stalls. Finish
                # on position alone; the orientation reached so far is kept as a start.
                if recent_position_errors[-6] - position_error < 0.01 * recent_position_errors[-6]:
                    step_options = replace(options, rotation_weight=0.0)
            previous_rotation = rotation_error
            q = q_next
        return IKResult(q, False, position_error, rotation_error, iterations)

    # -- velocity control ---------------------------------------------------------------

    def twist_to_joint_velocity(
        self, q: np.ndarray, twist: np.ndarray, damping: float = 1e-4
    ) -> tuple[np.ndarray, float]:
        """Joint velocities that realise a base-frame tip twist, and the Jacobian's condition number.

        Damped least squares keeps the result bounded near singularities; callers slow down
        or stop as the condition number rises (see the arm controller).
        """
        _, jacobian = self.fk_and_jacobian(q)
        condition = self.condition_of(jacobian)
        jjt = jacobian @ jacobian.T
        jjt[np.diag_indices(6)] += damping
        return jacobian.T @ _solve_spd(jjt, twist), condition

    def condition_number(self, q: np.ndarray) -> float:
        """The Jacobian's condition number at ``q``, independent of the arm's size (see :meth:`condition_of`)."""
        return self.condition_of(self.jacobian(q))

    def condition_of(self, jacobian: np.ndarray) -> float:
        """Largest over smallest singular value, with the linear rows divided by the arm's length.

        A raw Jacobian mixes metres and radians: its linear rows grow with the arm, so the same
        pose of a 3 m industrial arm read five times more singular than that of a 60 cm one, and
        thresholds tuned on desktop arms stopped large arms far from any singularity. Dividing
        by :attr:`length_scale` (the chain's length) makes the number dimensionless.
        """
        scaled = jacobian.copy()
        scaled[:3] /= self.length_scale
        singular_values = np.linalg.svd(scaled, compute_uv=False)
        rank = min(6, self.dof)
        bottom = singular_values[rank - 1]
        return float(singular_values[0] / bottom) if bottom > 1e-12 else math.inf

    def random_configuration(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random configuration inside the limits (continuous joints in [-pi, pi])."""
        low = np.where(np.isfinite(self.lower), self.lower, -math.pi)
        high = np.where(np.isfinite(self.upper), self.upper, math.pi)
        return rng.uniform(low, high)


def _solve_spd(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``matrix @ x = rhs`` for a symmetric positive-definite (damped) matrix.

    Eigen's Cholesky through eigenpy (a Pinocchio dependency) takes about 2 µs for 6x6,
    against about 8 µs for ``np.linalg.solve``: this is most of an IK step's budget.
    """
    return eigenpy.LLT(matrix).solve(rhs)


def _chain_urdf(description: RobotDescription, tree: UrdfTree, spec: ArmSpec) -> str:
    """A URDF holding only the chain from ``spec.base_link`` to ``spec.tip_link``.

    Continuous joints become revolute with very wide limits so Pinocchio gives them one
    coordinate; all geometry is dropped (kinematics needs none).
    """
    root = description.root()
    chain = set(tree.path_to_root(spec.tip_link)) - set(tree.path_to_root(spec.base_link))
    chain_links = {spec.base_link} | {tree.joints[name].child for name in chain}
    robot = ET.Element("robot", {"name": root.get("name", "robot")})
    for link in root.findall("link"):
        if link.get("name") in chain_links:
            bare = ET.SubElement(robot, "link", {"name": link.get("name", "")})
            inertial = link.find("inertial")
            if inertial is not None:
                bare.append(copy.deepcopy(inertial))
    for joint in root.findall("joint"):
        if joint.get("name") not in chain:
            continue
        joint = copy.deepcopy(joint)
        mimic = joint.find("mimic")
        if mimic is not None:
            joint.remove(mimic)
        if joint.get("type") in ("revolute", "continuous", "prismatic"):
            # Limits come from the spec (URDF values or the documented defaults), so a URDF
            # that omits <limit> still builds; continuous joints get one unbounded angle.
            index = spec.joint_names.index(joint.get("name", ""))
            if joint.get("type") == "continuous":
                joint.set("type", "revolute")
            limit = joint.find("limit")
            if limit is None:
                limit = ET.SubElement(joint, "limit")
            limit.set("lower", repr(max(float(spec.lower[index]), -1e6)))
            limit.set("upper", repr(min(float(spec.upper[index]), 1e6)))
            limit.set("effort", repr(float(spec.effort[index])))
            limit.set("velocity", repr(float(spec.velocity[index])))
        robot.append(joint)
    return ET.tostring(robot, encoding="unicode")
