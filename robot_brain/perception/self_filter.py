"""The robot filters itself out of the camera image: a mask of every pixel the arm covers.

Many industrial arms are painted orange, red or yellow; a colour detector then finds the
arm. A cell knows where its arm is, so perception draws the whole robot (every link of the
URDF, gripper and mimic joints included) into a mask at the configuration it had when the
frame was exposed, pads it by a margin, and the detector ignores those pixels.

Cost (per frame, buffers pre-allocated): full-robot FK, one 4x4 product per link, one
vectorised projection of every piece's vertices (1–7 thousand on the bundled arms), one
``cv2.convexHull`` + ``cv2.fillConvexPoly`` per piece in view (see
:mod:`robot_brain.perception.robot_geometry` for how pieces are made), and one dilation by
the margin over the region drawn: 0.5–1.4 ms at 640x480 on this project's VM (bench/self_filter.py).
Pieces partly behind the camera are clipped against a near plane in 3D first (the
hull of the points in front and of every front-behind segment's crossing is exactly the
clipped hull), and polygons reaching far outside the image are clipped in 2D before they
are filled, so a link that passes next to the lens is masked correctly.

Typical use (what the perception node does)::

    self_filter = SelfFilter(arm, SelfFilterOptions(margin_px=4))   # at configure
    self_filter.add_joint_state(stamp_ns, msg.name, msg.position)   # every /joint_states message
    result = self_filter.mask_at(frame_stamp_ns, camera, camera_pose)  # every frame
    detection = detector.detect(image, encoding, ignore=result.mask, camera=camera)
    # result.status is OK, or says why nothing is masked (diagnostics, a rate-limited log)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from robot_brain.embodiment import Arm
from robot_brain.errors import ConfigurationError
from robot_brain.perception.geometry import CameraModel
from robot_brain.perception.joint_history import JointStateHistory, SampleStatus
from robot_brain.perception.robot_geometry import RobotPoser, RobotShape, load_robot_shape

__all__ = ["SampleStatus", "SelfFilter", "SelfFilterOptions", "SelfMask", "clip_polygon"]

#: Fixed-point bits of the polygon vertices handed to OpenCV (1/16 pixel).
_SHIFT = 4
_ONE = float(1 << _SHIFT)
#: Polygons are clipped in 2D when a vertex lies farther than this many image sizes outside
#: (OpenCV's fixed-point fill loses precision beyond about 1e5 pixels).
_GUARD_IMAGES = 8.0


@dataclass(frozen=True)
class SelfFilterOptions:
    """Settings of the self-filter (the perception node's ``self_filter_*`` parameters).

    Attributes:
        geometry: ``visual`` (what a camera sees; per link, collision geometry when the
            visual cannot be loaded), ``collision``, or ``both`` (their union: for the MuJoCo
            sim, which shows collision meshes where it cannot decode a COLLADA visual).
        margin_px: the mask is padded by this many pixels on every side (calibration error,
            a joint-state lag, anti-aliased edges); 0 draws the bare silhouette.
        max_joint_state_age_s: a frame is masked only when a joint sample lies within this
            many seconds of its stamp; otherwise the filter reports stale states and masks nothing.
        history_size: joint samples kept for time matching (1024 ≈ 2 s at 500 Hz).
        hull_directions: support directions per convex piece (its vertex budget).
        pieces_per_mesh: a mesh is cut into up to this many convex pieces (concave links
            hug their outline; each piece costs one polygon fill per frame).
        near_m: the near clipping plane, metres in front of the camera.
    """

    geometry: str = "visual"
    margin_px: float = 4.0
    max_joint_state_age_s: float = 0.1
    history_size: int = 1024
    hull_directions: int = 48
    pieces_per_mesh: int = 8
    near_m: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin_px <= 200.0:
            raise ConfigurationError(f"self_filter_margin_px: expected 0 to 200 pixels, found {self.margin_px}")
        if not self.max_joint_state_age_s > 0.0:
            raise ConfigurationError(
                "self_filter_max_joint_state_age_s: expected a positive number of seconds, "
                f"found {self.max_joint_state_age_s}"
            )
        if not self.near_m > 0.0:
            raise ConfigurationError(f"self-filter near plane: expected > 0 m, found {self.near_m}")


@dataclass(frozen=True)
class SelfMask:
    """The self-filter's answer for one frame.

    ``mask`` is the filter's own buffer (uint8, 255 where the robot is): valid until the next
    call; ``None`` when nothing is masked (see ``status`` and ``detail``).
    """

    mask: np.ndarray | None
    status: SampleStatus
    detail: str
    offset_s: float  # frame stamp minus the nearest joint sample's stamp

    @property
    def ok(self) -> bool:
        return self.status is SampleStatus.OK


def clip_polygon(polygon: np.ndarray, low: tuple[float, float], high: tuple[float, float]) -> np.ndarray:
    """A convex polygon (n x 2) clipped to the box ``low``–``high`` (Sutherland–Hodgman); may be empty."""
    points = polygon
    for axis, bound, keep_below in ((0, low[0], False), (0, high[0], True), (1, low[1], False), (1, high[1], True)):
        if len(points) == 0:
            break
        inside = points[:, axis] <= bound if keep_below else points[:, axis] >= bound
        if inside.all():
            continue
        previous = np.roll(points, 1, axis=0)
        previous_inside = np.roll(inside, 1)
        kept: list[np.ndarray] = []
        for point, prior, is_in, prior_in in zip(points, previous, inside, previous_inside, strict=True):
            if is_in != prior_in:
                t = (bound - prior[axis]) / (point[axis] - prior[axis])
                kept.append(prior + t * (point - prior))
            if is_in:
                kept.append(point)
        points = np.array(kept).reshape(-1, 2)
    return points


class _CameraCache:
    """What the projection needs from one camera model and pose, recomputed only when they change."""

    def __init__(self) -> None:
        self.width = self.height = 0
        self.k = np.zeros((3, 3))
        self.d = np.zeros(0)
        self.d8 = np.zeros(8)  # k1 k2 p1 p2 k3 k4 k5 k6
        self.pose = np.full((4, 4), np.nan)
        self.camera_from_base = np.eye(4)
        self.max_radius2 = math.inf

    def update(self, camera: CameraModel, camera_pose: np.ndarray) -> bool:
        """Refresh from ``camera`` and ``camera_pose``; True when the image size changed."""
        resized = (camera.width, camera.height) != (self.width, self.height)
        if resized or not np.array_equal(camera.k, self.k) or not np.array_equal(camera.d, self.d):
            self.width, self.height = camera.width, camera.height
            self.k = camera.k.copy()
            self.d = camera.d.copy() if camera.d.size and np.any(camera.d) else np.zeros(0)
            self.d8[:] = 0.0
            self.d8[: min(8, self.d.size)] = self.d[:8]
            if self.d.size:
                # Distortion polynomials turn back beyond the image: clamp radii to its corners'.
                corners = [camera.ray(u, v) for u in (0.0, camera.width - 1.0) for v in (0.0, camera.height - 1.0)]
                self.max_radius2 = max(float(r[0] ** 2 + r[1] ** 2) for r in corners)
        if not np.array_equal(camera_pose, self.pose):
            self.pose = np.array(camera_pose, dtype=np.float64)
            rotation_t = self.pose[:3, :3].T
            self.camera_from_base = np.eye(4)
            self.camera_from_base[:3, :3] = rotation_t
            self.camera_from_base[:3, 3] = -rotation_t @ self.pose[:3, 3]
        return resized


class SelfFilter:
    """Draws the robot into a mask at the configuration it had at a frame's stamp.

    Args:
        arm: the arm (its description carries every link's geometry; its spec names the
            joints a configuration needs and the base frame the camera pose is given in).
        options: see :class:`SelfFilterOptions`.
        shape: pre-loaded geometry (tests and benchmarks share one); loaded from ``arm`` when None.

    Raises:
        ConfigurationError: bad options.
        DescriptionError: the description holds no geometry, or Pinocchio cannot build it.
    """

    def __init__(
        self, arm: Arm, options: SelfFilterOptions = SelfFilterOptions(), shape: RobotShape | None = None
    ) -> None:
        self.options = options
        self.shape = shape if shape is not None else load_robot_shape(
            arm, options.geometry, options.hull_directions, options.pieces_per_mesh
        )
        self.poser = RobotPoser(arm)
        tree = arm.tree
        self.joint_names = self.poser.joint_names

        def default(name: str) -> float:
            joint = tree.joints[name]
            low = joint.lower if joint.lower is not None and joint.type != "continuous" else -math.inf
            high = joint.upper if joint.upper is not None and joint.type != "continuous" else math.inf
            return float(np.clip(0.0, low, high)) if low <= high else 0.0

        self.history = JointStateHistory(
            self.joint_names,
            required=arm.spec.joint_names,
            defaults=[default(name) for name in self.joint_names],
            continuous=[tree.joints[name].type == "continuous" for name in self.joint_names],
            capacity=options.history_size,
        )
        # Pieces grouped by link so one matrix product places a link's vertices.
        links = self.shape.links
        ordered = [piece for link in links for piece in self.shape.pieces if piece.link == link]
        self._frames = self.poser.frames(links)
        self._link_poses = np.zeros((len(links), 4, 4))
        self._camera_poses = np.zeros((len(links), 4, 4))
        self._local = np.ascontiguousarray(np.vstack([piece.vertices for piece in ordered]))
        sizes = np.array([len(piece.vertices) for piece in ordered])
        self._piece_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        self._piece_end = np.cumsum(sizes).astype(np.intp)
        link_sizes = [sum(len(p.vertices) for p in ordered if p.link == link) for link in links]
        self._link_start = np.concatenate([[0], np.cumsum(link_sizes)[:-1]]).astype(int)
        self._link_end = np.cumsum(link_sizes).astype(int)
        count = len(self._local)
        self._points = np.zeros((count, 3))
        self._inverse_z = np.zeros(count)
        self._uv = np.zeros((count, 2))
        self._fixed = np.zeros((count, 2), dtype=np.int32)
        pieces = len(ordered)
        self._slices = [slice(int(a), int(b)) for a, b in zip(self._piece_start, self._piece_end, strict=True)]
        self._bounds = np.zeros((6, pieces))  # z min, z max, u min, v min, u max, v max (fixed point)
        self._draw = np.zeros(pieces, dtype=bool)
        self._clip = np.zeros(pieces, dtype=bool)
        self._scratch = np.zeros(pieces, dtype=bool)
        self._positions = np.zeros(len(self.joint_names))
        self._camera = _CameraCache()
        self._mask = np.zeros((0, 0), dtype=np.uint8)
        self._dilated = np.zeros((0, 0), dtype=np.uint8)
        radius = math.ceil(options.margin_px)
        self._kernel = (
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)) if radius > 0 else None
        )

    @property
    def piece_count(self) -> int:
        return len(self._piece_start)

    @property
    def vertex_count(self) -> int:
        return len(self._local)

    # -- time matching ---------------------------------------------------------------------

    def add_joint_state(self, stamp_ns: int, names: Sequence[str], positions: Sequence[float]) -> None:
        """Record one ``/joint_states`` message (any subset of the joints; unknown names are ignored)."""
        self.history.add(stamp_ns, names, positions)

    def mask_at(self, stamp_ns: int, camera: CameraModel, camera_pose: np.ndarray) -> SelfMask:
        """The robot's mask for a frame stamped ``stamp_ns`` (optical frame ``camera_pose`` in the base frame).

        Never raises on missing or stale joint states: the result says so and masks nothing.
        """
        lookup = self.history.sample(stamp_ns, self.options.max_joint_state_age_s, self._positions)
        if lookup.status is not SampleStatus.OK:
            return SelfMask(None, lookup.status, lookup.detail, lookup.offset_s)
        mask = self.render(self._positions, camera, camera_pose)
        return SelfMask(mask, SampleStatus.OK, "", lookup.offset_s)

    # -- drawing ---------------------------------------------------------------------------

    def render(
        self, positions: np.ndarray, camera: CameraModel, camera_pose: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """The robot's mask (uint8 0/255, ``camera.height x camera.width``) at ``positions`` (``joint_names`` order).

        Without ``out`` the filter's own buffer is returned (valid until the next call).
        """
        if len(positions) != len(self.joint_names):
            raise ConfigurationError(
                f"self-filter: expected {len(self.joint_names)} joint positions ({', '.join(self.joint_names)}), "
                f"found {len(positions)}"
            )
        if out is not None and (out.shape != (camera.height, camera.width) or out.dtype != np.uint8):
            raise ConfigurationError(
                f"self-filter mask: expected a uint8 {camera.width}x{camera.height} buffer, "
                f"found {out.dtype} {out.shape[1::-1]}"
            )
        cache = self._camera
        if cache.update(camera, camera_pose) or self._mask.shape != (camera.height, camera.width):
            self._mask = np.zeros((camera.height, camera.width), dtype=np.uint8)
            self._dilated = np.zeros_like(self._mask)
        mask = self._mask if out is None or self._kernel is not None else out
        mask.fill(0)
        self.poser.pose(positions, self._frames, self._link_poses)
        np.matmul(cache.camera_from_base, self._link_poses, out=self._camera_poses)
        points, local = self._points, self._local
        for link, (start, end) in enumerate(zip(self._link_start, self._link_end, strict=True)):
            pose = self._camera_poses[link]
            np.matmul(local[start:end], pose[:3, :3].T, out=points[start:end])
            points[start:end] += pose[:3, 3]
        near = self.options.near_m
        z = points[:, 2]
        np.maximum(z, near, out=self._inverse_z)
        np.divide(1.0, self._inverse_z, out=self._inverse_z)
        self._project(points, self._inverse_z, self._uv)
        np.multiply(self._uv, _ONE, out=self._uv)
        guard = _ONE * _GUARD_IMAGES * max(camera.width, camera.height)
        np.clip(self._uv, -guard, guard, out=self._uv)
        np.rint(self._uv, out=self._uv)
        fixed = self._fixed
        fixed[:] = self._uv
        # Which pieces to draw, decided for all at once: in front of the near plane and
        # overlapping the image; those crossing the near plane or the guard band are clipped.
        bounds, starts = self._bounds, self._piece_start
        np.minimum.reduceat(z, starts, out=bounds[0])
        np.maximum.reduceat(z, starts, out=bounds[1])
        np.minimum.reduceat(self._uv[:, 0], starts, out=bounds[2])
        np.minimum.reduceat(self._uv[:, 1], starts, out=bounds[3])
        np.maximum.reduceat(self._uv[:, 0], starts, out=bounds[4])
        np.maximum.reduceat(self._uv[:, 1], starts, out=bounds[5])
        draw, clip, scratch = self._draw, self._clip, self._scratch
        np.greater(bounds[1], near, out=draw)
        np.less_equal(bounds[0], near, out=clip)
        np.logical_and(clip, draw, out=clip)
        for row, limit in ((4, 0.0), (5, 0.0)):
            np.greater_equal(bounds[row], limit, out=scratch)
            np.logical_or(scratch, clip, out=scratch)
            np.logical_and(draw, scratch, out=draw)
        for row, limit in ((2, camera.width * _ONE), (3, camera.height * _ONE)):
            np.less_equal(bounds[row], limit, out=scratch)
            np.logical_or(scratch, clip, out=scratch)
            np.logical_and(draw, scratch, out=draw)
        for row in (2, 3):
            np.less_equal(bounds[row], _ONE - guard, out=scratch)
            np.logical_or(clip, scratch, out=clip)
        for row in (4, 5):
            np.greater_equal(bounds[row], guard - _ONE, out=scratch)
            np.logical_or(clip, scratch, out=clip)
        np.logical_and(clip, draw, out=clip)
        slices = self._slices
        for piece in np.flatnonzero(draw):
            if clip[piece]:
                self._draw_clipped(mask, points[slices[piece]], camera)
            else:
                cv2.fillConvexPoly(mask, cv2.convexHull(fixed[slices[piece]]), 255, cv2.LINE_8, _SHIFT)
        if self._kernel is None:
            return mask
        target = self._dilated if out is None else out
        self._pad(mask, target, draw, clip)
        return target

    def _pad(self, mask: np.ndarray, target: np.ndarray, draw: np.ndarray, clip: np.ndarray) -> None:
        """``target`` = ``mask`` dilated by the margin, computed only around what was drawn."""
        assert self._kernel is not None
        target.fill(0)
        if not draw.any():
            return
        height, width = mask.shape
        if clip.any():
            top, left, bottom, right = 0, 0, height, width
        else:
            bounds = self._bounds
            pad = self._kernel.shape[0] // 2 + 1
            left = max(0, int(bounds[2][draw].min() / _ONE) - pad)
            top = max(0, int(bounds[3][draw].min() / _ONE) - pad)
            right = min(width, int(bounds[4][draw].max() / _ONE) + pad + 1)
            bottom = min(height, int(bounds[5][draw].max() / _ONE) + pad + 1)
            if left >= right or top >= bottom:
                return
        cv2.dilate(mask[top:bottom, left:right], self._kernel, dst=target[top:bottom, left:right])

    def _project(self, points: np.ndarray, inverse_z: np.ndarray, uv: np.ndarray) -> None:
        """Pinhole projection (with the camera's plumb_bob/rational distortion when it has one) into ``uv``."""
        k = self._camera.k
        np.multiply(points[:, 0], inverse_z, out=uv[:, 0])
        np.multiply(points[:, 1], inverse_z, out=uv[:, 1])
        if self._camera.d.size:
            self._distort(uv)
        if k[0, 1] != 0.0:  # skew (rare): u = fx x + s y + cx
            uv[:, 0] += (k[0, 1] / k[0, 0]) * uv[:, 1]
        uv[:, 0] *= k[0, 0]
        uv[:, 0] += k[0, 2]
        uv[:, 1] *= k[1, 1]
        uv[:, 1] += k[1, 2]

    def _distort(self, normalised: np.ndarray) -> None:
        """Apply the camera's distortion (k1 k2 p1 p2 [k3 [k4 k5 k6]]) to normalised coordinates, in place.

        Radii are clamped to the image corners' (the polynomials turn back beyond them). Only
        distorted cameras come here; they pay a few small temporaries per frame.
        """
        k1, k2, p1, p2, k3, k4, k5, k6 = self._camera.d8
        x, y = normalised[:, 0].copy(), normalised[:, 1].copy()
        r2 = np.minimum(x * x + y * y, self._camera.max_radius2)
        radial = (1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1.0 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        normalised[:, 0] = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        normalised[:, 1] = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y

    def _draw_clipped(self, mask: np.ndarray, points: np.ndarray, camera: CameraModel) -> None:
        """A piece that crosses the near plane or reaches far outside the image (rare: allocates)."""
        near = self.options.near_m
        in_front = points[:, 2] > near
        front, behind = points[in_front], points[~in_front]
        if len(behind):
            # Every front-behind segment's crossing of the near plane: with the front points they
            # span exactly the part of the piece's hull in front of the plane.
            t = (near - front[:, None, 2]) / (behind[None, :, 2] - front[:, None, 2])
            crossings = front[:, None, :] + t[..., None] * (behind[None, :, :] - front[:, None, :])
            front = np.vstack([front, crossings.reshape(-1, 3)])
        inverse_z = 1.0 / np.maximum(front[:, 2], near)
        uv = np.zeros((len(front), 2))
        self._project(front, inverse_z, uv)
        hull = cv2.convexHull(uv.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        pad = float(max(camera.width, camera.height))
        clipped = clip_polygon(hull, (-pad, -pad), (camera.width + pad, camera.height + pad))
        if len(clipped) >= 3:
            cv2.fillConvexPoly(mask, np.rint(clipped * _ONE).astype(np.int32), 255, cv2.LINE_8, _SHIFT)
