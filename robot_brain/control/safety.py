"""The one safety filter every arm command passes through, whatever its source.

Pure numpy, no ROS. The filter turns a *target* joint position (from a policy chunk, teleop
or a halt) into the next *commanded* position one control period later, such that the
stream of commands satisfies, per joint and at every step:

* position inside ``[lower + margin, upper - margin]`` (continuous joints are unbounded);
* velocity ``|q_k - q_{k-1}| / dt`` at most the velocity limit;
* acceleration ``|v_k - v_{k-1}| / dt`` at most the acceleration limit.

Why it can promise all three at once: it keeps the invariant that, from every commanded
state, braking at the acceleration limit stops inside the position limits. The largest
velocity toward a bound at distance ``d`` that keeps this true in discrete time is
``a * (sqrt(dt² + 2 d / a) - dt)`` (see :func:`braking_speed`); braking by ``a·dt`` per step
from a state that met it meets it again, so the velocity, acceleration and braking clamps
never contradict each other once the filter starts at rest inside the limits.

Other guards: non-finite or wrong-sized targets are rejected (counted, never forwarded; the
filter brakes instead); the target is kept within ``max_step`` of the *measured* position so
the command cannot run away from an arm that does not follow; an optional Cartesian box
bounds the tip, checked at the configuration where the arm would stop if it braked now.

The core step (:func:`limit_step`) broadcasts over leading batch axes so that property
tests can push 10⁵ steps through it quickly; :class:`SafetyFilter` wraps it with state,
counters and the optional workspace check for the control loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from robot_brain.errors import ConfigurationError

#: Names of the limit counters reported in diagnostics, in a fixed order.
LIMIT_NAMES = ("position", "velocity", "acceleration", "max_step", "workspace", "rejected")


@dataclass(frozen=True)
class SafetyLimits:
    """Per-joint limits the command stream must respect (arrays aligned with the arm's joints).

    ``lower``/``upper`` already include the safety margin; use :meth:`from_spec` to build
    them from URDF limits and configuration scales.
    """

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    max_step: np.ndarray
    workspace_min: np.ndarray | None = None
    workspace_max: np.ndarray | None = None

    def __post_init__(self) -> None:
        dof = self.lower.shape[0]
        for name in ("upper", "velocity", "acceleration", "max_step"):
            shape = getattr(self, name).shape
            if shape != (dof,):
                raise ConfigurationError(f"safety limit '{name}' must have {dof} values, found shape {shape}")
        if np.any(~(self.lower <= self.upper)):
            raise ConfigurationError(
                "safety limits: every lower bound must be <= its upper bound (after the margin)"
            )
        for name in ("velocity", "acceleration", "max_step"):
            values = getattr(self, name)
            if np.any(~(values > 0.0)) or np.any(~np.isfinite(values)):
                raise ConfigurationError(
                    f"safety limit '{name}' must be finite and > 0, found {values.tolist()}"
                )
        if (self.workspace_min is None) != (self.workspace_max is None):
            raise ConfigurationError("workspace box: give both workspace_min and workspace_max, or neither")
        if self.workspace_min is not None and self.workspace_max is not None:
            if self.workspace_min.shape != (3,) or self.workspace_max.shape != (3,):
                raise ConfigurationError(
                    "workspace box: workspace_min and workspace_max need 3 values each [x, y, z]"
                )
            if np.any(~(self.workspace_min < self.workspace_max)):
                raise ConfigurationError(
                    f"workspace box: expected min < max on every axis, found min {self.workspace_min.tolist()} "
                    f"max {self.workspace_max.tolist()}"
                )

    @property
    def dof(self) -> int:
        return int(self.lower.shape[0])

    @classmethod
    def from_spec(
        cls,
        lower: np.ndarray,
        upper: np.ndarray,
        velocity: np.ndarray,
        *,
        position_margin: float = 0.02,
        velocity_scale: float = 0.5,
        acceleration: Sequence[float] | float | None = None,
        acceleration_factor: float = 4.0,
        max_step: Sequence[float] | float = 0.2,
        workspace_min: Sequence[float] | None = None,
        workspace_max: Sequence[float] | None = None,
    ) -> SafetyLimits:
        """Limits from URDF values scaled by configuration.

        ``position_margin`` is taken off both ends (at most 10 % of a joint's range, so tiny
        prismatic ranges keep room to move). URDFs carry no acceleration limits: when
        ``acceleration`` is not given, each joint gets ``acceleration_factor`` times its
        (scaled) velocity limit, i.e. it reaches full speed in ``1 / factor`` seconds.
        """
        lower = np.asarray(lower, dtype=float)
        upper = np.asarray(upper, dtype=float)
        dof = lower.shape[0]
        if not 0.0 < velocity_scale <= 1.0:
            raise ConfigurationError(f"velocity_scale must be in (0, 1], found {velocity_scale}")
        if not (position_margin >= 0.0 and np.isfinite(position_margin)):
            raise ConfigurationError(f"position_margin must be >= 0, found {position_margin}")
        finite = np.isfinite(lower) & np.isfinite(upper)
        span = np.where(finite, upper - lower, np.inf)
        margin = np.minimum(position_margin, 0.1 * span)
        scaled_velocity = np.asarray(velocity, dtype=float) * velocity_scale
        if acceleration is None or (isinstance(acceleration, Sequence) and len(acceleration) == 0):
            if not acceleration_factor > 0.0:
                raise ConfigurationError(
                    f"acceleration_limit_factor must be > 0, found {acceleration_factor}"
                )
            accel = scaled_velocity * acceleration_factor
        else:
            accel = _per_joint(acceleration, dof, "acceleration_limits")
        return cls(
            lower=lower + margin,
            upper=upper - margin,
            velocity=scaled_velocity,
            acceleration=accel,
            max_step=_per_joint(max_step, dof, "max_step"),
            workspace_min=None if not workspace_min else np.asarray(workspace_min, dtype=float),
            workspace_max=None if not workspace_max else np.asarray(workspace_max, dtype=float),
        )


def _per_joint(values: Sequence[float] | float, dof: int, name: str) -> np.ndarray:
    """One value for all joints or one per joint, as a float array."""
    array = np.atleast_1d(np.asarray(values, dtype=float))
    if array.shape == (1,):
        array = np.full(dof, array[0])
    if array.shape != (dof,):
        raise ConfigurationError(f"{name}: expected 1 or {dof} values, found {array.shape[0]}")
    return array


def braking_speed(distance: float, acceleration: float, dt: float) -> float:
    """Largest speed toward a bound ``distance`` away from which braking at ``acceleration`` still stops in time.

    Solves ``v·dt + v²/(2a) = d``: one step at ``v`` then a stop at ``a``. Negative distances
    (already past the bound) give 0, i.e. no further motion outward; infinite ones (continuous
    joints) give infinity.
    """
    if distance <= 0.0:
        return 0.0
    if distance == math.inf:
        return math.inf
    return acceleration * (math.sqrt(dt * dt + 2.0 * distance / acceleration) - dt)


def limit_joint(
    position: float,
    velocity: float,
    previous_target: float,
    target: float,
    measured: float,
    lower: float,
    upper: float,
    max_velocity: float,
    max_acceleration: float,
    max_step: float,
    dt: float,
    activity: list[bool],
) -> tuple[float, float]:
    """One filtered step of one joint: the next commanded position and its velocity.

    Plain floats on purpose: for 5 to 7 joints a scalar loop is several times faster than
    numpy's per-call overhead, which keeps a step near 10 µs. ``previous_target`` gives the
    target's own velocity so a moving target is tracked without lag while a jump is
    approached at the braking speed (no overshoot). Entries of ``activity`` (indexed as
    :data:`LIMIT_NAMES`) are set when a limit changed the result.
    """
    amax_dt = max_acceleration * dt
    # Comparisons are inlined (no helper calls): this runs once per joint per period.
    # The target itself: inside the position limits and within max_step of the measurement.
    clipped = lower if target < lower else upper if target > upper else target
    low, high = measured - max_step, measured + max_step
    bounded = low if clipped < low else high if clipped > high else clipped
    # Desired velocity: the target's own velocity, plus closing the lag it had on the previous
    # step no faster than braking allows (so a jump is approached without overshoot and a
    # moving target is followed exactly once caught up).
    desired = (clipped - previous_target) / dt
    desired = -max_velocity if desired < -max_velocity else max_velocity if desired > max_velocity else desired
    residual = bounded - position - desired * dt
    if residual != 0.0:
        gap = -residual if residual < 0.0 else residual
        closing = gap / dt
        brake = braking_speed(gap, max_acceleration, dt)
        if brake < closing:
            closing = brake
        desired += closing if residual > 0.0 else -closing
    limited_v = -max_velocity if desired < -max_velocity else max_velocity if desired > max_velocity else desired
    low, high = velocity - amax_dt, velocity + amax_dt
    limited_a = low if limited_v < low else high if limited_v > high else limited_v
    # Position limits are hard: never faster toward a bound than braking allows.
    low = -braking_speed(position - lower, max_acceleration, dt)
    high = braking_speed(upper - position, max_acceleration, dt)
    new_velocity = low if limited_a < low else high if limited_a > high else limited_a
    if clipped != target or new_velocity != limited_a:
        activity[0] = True
    if limited_v != desired:
        activity[1] = True
    if limited_a != limited_v:
        activity[2] = True
    if bounded != clipped:
        activity[3] = True
    # Rounding guard only: never push outward past a bound (a start outside the limits is
    # brought back by the braking clamps above, not teleported).
    new_position = position + new_velocity * dt
    if new_position > upper and new_position > position:
        new_position = upper if upper > position else position
    elif new_position < lower and new_position < position:
        new_position = lower if lower < position else position
    return new_position, (new_position - position) / dt


def braking_target(position: np.ndarray, velocity: np.ndarray, limits: SafetyLimits, dt: float) -> np.ndarray:
    """The target that makes the filter decelerate at the acceleration limit toward rest."""
    speed = np.maximum(np.abs(velocity) - limits.acceleration * dt, 0.0)
    return position + np.sign(velocity) * speed * dt


class SafetyFilter:
    """Stateful per-arm filter: rejection of bad targets, :func:`limit_joint` per joint, counters, workspace box.

    The control loop calls :meth:`reset` with the measured position once, then :meth:`step`
    every period with the target (``None`` to brake). ``counts`` accumulates, per entry of
    :data:`LIMIT_NAMES`, the cycles in which that limit changed the command (any joint).
    """

    def __init__(
        self,
        limits: SafetyLimits,
        dt: float,
        tip_position: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        if not dt > 0.0:
            raise ConfigurationError(f"control period must be > 0, found {dt}")
        if limits.workspace_min is not None and tip_position is None:
            raise ConfigurationError("a workspace box needs forward kinematics (tip_position)")
        self.limits = limits
        self.dt = dt
        self._tip_position = tip_position if limits.workspace_min is not None else None
        self._rows = list(
            zip(
                limits.lower.tolist(),
                limits.upper.tolist(),
                limits.velocity.tolist(),
                limits.acceleration.tolist(),
                limits.max_step.tolist(),
                strict=True,
            )
        )
        self.position = np.zeros(limits.dof)
        self.velocity = np.zeros(limits.dof)
        self._previous_target = np.zeros(limits.dof)
        self.counts = np.zeros(len(LIMIT_NAMES), dtype=np.int64)
        self._moving = False
        self.seeded = False

    def reset(self, measured: np.ndarray) -> None:
        """Start at rest at the measured position (call when the loop starts or resumes)."""
        self.position = np.array(measured, dtype=float)
        self.velocity = np.zeros(self.limits.dof)
        self._previous_target = self.position.copy()
        self._moving = False
        self.seeded = True

    @property
    def moving(self) -> bool:
        """Whether the last command moved (kept as a bool: np.any costs microseconds per call)."""
        return self._moving

    def accepts(self, target: np.ndarray | None) -> bool:
        """Whether a target has the right size and only finite values (rejected ones are counted)."""
        if target is None:
            return False
        if target.shape != (self.limits.dof,) or not all(map(math.isfinite, target.tolist())):
            self.counts[5] += 1
            return False
        return True

    def step(self, target: np.ndarray | None, measured: np.ndarray, speed_scale: float = 1.0) -> np.ndarray:
        """The next command toward ``target`` (``None``, NaN/inf or wrong-sized: brake to rest).

        ``speed_scale`` in [0, 1] lowers the velocity limit (singularity slow-down); the
        acceleration limit still applies, so the slow-down itself is smooth.
        """
        if not self.accepts(target):
            target = braking_target(self.position, self.velocity, self.limits, self.dt)
            previous_target = self.position
        else:
            previous_target = self._previous_target
        activity = [False] * len(LIMIT_NAMES)
        position, velocity = self._limit(previous_target, target, measured, speed_scale, activity)
        if self._tip_position is not None and not self._inside_workspace(position, velocity):
            activity[4] = True
            brake = braking_target(self.position, self.velocity, self.limits, self.dt)
            position, velocity = self._limit(self.position, brake, measured, 1.0, [False] * len(LIMIT_NAMES))
        # np.minimum/maximum: np.clip costs ~10 µs per call on small arrays.
        self._previous_target = np.minimum(np.maximum(target, self.limits.lower), self.limits.upper)
        self.position = position
        self.velocity = velocity
        self.counts += activity
        return position

    def step_velocity(self, joint_velocity: np.ndarray, measured: np.ndarray, speed_scale: float = 1.0) -> np.ndarray:
        """The next command for a velocity source (teleop): move ``joint_velocity · dt`` from the last command."""
        target = self.position + joint_velocity * self.dt
        self._previous_target = self.position
        return self.step(target, measured, speed_scale)

    def _limit(
        self,
        previous_target: np.ndarray,
        target: np.ndarray,
        measured: np.ndarray,
        speed_scale: float,
        activity: list[bool],
    ) -> tuple[np.ndarray, np.ndarray]:
        positions: list[float] = []
        velocities: list[float] = []
        dt = self.dt
        for row, p, v, prev, goal, meas in zip(
            self._rows,
            self.position.tolist(),
            self.velocity.tolist(),
            previous_target.tolist(),
            target.tolist(),
            measured.tolist(),
            strict=True,
        ):
            lower, upper, vmax, amax, max_step = row
            new_p, new_v = limit_joint(
                p, v, prev, goal, meas, lower, upper, vmax * speed_scale, amax, max_step, dt, activity
            )
            positions.append(new_p)
            velocities.append(new_v)
        self._moving = any(velocities)
        return np.array(positions), np.array(velocities)

    def _inside_workspace(self, position: np.ndarray, velocity: np.ndarray) -> bool:
        """True when stopping from the candidate state leaves the tip in the box, or no further out than now."""
        assert self._tip_position is not None and self.limits.workspace_min is not None
        assert self.limits.workspace_max is not None
        low, high = self.limits.workspace_min, self.limits.workspace_max

        def excess(q: np.ndarray, v: np.ndarray) -> float:
            stop = np.clip(
                q + v * np.abs(v) / (2.0 * self.limits.acceleration), self.limits.lower, self.limits.upper
            )
            tip = self._tip_position(stop)
            return float(np.sum(np.maximum(low - tip, 0.0) + np.maximum(tip - high, 0.0)))

        candidate = excess(position, velocity)
        return candidate == 0.0 or candidate <= excess(self.position, self.velocity) + 1e-9


class GripperFilter:
    """Gripper command in [0, 1] (0 open, 1 closed): rejects non-finite values, clamps, limits the rate."""

    def __init__(self, max_speed: float, dt: float) -> None:
        if not max_speed > 0.0:
            raise ConfigurationError(
                f"gripper_max_speed must be > 0 (fraction per second), found {max_speed}"
            )
        self.max_delta = max_speed * dt
        self.value: float | None = None
        self.rejected = 0

    def step(self, target: float | None) -> float | None:
        """The next gripper command, or the previous one (None before any valid target)."""
        if target is None:
            return self.value
        if not np.isfinite(target):
            self.rejected += 1
            return self.value
        target = min(max(float(target), 0.0), 1.0)
        if self.value is None:
            self.value = target
        else:
            self.value += min(max(target - self.value, -self.max_delta), self.max_delta)
        return self.value
