"""The task layout of one arm, derived from its own reachable workspace (no MuJoCo, no ROS).

A 30 cm desktop arm and a 2 m industrial arm must each get a fair reach task, so nothing
here is in metres: the table, the object's size and region, the success tolerance, the home
pose and the camera are all scaled by the arm's *reach*, estimated by sampling random
configurations through forward kinematics.

Frames: everything is expressed in the arm's base frame (``ArmSpec.base_link``), whose
origin is assumed to lie on its mounting face, so the table top is the plane ``z = 0``.
Tool "pointing down" means the tip frame's z axis along ``-z`` (the REP 199 convention for
``tool0``/flange frames); arms whose tip frame differs get a home pose from their preset.

The layout is deterministic for a given arm and options: the launch plan computes it to
hand the camera extrinsics to the perception node, and the simulator computes the same
numbers to place the camera, so the two always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from robot_brain.embodiment import Arm, ArmSpec, IKOptions
from robot_brain.errors import ConfigurationError
from robot_brain.perception.geometry import matrix_to_pose, pose_to_matrix

#: IK seeds per candidate tool yaw when choosing the home pose (the middle of the ranges, then random).
HOME_SEEDS = 6
#: The largest scale-free Jacobian condition number a task path may reach: just below the arm
#: controller's default singularity_hard_threshold (200), where its guard stops the motion.
MAX_PATH_CONDITION = 180.0
#: Tool pointing straight down, its x axis along the base's +x (a rotation of pi about x).
TOOL_DOWN = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


@dataclass(frozen=True)
class LayoutOptions:
    """Knobs of the layout, all relative to the arm's reach (see ``config/sim.yaml``)."""

    samples: int = 2000
    seed: int = 0
    reach_quantile: float = 0.95
    region_radius: tuple[float, float] = (0.4, 0.7)  # fractions of the reach
    region_yaw_deg: float = 45.0  # half-angle of the object sector, around the base's +x
    object_size: float = 0.06  # cube edge, fraction of the reach (clipped to [2, 10] cm)
    tolerance: float = 0.045  # success radius, fraction of the reach (clipped to [2, 10] cm)
    home_height: float = 0.3  # tool height above the table at home, fraction of the reach
    home: tuple[float, ...] = ()  # explicit home configuration (a preset), arm order
    camera_distance: float = 2.0  # eye-to-region-centre distance, in units of the region's outer radius
    camera_elevation_deg: float = 55.0
    camera_azimuth_deg: float = -40.0  # from the base's +x, counter-clockwise
    camera_fovy_deg: float = 50.0
    camera_pose: tuple[float, ...] = ()  # explicit [x y z qx qy qz qw] of the optical frame in the base frame

    def __post_init__(self) -> None:
        low, high = self.region_radius
        if not 0.0 < low < high <= 1.0:
            raise ConfigurationError(
                "region_radius: expected 0 < inner < outer <= 1 (fractions of the reach), "
                f"found {list(self.region_radius)}"
            )
        if self.samples < 100:
            raise ConfigurationError(f"workspace samples: expected >= 100, found {self.samples}")
        if self.camera_pose and len(self.camera_pose) != 7:
            raise ConfigurationError(
                f"camera_pose: expected 7 values [x y z qx qy qz qw] or none, found {len(self.camera_pose)}"
            )


@dataclass(frozen=True)
class Layout:
    """Where things are, in the base frame, for one arm."""

    reach: float  # m, horizontal radius the tool reaches (quantile of the samples)
    object_size: float  # m, cube edge
    object_z: float  # m, height of the object's centre (it rests on the table)
    tolerance: float  # m, success radius around the object's centre
    region_radius: tuple[float, float]  # m
    region_yaw: float  # rad, half-angle of the sector
    table_center: np.ndarray  # (x, y) of the table top's centre
    table_half_size: np.ndarray  # (half length, half width)
    home: np.ndarray  # arm configuration at the start of every episode
    home_tool_pose: np.ndarray  # 4x4 tool pose at home
    camera_pose: np.ndarray  # 4x4 optical frame (z forward, x right, y down) in the base frame
    camera_fovy_deg: float
    notes: tuple[str, ...] = field(default=())

    @property
    def region_center(self) -> np.ndarray:
        radius = 0.5 * (self.region_radius[0] + self.region_radius[1])
        return np.array([radius, 0.0, self.object_z])

    def camera_pose_list(self) -> list[float]:
        """``[x y z qx qy qz qw]`` of the optical frame: the form both the sim and perception take."""
        return [float(v) for v in matrix_to_pose(self.camera_pose)]


def compute_layout(arm: Arm, options: LayoutOptions = LayoutOptions()) -> Layout:
    """The layout of ``arm``'s reach task; deterministic for the same arm and options."""
    kinematics = arm.kinematics
    rng = np.random.default_rng(options.seed)
    positions = np.array([kinematics.fk(kinematics.random_configuration(rng))[:3, 3] for _ in range(options.samples)])
    reach = float(np.quantile(np.linalg.norm(positions[:, :2], axis=1), options.reach_quantile))
    if not reach > 1e-3:
        raise ConfigurationError(
            f"{arm.spec.name}: the tool's reach is {reach:.4f} m; expected an arm that moves its tool"
        )
    object_size = float(np.clip(options.object_size * reach, 0.02, 0.10))
    tolerance = float(np.clip(options.tolerance * reach, 0.02, 0.10))
    object_z = 0.5 * object_size
    inner, outer = (options.region_radius[0] * reach, options.region_radius[1] * reach)
    region_center = np.array([0.5 * (inner + outer), 0.0, object_z])
    notes: list[str] = []
    probes = _probe_points(inner, outer, math.radians(options.region_yaw_deg), object_z)
    home = _home(arm, options, region_center + np.array([0.0, 0.0, options.home_height * reach]), probes, notes)
    home_tool_pose = kinematics.fk(home)
    margin = 0.25 * reach
    table_min = np.array([-margin, -outer - margin])
    table_max = np.array([outer + margin, outer + margin])
    camera = (
        pose_to_matrix(options.camera_pose)
        if options.camera_pose
        else look_at(
            region_center,
            distance=options.camera_distance * outer,
            elevation=math.radians(options.camera_elevation_deg),
            azimuth=math.radians(options.camera_azimuth_deg),
        )
    )
    return Layout(
        reach=reach,
        object_size=object_size,
        object_z=object_z,
        tolerance=tolerance,
        region_radius=(inner, outer),
        region_yaw=math.radians(options.region_yaw_deg),
        table_center=0.5 * (table_min + table_max),
        table_half_size=0.5 * (table_max - table_min),
        home=home,
        home_tool_pose=home_tool_pose,
        camera_pose=camera,
        camera_fovy_deg=options.camera_fovy_deg,
        notes=tuple(notes),
    )


def _home(arm: Arm, options: LayoutOptions, point: np.ndarray, probes: np.ndarray, notes: list[str]) -> np.ndarray:
    """The preset's home, else the IK solution with the tool down above the region's centre."""
    spec = arm.spec
    if options.home:
        if len(options.home) != spec.dof:
            raise ConfigurationError(
                f"home: expected {spec.dof} joint positions ({', '.join(spec.joint_names)}), found {len(options.home)}"
            )
        home = np.asarray(options.home, dtype=float)
        low, high = spec.lower - 1e-9, spec.upper + 1e-9
        if np.any(home < low) or np.any(home > high):
            raise ConfigurationError(f"home: {list(home)} is outside the joint limits of {spec.name}")
        return home
    ik_options = IKOptions(position_tolerance=1e-3, rotation_tolerance=1e-2, restarts=20)
    rng = np.random.default_rng(options.seed)
    best = None
    solutions = []
    seeds = [spec.middle_configuration(), *(arm.kinematics.random_configuration(rng) for _ in range(HOME_SEEDS - 1))]
    for yaw in np.radians([0.0, 45.0, -45.0, 90.0, -90.0, 135.0, -135.0, 180.0]):
        target = np.eye(4)
        target[:3, :3] = _rotz(yaw) @ TOOL_DOWN
        target[:3, 3] = point
        for seed in seeds:
            result = arm.kinematics.ik(target, seed, ik_options, rng)
            if result.success:
                solutions.append(result.q)
            if best is None or result.position_error < best.position_error:
                best = result
    if solutions:
        return _best_home(arm, solutions, probes)
    assert best is not None
    notes.append(
        f"no tool-down home pose found above the task region (closest {best.position_error:.3f} m); "
        "using the nearest configuration: set `home` in the robot preset"
    )
    return best.q


def _probe_points(inner: float, outer: float, yaw: float, z: float) -> np.ndarray:
    """Spots spread over the object sector (corners, edges, middle) to score home candidates."""
    points = [(radius * math.cos(angle), radius * math.sin(angle), z)
              for radius in (inner, 0.5 * (inner + outer), outer) for angle in (-yaw, 0.0, yaw)]
    return np.array(points)


def _best_home(arm: Arm, solutions: list[np.ndarray], probes: np.ndarray) -> np.ndarray:
    """The tool-down solution from which a Cartesian controller reaches most of the sector.

    Candidates are tried in order (middle-of-range seeds first) and the first one that
    reaches every probe wins; ties go to the larger joint-limit margin.
    """
    best, best_score = solutions[0], (-1, -1.0)
    for q in solutions:
        pose = arm.kinematics.fk(q)
        # Singularities are the placement's to avoid (each episode's path is checked); a home is
        # scored on reaching the sector at all, so a slow pass near one does not disqualify it.
        reached = sum(reachable_from(arm, q, pose, point, max_condition=math.inf) for point in probes)
        score = (reached, _limit_margin(arm.spec, q))
        if reached == len(probes):
            return q
        if score > best_score:
            best, best_score = q, score
    return best


def reachable_from(arm: Arm, q_start: np.ndarray, start_pose: np.ndarray, point: np.ndarray,
                   steps: int = 12, max_joint_step: float = 0.4, limit_margin: float = 0.05,
                   max_condition: float = MAX_PATH_CONDITION) -> bool:
    """Whether the straight tool path from ``start_pose`` to ``point`` (same orientation) is followable.

    Small IK steps, each seeded by the previous one, as a Cartesian controller moves: an
    end-point-only IK check would accept spots that need a jump to another IK branch. The
    end configuration must keep ``limit_margin`` from every joint limit, and every step a
    (scale-free) Jacobian condition number below ``max_condition``: a path through a wrist
    singularity is one the controller's singularity guard stops, however reachable its end.
    """
    options = IKOptions(position_tolerance=1e-3, rotation_tolerance=2e-2, restarts=0)
    spec = arm.spec
    target = start_pose.copy()
    start = start_pose[:3, 3]
    q = q_start
    square = spec.dof == 6 and math.isfinite(max_condition)
    previous = 0.0
    for fraction in np.linspace(0.0, 1.0, steps + 1)[1:]:
        target[:3, 3] = (1.0 - fraction) * start + fraction * point
        result = arm.kinematics.ik(target, q, options)
        if not result.success or np.max(np.abs(result.q - q)) > max_joint_step:
            return False
        if arm.kinematics.condition_number(result.q) > max_condition:
            return False
        if square and np.sign(np.linalg.det(arm.kinematics.jacobian(result.q))) != np.sign(
                np.linalg.det(arm.kinematics.jacobian(q))):
            # A six-joint arm crossed a singularity between two samples: look at the crossing closely,
            # where the condition number peaks (samples around it can all look harmless).
            if _peak_condition(arm, q, start_pose, start, point, previous, fraction, options) > max_condition:
                return False
        q, previous = result.q, fraction
    margin = np.minimum(q - spec.lower, spec.upper - q)
    return bool(np.all(margin[np.isfinite(margin)] > limit_margin))


def _peak_condition(arm: Arm, q: np.ndarray, start_pose: np.ndarray, start: np.ndarray, point: np.ndarray,
                    low: float, high: float, options: IKOptions, samples: int = 16) -> float:
    """The largest condition number on the straight tool path between fractions ``low`` and ``high``."""
    target = start_pose.copy()
    peak = 0.0
    for fraction in np.linspace(low, high, samples + 1)[1:]:
        target[:3, 3] = (1.0 - fraction) * start + fraction * point
        q = arm.kinematics.ik(target, q, options).q
        peak = max(peak, arm.kinematics.condition_number(q))
    return peak


def _limit_margin(spec: ArmSpec, q: np.ndarray) -> float:
    """Smallest distance to a joint limit, as a fraction of that joint's range (continuous joints: 0.5)."""
    span = spec.upper - spec.lower
    finite = np.isfinite(span)
    if not finite.any():
        return 0.5
    margins = np.minimum(q - spec.lower, spec.upper - q)[finite] / span[finite]
    return float(margins.min())


def _rotz(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def look_at(target: np.ndarray, distance: float, elevation: float, azimuth: float) -> np.ndarray:
    """4x4 pose of an optical frame (z forward, x right, y down) looking at ``target`` from a sphere."""
    direction = np.array([
        math.cos(elevation) * math.cos(azimuth),
        math.cos(elevation) * math.sin(azimuth),
        math.sin(elevation),
    ])
    eye = target + distance * direction
    forward = -direction
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
    return pose
