"""Action chunks: validation, time alignment, interpolation and blending at the seams (ROS-free).

A policy publishes a *chunk*: ``horizon`` waypoints ``dt`` apart, waypoint ``k`` meant for
time ``stamp + k·dt`` where ``stamp`` is the time of the observation the policy saw. By the
time the chunk reaches the controller, inference and transport have eaten part of it:
waypoints already in the past are dropped (the one just before *now* is kept so there is
something to interpolate from).

The control loop samples a :class:`Blender` at every period. When a new chunk arrives
while another executes, the blender cross-fades instead of switching, so the target is
continuous at the seam (the safety filter then bounds velocity and acceleration). Two modes:

* ``ensemble`` (temporal ensembling, as in ACT): the new target is the weighted mean of
  every chunk that still covers *now*, weights ``exp(ensemble_decay · (stamp_i − stamp_newest))``
  (decay > 0 favours fresh chunks; < 0 favours old ones, ACT's choice; 0 is uniform). It
  averages out the jitter between successive predictions, at the cost of reacting later
  and of averaging two *different* plans (e.g. pass left / pass right) into a third one
  that nobody predicted.
* ``rtc`` (real-time chunking): the executing chunk keeps control of the already committed
  prefix (until ``arrival + rtc_commit_time``), then hands over to the new chunk over
  ``blend_time``. Each chunk is executed as predicted (no averaging of modes), and a policy
  trained or guided for RTC predicts a new chunk that agrees with the committed prefix, so
  the hand-over is seamless; a plain policy gets a short cross-fade instead.

In both modes a newer chunk fades in over ``blend_time`` from the moment it takes effect.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

ACTION_SPACES = ("joint_position", "joint_delta", "ee_pose", "ee_pose_delta", "ee_twist")
BLEND_MODES = ("ensemble", "rtc")
INTERPOLATIONS = ("linear", "cubic")


class ChunkError(Exception):
    """A chunk that must not be executed; ``reason`` is a short counter key, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class RawChunk:
    """An ActionChunk message as plain data (see ``robot_brain/ros/control_msgs.py``).

    ``stamp`` is already converted to the control loop's monotonic clock (seconds).
    """

    stamp: float
    action_space: str
    horizon: int
    dt: float
    dim: int
    joint_names: tuple[str, ...]
    has_gripper: bool
    actions: np.ndarray
    model_id: str = ""
    step: int = 0


def values_per_waypoint(action_space: str, dof: int) -> int:
    """How many arm values one waypoint of ``action_space`` holds (without the gripper channel)."""
    if action_space in ("joint_position", "joint_delta"):
        return dof
    if action_space in ("ee_pose", "ee_pose_delta"):
        return 7
    if action_space == "ee_twist":
        return 6
    raise ChunkError("action_space", f"unknown action_space '{action_space}', expected one of {ACTION_SPACES}")


def validate(chunk: RawChunk, joint_count: int, max_dt: float = 1.0) -> np.ndarray:
    """Check a chunk's shape and values; returns the actions as a (horizon, dim) array.

    ``joint_count`` is the number of joints the joint-space actions refer to (the message's
    ``joint_names`` when given, else the arm's). Rejects NaN/inf anywhere, sizes that do not
    add up, non-positive or absurd ``dt``, and quaternions far from unit length.
    """
    expected = values_per_waypoint(chunk.action_space, joint_count) + (1 if chunk.has_gripper else 0)
    if chunk.horizon < 1:
        raise ChunkError("size", f"horizon must be >= 1, found {chunk.horizon}")
    if chunk.dim != expected:
        raise ChunkError(
            "size", f"{chunk.action_space} with has_gripper={chunk.has_gripper} needs dim {expected}, found {chunk.dim}"
        )
    if chunk.actions.shape != (chunk.horizon * chunk.dim,):
        raise ChunkError(
            "size", f"expected horizon*dim = {chunk.horizon * chunk.dim} actions, found {chunk.actions.size}"
        )
    if not (math.isfinite(chunk.dt) and 0.0 < chunk.dt <= max_dt):
        raise ChunkError("dt", f"dt must be in (0, {max_dt}] s, found {chunk.dt}")
    if not math.isfinite(chunk.stamp):
        raise ChunkError("stamp", "the chunk's stamp is not a finite time")
    values = chunk.actions.reshape(chunk.horizon, chunk.dim)
    if not np.isfinite(values).all():
        raise ChunkError("nan", "the chunk contains NaN or infinite values")
    if chunk.action_space in ("ee_pose", "ee_pose_delta"):
        norms = np.linalg.norm(values[:, 3:7], axis=1)
        if np.any(np.abs(norms - 1.0) > 0.1):
            raise ChunkError("quaternion", f"quaternions must have unit norm, found norms {norms.round(3).tolist()}")
    return values


def distinct_floats(count: int) -> list[float]:
    """``count`` zeros that are distinct float objects, for a buffer the control loop overwrites.

    ``[0.0] * count`` repeats one shared constant: the first write of each entry then keeps a
    new float alive (an allocation in the loop, a chunk's first sample), while overwriting a
    float the buffer alone holds frees one for each one stored.
    """
    return [index * 0.0 for index in range(count)]


def first_kept_waypoint(stamp: float, dt: float, horizon: int, now: float) -> int:
    """Index of the first waypoint to keep: the last one not after ``now`` (never past the last one)."""
    elapsed = math.floor((now - stamp) / dt)
    return min(max(elapsed, 0), horizon - 1)


@dataclass
class JointChunk:
    """A chunk converted to joint space: waypoint times (loop clock) and joint positions.

    ``values`` has one row per waypoint: the arm joints, then the gripper channel when
    ``has_gripper``. After the last waypoint the chunk holds its last value. ``arrival`` is
    when the chunk takes effect (its blend starts there); ``received`` when it reached the
    controller (the chunk watchdog's clock; ``None``: same as ``arrival``).
    """

    times: np.ndarray
    values: np.ndarray
    has_gripper: bool
    stamp: float
    arrival: float
    space: str = "joint_position"
    interpolation: str = "cubic"
    received: float | None = None
    _times: list[float] = field(init=False, repr=False)
    _polynomials: list[tuple[list[float], list[float], list[float], list[float]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.received is None:
            self.received = self.arrival
        self._times = self.times.tolist()
        count = len(self._times)
        tangents = np.zeros_like(self.values)
        if self.interpolation == "cubic" and count >= 3:
            # Catmull-Rom tangents inside; the last tangent is 0 so an unreplaced chunk comes to rest.
            tangents[1:-1] = (self.values[2:] - self.values[:-2]) / (self.times[2:] - self.times[:-2])[:, None]
            tangents[0] = (self.values[1] - self.values[0]) / (self.times[1] - self.times[0])
        # Per segment, the polynomial in s = (t - t_i) / h, coefficients of 1, s, s², s³ as lists of
        # floats: sampling is then plain float arithmetic into a reused buffer (the hot path).
        a, b = self.values[:-1], self.values[1:]
        h = np.diff(self.times)[:, None]
        m0, m1 = h * tangents[:-1], h * tangents[1:]
        if self.interpolation == "linear":
            coefficients = (a, b - a, np.zeros_like(a), np.zeros_like(a))
        else:
            coefficients = (a, m0, 3 * (b - a) - 2 * m0 - m1, 2 * (a - b) + m0 + m1)
        self._polynomials = [
            (c0, c1, c2, c3) for c0, c1, c2, c3 in zip(*(c.tolist() for c in coefficients), strict=True)
        ]
        self._first: list[float] = self.values[0].tolist()
        self._last: list[float] = self.values[-1].tolist()
        self.width: int = int(self.values.shape[1])
        self._out = distinct_floats(self.width)
        self._sampled_at = math.nan

    @property
    def end(self) -> float:
        return self._times[-1]

    def sample(self, t: float) -> np.ndarray:
        """The interpolated waypoint value at loop time ``t`` (held outside the chunk's span), as a new array."""
        return np.array(self.sample_values(t))

    def sample_values(self, t: float) -> list[float]:
        """The value at ``t`` in this chunk's own buffer (overwritten by the next call at another time).

        Allocates nothing: the control loop samples every period.
        """
        out = self._out
        if t == self._sampled_at:
            return out
        self._sampled_at = t
        times = self._times
        width = self.width
        if t <= times[0] or t >= times[-1]:
            row = self._first if t <= times[0] else self._last
            j = 0
            while j < width:  # not ``for``: its iterator would be an allocation per period
                out[j] = row[j]
                j += 1
            return out
        i = bisect.bisect_right(times, t) - 1
        s = (t - times[i]) / (times[i + 1] - times[i])
        c0, c1, c2, c3 = self._polynomials[i]
        j = 0
        while j < width:
            out[j] = c0[j] + s * (c1[j] + s * (c2[j] + s * c3[j]))
            j += 1
        return out


@dataclass
class _Layer:
    """One hand-over: from ``start`` the output fades over ``blend_time`` toward this layer's chunks."""

    chunks: list[JointChunk]
    weights: list[float]
    start: float
    value: list[float] = field(default_factory=list)


class Blender:
    """Turns a stream of joint-space chunks into one continuous target trajectory.

    Used only by the control loop's thread. Every accepted chunk opens a *layer*; the output
    at ``t`` folds the layers oldest to newest, each cross-fading from what came before. A
    layer fully faded in makes all older ones irrelevant, so they are pruned and at most a
    few layers are alive at once. :meth:`sample_into` allocates nothing (the loop's path);
    :meth:`sample` returns a new array.
    """

    def __init__(
        self,
        mode: str = "rtc",
        blend_time: float = 0.1,
        rtc_commit_time: float = 0.0,
        ensemble_decay: float = 5.0,
        max_chunks: int = 16,
    ) -> None:
        if mode not in BLEND_MODES:
            raise ValueError(f"blend_mode must be one of {BLEND_MODES}, found '{mode}'")
        self.mode = mode
        self.blend_time = max(blend_time, 1e-6)
        self.rtc_commit_time = max(rtc_commit_time, 0.0)
        self.ensemble_decay = ensemble_decay
        self.max_chunks = max_chunks
        self._layers: list[_Layer] = []
        self._out: list[float] = []

    @property
    def active(self) -> bool:
        return bool(self._layers)

    @property
    def newest_stamp(self) -> float:
        return self._layers[-1].chunks[-1].stamp if self._layers else -math.inf

    def clear(self) -> None:
        self._layers.clear()

    def add(self, chunk: JointChunk) -> None:
        """Start executing ``chunk``; the caller has rejected chunks older than :attr:`newest_stamp`."""
        if not self._layers:
            self._layers.append(_Layer([chunk], [1.0], chunk.arrival))
            return
        if self.mode == "rtc":
            self._layers.append(_Layer([chunk], [1.0], chunk.arrival + self.rtc_commit_time))
            return
        # Ensemble: the new layer averages the new chunk with every chunk of the newest layer
        # that has not ended yet (chunks past their end have no prediction for "now").
        previous = self._layers[-1]
        kept = [c for c in previous.chunks if c.end > chunk.arrival][-(self.max_chunks - 1) :]
        chunks = [*kept, chunk]
        weights = [math.exp(self.ensemble_decay * (c.stamp - chunk.stamp)) for c in chunks]
        self._layers.append(_Layer(chunks, weights, chunk.arrival, distinct_floats(chunk.width)))

    def sample(self, t: float) -> np.ndarray | None:
        """The blended target at loop time ``t`` as a new array (None when no chunk was ever added)."""
        if not self._layers:
            return None
        width = self._layers[-1].chunks[-1].width
        if len(self._out) != width:
            self._out = [0.0] * width
        self.sample_into(t, self._out)
        return np.array(self._out)

    def sample_into(self, t: float, out: list[float]) -> bool:
        """Write the blended target at ``t`` into ``out`` (one entry per chunk column); False when empty."""
        layers = self._layers
        if not layers:
            return False
        self._prune(t)
        width = len(out)
        value = self._layer_value(layers[0], t)
        j = 0
        while j < width:  # while loops: a ``for`` loop's iterator is an allocation per period
            out[j] = value[j]
            j += 1
        count = len(layers)
        index = 1
        while index < count:
            layer = layers[index]
            index += 1
            alpha = (t - layer.start) / self.blend_time
            if alpha <= 0.0:
                continue
            if alpha > 1.0:
                alpha = 1.0
            value = self._layer_value(layer, t)
            j = 0
            while j < width:
                out[j] += alpha * (value[j] - out[j])
                j += 1
        return True

    def _prune(self, t: float) -> None:
        layers = self._layers
        index = len(layers) - 1
        while index > 0:
            if t >= layers[index].start + self.blend_time:
                del layers[:index]
                return
            index -= 1

    def _layer_value(self, layer: _Layer, t: float) -> list[float]:
        chunks = layer.chunks
        count = len(chunks)
        if count == 1:
            return chunks[0].sample_values(t)
        value = layer.value
        width = len(value)
        j = 0
        while j < width:
            value[j] = 0.0
            j += 1
        newest = chunks[count - 1]
        weights = layer.weights
        total = 0.0
        k = 0
        while k < count:
            chunk = chunks[k]
            weight = weights[k]
            k += 1
            # A chunk fades out over the last blend_time before its end, so leaving the
            # average is continuous; the layer's newest chunk never leaves (it holds).
            if chunk is not newest:
                fade = (chunk.end - t) / self.blend_time
                weight *= 0.0 if fade < 0.0 else 1.0 if fade > 1.0 else fade
            if weight <= 0.0:
                continue
            sample = chunk.sample_values(t)
            j = 0
            while j < width:
                value[j] += weight * sample[j]
                j += 1
            total += weight
        j = 0
        while j < width:
            value[j] /= total  # the newest chunk always has weight > 0
            j += 1
        return value
