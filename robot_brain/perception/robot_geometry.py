"""The whole robot's shape for the self-filter: link geometry reduced to small convex hulls, and full-robot FK.

The arm's own kinematics (``robot_brain.embodiment``) covers only the chain from base to tip;
a camera also sees the links above the base, the gripper's fingers (mimic joints included)
and anything else the description carries. This module loads, once, every link's geometry
from the URDF and reduces each piece to a few dozen vertices of its convex hull, so that
drawing the robot into a mask costs one projection and one polygon fill per piece.

- **Which geometry.** ``visual`` (default) is what a camera sees; a link whose visual cannot
  be loaded (a missing file, a format the loader cannot decode), whose visual disagrees with
  its collision geometry in size or place (a COLLADA unit or node transform the loader
  ignores), or that has no visual falls back to its collision geometry, with a warning.
  ``collision`` uses collision geometry only; ``both`` draws the union (what a simulator
  that shows collision meshes where it cannot decode a visual draws, whichever it shows).
- **Meshes**: binary and ASCII STL are read directly (fast); every other format (OBJ,
  COLLADA ``.dae``, ...) through coal's mesh loader (assimp), the
  library Pinocchio itself uses. Primitives (box, cylinder, sphere, capsule) are sampled
  analytically, circumscribed so the hull covers them.
- **Pieces.** One hull of a concave link (an L-shaped xArm link, a UR upper arm with a motor
  at each end) also covers the empty corner, so each mesh is cut into a few pieces by
  k-means on its triangles; every triangle lies inside its piece's hull, so the union of
  the pieces covers the whole mesh with no gap.
- **Reduction.** Each piece's hull is approximated by its *support points* along a fixed
  set of directions spread over the sphere (the vertex farthest along each direction): a
  subset of the true hull's vertices, whose hull falls short of the true one by a few
  percent of the piece's size at most (48 directions).
- **Kinematics.** A Pinocchio model of the whole tree (continuous joints as one angle,
  mimic tags removed: followers are computed here as ``multiplier * leader + offset``), so
  one ``framesForwardKinematics`` call places every link.

Nothing in a description is executed; meshes are read as data.
"""

from __future__ import annotations

import copy
import logging
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pinocchio as pin

from robot_brain.embodiment import Arm
from robot_brain.embodiment.arm import MOVABLE_TYPES
from robot_brain.embodiment.description import resolve_mesh_paths
from robot_brain.errors import ConfigurationError, DescriptionError

LOGGER = logging.getLogger(__name__)

GEOMETRY_SOURCES = ("visual", "collision", "both")
#: Vertices on a primitive's circles and spheres (circumscribed, so the polygon covers the shape).
_CIRCLE_POINTS = 16
_SPHERE_POINTS = 48


@dataclass(frozen=True)
class HullPiece:
    """One convex piece of one link: a few vertices in the link frame."""

    link: str
    vertices: np.ndarray  # (n, 3) in the link frame (the geometry's origin already applied)
    source: str  # "visual" or "collision"


@dataclass(frozen=True)
class RobotShape:
    """Every convex piece of a robot, grouped by link, with where each came from."""

    pieces: tuple[HullPiece, ...]
    warnings: tuple[str, ...]

    @property
    def links(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(piece.link for piece in self.pieces))

    @property
    def vertex_count(self) -> int:
        return sum(len(piece.vertices) for piece in self.pieces)


def fibonacci_directions(count: int) -> np.ndarray:
    """``count`` unit vectors spread evenly over the sphere (a Fibonacci lattice)."""
    index = np.arange(count, dtype=np.float64) + 0.5
    z = 1.0 - 2.0 * index / count
    radius = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    angle = math.pi * (3.0 - math.sqrt(5.0)) * index
    return np.stack([radius * np.cos(angle), radius * np.sin(angle), z], axis=1)


def support_points(points: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """The points farthest along each direction (deduplicated): vertices of ``points``' convex hull."""
    if len(points) <= len(directions):
        return np.unique(points, axis=0)
    chosen = np.unique(np.argmax(directions @ points.T, axis=1))  # rows are contiguous: argmax along them is fast
    return points[chosen]


def convex_pieces(
    points: np.ndarray, triangles: np.ndarray | None, directions: np.ndarray, pieces: int
) -> list[np.ndarray]:
    """A mesh as up to ``pieces`` convex hulls whose union covers every one of its triangles.

    One hull of a concave link (an L-shaped xArm link, a UR upper arm with a motor at each
    end) covers the empty corner too. Triangles are grouped by weighted k-means on their
    centroids (area-weighted, deterministic farthest-point start); each group's hull is the
    hull of its triangles' vertices, so every triangle lies inside one hull and the union
    leaves no gap. Each hull is reduced to its support points.
    """
    if triangles is None or len(triangles) < 4 * pieces or pieces <= 1:
        return [support_points(points, directions)]
    corners = points[triangles]  # (m, 3, 3)
    centroids = corners.mean(axis=1)
    areas = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    # Centres are fitted on at most a few thousand triangles (evenly strided), then every triangle is assigned.
    stride = max(1, len(centroids) // 8000)
    sample, weights = centroids[::stride], areas[::stride] + 1e-12
    centres = _farthest_points(sample, pieces)
    labels = np.zeros(len(sample), dtype=int)
    for iteration in range(25):
        new_labels = _nearest(sample, centres)
        if iteration > 0 and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        for group in range(len(centres)):
            member = labels == group
            if member.any():
                centres[group] = np.average(sample[member], axis=0, weights=weights[member])
    labels = _nearest(centroids, centres)
    hulls = []
    for group in range(len(centres)):
        member = labels == group
        if member.any():
            hulls.append(support_points(points[np.unique(triangles[member].ravel())], directions))
    return hulls


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for each point (|c|² - 2 p·c, the |p|² term cannot change the order)."""
    return np.argmin((centres * centres).sum(axis=1)[None, :] - 2.0 * points @ centres.T, axis=1)


def _farthest_points(points: np.ndarray, count: int) -> np.ndarray:
    """``count`` well-spread points of ``points``: the farthest from the mean, then farthest from those chosen."""
    chosen = [int(np.argmax(((points - points.mean(axis=0)) ** 2).sum(axis=1)))]
    nearest = ((points - points[chosen[0]]) ** 2).sum(axis=1)
    for _ in range(count - 1):
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, ((points - points[chosen[-1]]) ** 2).sum(axis=1))
    return points[chosen].copy()


def _origin(element: ET.Element) -> np.ndarray:
    """4x4 transform of a URDF ``<origin xyz rpy>`` (rpy: fixed-axis roll, pitch, yaw); ValueError if malformed."""
    transform = np.eye(4)
    origin = element.find("origin")
    if origin is None:
        return transform
    xyz = [float(v) for v in origin.get("xyz", "0 0 0").split()]
    roll, pitch, yaw = (float(v) for v in origin.get("rpy", "0 0 0").split())
    transform[:3, :3] = _rpy(roll, pitch, yaw)
    transform[:3, 3] = xyz
    return transform


def _rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def _circle(radius: float, z: float) -> np.ndarray:
    """A polygon circumscribing the circle (its edges touch the circle, its corners lie outside)."""
    angles = np.linspace(0.0, 2.0 * math.pi, _CIRCLE_POINTS, endpoint=False)
    outer = radius / math.cos(math.pi / _CIRCLE_POINTS)
    return np.stack([outer * np.cos(angles), outer * np.sin(angles), np.full(_CIRCLE_POINTS, z)], axis=1)


def _primitive_points(geometry: ET.Element) -> np.ndarray | None:
    """Points whose convex hull covers a URDF primitive; None for an unknown element."""
    if geometry.tag == "box":
        half = 0.5 * np.array([float(v) for v in geometry.get("size", "0 0 0").split()])
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
        return corners * half
    if geometry.tag == "cylinder":
        radius, half = float(geometry.get("radius", "0")), 0.5 * float(geometry.get("length", "0"))
        return np.vstack([_circle(radius, -half), _circle(radius, half)])
    if geometry.tag in ("sphere", "capsule"):
        radius = float(geometry.get("radius", "0"))
        half = 0.5 * float(geometry.get("length", "0")) if geometry.tag == "capsule" else 0.0
        # A sphere's inscribed lattice polygon misses up to ~4 % of the radius at 48 points.
        sphere = fibonacci_directions(_SPHERE_POINTS) * radius * 1.04
        if half == 0.0:
            return sphere
        axis = np.array([0.0, 0.0, half])
        return np.vstack([sphere - axis, sphere + axis])
    return None


class _MeshReader:
    """Convex pieces of meshes read with coal's loader, cached per file and scale (fingers share one mesh)."""

    def __init__(self, directions: np.ndarray, pieces: int) -> None:
        import coal  # Pinocchio's collision library; imported here so kinematics-only users never load it

        self._loader = coal.MeshLoader()
        self._directions = directions
        self._pieces = pieces
        self._cache: dict[tuple[str, tuple[float, ...]], list[np.ndarray]] = {}

    def pieces(self, filename: str, scale: tuple[float, ...]) -> list[np.ndarray]:
        key = (filename, scale)
        if key not in self._cache:
            points, triangles = self._read(filename, np.asarray(scale, dtype=np.float64))
            if len(points) == 0:
                raise ValueError("no vertices")
            self._cache[key] = convex_pieces(points, triangles, self._directions, self._pieces)
        return self._cache[key]

    def _read(self, filename: str, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Vertices and triangle indices: STL directly (fast), everything else through assimp."""
        if filename.lower().endswith(".stl"):
            corners = read_stl(Path(filename))
            return corners.reshape(-1, 3) * scale, np.arange(3 * len(corners), dtype=np.intp).reshape(-1, 3)
        mesh = self._loader.load(filename, scale)
        points = np.asarray(mesh.vertices(), dtype=np.float64).reshape(-1, 3)
        triangles = np.array(
            [[(t := mesh.tri_indices(i))[0], t[1], t[2]] for i in range(mesh.num_tris)], dtype=np.intp
        ).reshape(-1, 3)
        return points, triangles


def read_stl(path: Path) -> np.ndarray:
    """Triangles (m x 3 corners x 3) of a binary or ASCII STL file.

    Binary STL: an 80-byte header, a little-endian uint32 count, then 50 bytes per triangle
    (normal, three corners as float32, a uint16 attribute). A file whose size matches that
    layout is binary even when its header starts with ``solid`` (many exporters do that).
    """
    data = path.read_bytes()
    if len(data) >= 84:
        count = int(np.frombuffer(data, dtype="<u4", count=1, offset=80)[0])
        if len(data) == 84 + 50 * count:
            record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
            return np.frombuffer(data, dtype=record, count=count, offset=84)["corners"].astype(np.float64)
    text = data.decode("ascii", errors="replace")
    values = [line.split()[1:4] for line in text.splitlines() if line.lstrip().startswith("vertex")]
    if not values or len(values) % 3:
        raise ValueError("neither a binary STL nor ASCII STL with whole triangles")
    return np.asarray(values, dtype=np.float64).reshape(-1, 3, 3)


def load_robot_shape(
    arm: Arm,
    geometry: str = "visual",
    directions: int = 48,
    pieces_per_mesh: int = 8,
) -> RobotShape:
    """Every link's geometry of ``arm``'s description as small convex hulls in the link frames.

    Raises:
        ConfigurationError: an unknown ``geometry`` source or a bad reduction setting.
        DescriptionError: the description holds no geometry at all to draw.
    """
    if geometry not in GEOMETRY_SOURCES:
        raise ConfigurationError(
            f"self-filter geometry: expected one of {', '.join(GEOMETRY_SOURCES)}, found {geometry!r}"
        )
    if directions < 14 or not 1 <= pieces_per_mesh <= 64:
        raise ConfigurationError(
            f"self-filter hulls: expected directions >= 14 and 1 to 64 pieces per mesh, "
            f"found {directions} and {pieces_per_mesh}"
        )
    source = arm.description.source
    root = resolve_mesh_paths(arm.description).description.root()
    reader = _MeshReader(fibonacci_directions(directions), pieces_per_mesh)
    pieces: list[HullPiece] = []
    warnings: list[str] = []
    kinds = {"visual": ("visual", "collision"), "collision": ("collision",), "both": ("visual", "collision")}[geometry]
    for link in root.findall("link"):
        name = link.get("name", "")
        for index, kind in enumerate(kinds):
            loaded, problems = _link_pieces(link.findall(kind), reader)
            last = geometry == "both" or index == len(kinds) - 1
            if kind == "visual" and loaded and not problems:
                collision, _ = _link_pieces(link.findall("collision"), reader)
                disagreement = _disagreement(loaded, collision)
                if disagreement:
                    problems = [disagreement]
            if problems:
                fallback = "the rest of its geometry" if last else "its collision geometry instead"
                message = f"link '{name}' {kind}: {'; '.join(problems)}; the self-filter draws {fallback}"
                LOGGER.warning("%s: %s", source, message)
                warnings.append(message)
            if loaded and (last or not problems):
                pieces.extend(HullPiece(name, piece, kind) for piece in loaded)
                if geometry != "both":
                    break
    if not pieces:
        raise DescriptionError(
            f"{source}: the self-filter found no {geometry} or collision geometry to draw "
            "(expected meshes or primitives)"
        )
    return RobotShape(pieces=tuple(pieces), warnings=tuple(warnings))


#: A link's visual and collision geometry whose bounding boxes overlap less than this (intersection
#: over union), or differ in size by more than this factor, are not the same body.
MIN_BOX_OVERLAP = 0.1
MAX_SIZE_RATIO = 3.0


def _disagreement(visual: list[np.ndarray], collision: list[np.ndarray]) -> str:
    """Why a link's visual geometry cannot be the body its collision geometry describes ('' if it can).

    Collision geometry is usually a simplified copy of the visual (a hull, a few primitives):
    their boxes overlap well and have about the same size. A COLLADA visual whose ``<unit>``
    (inches, millimetres) or node transforms the mesh loader ignores comes out tens of times
    too large or turned away, and would mask the whole frame; the collision mesh (an STL in
    metres) is then the better picture of the link.
    """
    if not collision:
        return ""
    (visual_low, visual_high), (collision_low, collision_high) = (
        (np.vstack(pieces).min(axis=0), np.vstack(pieces).max(axis=0)) for pieces in (visual, collision))
    visual_size = float(np.linalg.norm(visual_high - visual_low))
    collision_size = float(np.linalg.norm(collision_high - collision_low))
    if collision_size < 1e-9 or visual_size < 1e-9:
        return ""
    ratio = visual_size / collision_size
    overlap = np.prod(np.clip(np.minimum(visual_high, collision_high) - np.maximum(visual_low, collision_low),
                              0.0, None))
    volumes = np.prod(visual_high - visual_low) + np.prod(collision_high - collision_low)
    box_iou = float(overlap / (volumes - overlap)) if volumes - overlap > 0.0 else 1.0
    if ratio > MAX_SIZE_RATIO or ratio < 1.0 / MAX_SIZE_RATIO or box_iou < MIN_BOX_OVERLAP:
        return (f"its visual geometry disagrees with its collision geometry (size x{ratio:.2g}, box overlap "
                f"{box_iou:.2f}): a mesh unit or transform the loader ignores, such as a COLLADA <unit>")
    return ""


def _link_pieces(elements: list[ET.Element], reader: _MeshReader) -> tuple[list[np.ndarray], list[str]]:
    """Convex pieces (points in the link frame) of a link's geometry elements, and what could not be loaded."""
    loaded: list[np.ndarray] = []
    problems: list[str] = []
    for element in elements:
        shape = element.find("geometry")
        if shape is None or len(shape) == 0:
            continue
        geometry = shape[0]
        if geometry.tag == "mesh":
            filename = geometry.get("filename", "")
            scale_text = geometry.get("scale", "1 1 1").split()
            try:
                scale = tuple(float(v) for v in (scale_text * 3 if len(scale_text) == 1 else scale_text)[:3])
            except ValueError:
                problems.append(f"mesh '{filename}' has a scale that is not three numbers")
                continue
            if not Path(filename).is_file():
                problems.append(f"mesh '{filename}' not found")
                continue
            try:
                parts = reader.pieces(filename, scale)
            except Exception as error:  # assimp reports unknown formats and corrupt files in many ways
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                problems.append(f"mesh '{Path(filename).name}' cannot be read ({reason})")
                continue
        else:
            try:
                primitive = _primitive_points(geometry)
            except ValueError:
                problems.append(f"<{geometry.tag}> has attributes that are not numbers")
                continue
            if primitive is None:
                problems.append(f"unknown geometry <{geometry.tag}>")
                continue
            parts = [primitive]
        try:
            transform = _origin(element)
        except ValueError:
            problems.append("an <origin> that is not three numbers xyz and rpy")
            continue
        loaded.extend(part @ transform[:3, :3].T + transform[:3, 3] for part in parts)
    return loaded, problems


@dataclass(frozen=True)
class _Mimic:
    follower: int  # index into the model's state vector
    leader: int
    multiplier: float
    offset: float


class RobotPoser:
    """Places every link of a whole robot tree from joint positions (Pinocchio, no geometry).

    ``joint_names`` is the state vector this class takes: every movable joint of the tree
    except mimic followers, arm joints first. ``link_poses`` then gives each requested
    link's pose in the arm's base frame.
    """

    def __init__(self, arm: Arm) -> None:
        root = arm.description.root()
        source = arm.description.source
        tree = arm.tree
        movable = [name for name, joint in tree.joints.items() if joint.movable]
        mimic_elements = {
            joint.get("name", ""): mimic
            for joint in root.findall("joint")
            if (mimic := joint.find("mimic")) is not None
        }
        followers = [
            name for name in movable if name in mimic_elements and mimic_elements[name].get("joint") in tree.joints
        ]
        free = [name for name in movable if name not in followers]
        self.joint_names: tuple[str, ...] = (
            *arm.spec.joint_names,
            *(name for name in free if name not in arm.spec.joint_names),
        )
        try:
            self.model: pin.Model = pin.buildModelFromXML(_kinematic_urdf(root, tree))
        except Exception as error:  # Pinocchio raises ValueError/RuntimeError with long texts
            raise DescriptionError(f"{source}: Pinocchio cannot build the robot for the self-filter: {error}") from None
        self.data: pin.Data = self.model.createData()
        self._q = pin.neutral(self.model)
        all_names = list(self.joint_names) + followers
        self._q_index = np.array([self.model.idx_qs[self.model.getJointId(name)] for name in all_names], dtype=int)
        self._full = np.zeros(len(all_names))
        position = {name: i for i, name in enumerate(all_names)}
        self._mimics = tuple(
            _Mimic(
                follower=position[name],
                leader=position[mimic_elements[name].get("joint", "")],
                multiplier=float(mimic_elements[name].get("multiplier", "1")),
                offset=float(mimic_elements[name].get("offset", "0")),
            )
            for name in followers
        )
        self._base_frame = self._frame(arm.spec.base_link)
        self._base_inverse = np.eye(4)

    def _frame(self, link: str) -> int:
        if not self.model.existFrame(link, pin.FrameType.BODY):
            raise DescriptionError(f"link '{link}' is missing from the self-filter's robot model")
        return int(self.model.getFrameId(link, pin.FrameType.BODY))

    def frames(self, links: tuple[str, ...]) -> np.ndarray:
        """Pinocchio frame ids of ``links`` (for :meth:`link_poses`)."""
        return np.array([self._frame(link) for link in links], dtype=int)

    def pose(self, positions: np.ndarray, frames: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Poses of ``frames`` (into ``out``, ``len(frames)`` x 4 x 4) in the arm's base frame.

        ``positions`` follow ``joint_names``; mimic followers are computed from their leaders.
        """
        full = self._full
        full[: len(positions)] = positions
        for mimic in self._mimics:
            full[mimic.follower] = mimic.multiplier * full[mimic.leader] + mimic.offset
        self._q[self._q_index] = full
        pin.framesForwardKinematics(self.model, self.data, self._q)
        base = self.data.oMf[int(self._base_frame)]
        rotation_t = base.rotation.T
        inverse = self._base_inverse
        inverse[:3, :3] = rotation_t
        inverse[:3, 3] = -rotation_t @ base.translation
        for i, frame in enumerate(frames):
            np.matmul(inverse, self.data.oMf[int(frame)].homogeneous, out=out[i])
        return out


def _kinematic_urdf(root: ET.Element, tree: object) -> str:
    """The tree without geometry, mimic tags or continuous joints (one angle each), limits filled in.

    Pinocchio then gives every movable joint exactly one coordinate, which the poser sets by
    name; floating and planar joints (a robot's placement in a world) are fixed, since the
    camera pose is given in the arm's base frame anyway.
    """
    robot = ET.Element("robot", {"name": root.get("name", "robot")})
    for link in root.findall("link"):
        ET.SubElement(robot, "link", {"name": link.get("name", "")})
    for joint in root.findall("joint"):
        joint = copy.deepcopy(joint)
        for mimic in joint.findall("mimic"):
            joint.remove(mimic)
        kind = joint.get("type")
        if kind == "continuous":
            joint.set("type", "revolute")
        elif kind not in MOVABLE_TYPES:
            joint.set("type", "fixed")
        if joint.get("type") in MOVABLE_TYPES:
            limit = joint.find("limit")
            if limit is None:
                limit = ET.SubElement(joint, "limit")
            limit.set("lower", "-1e6")
            limit.set("upper", "1e6")
            limit.set("effort", limit.get("effort", "1"))
            limit.set("velocity", limit.get("velocity", "1"))
        robot.append(joint)
    return ET.tostring(robot, encoding="unicode")
