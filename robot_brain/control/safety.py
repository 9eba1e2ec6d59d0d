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
the command cannot run away from an arm that does not follow (braking needs no such bound: it
decelerates monotonically from the last command and stops within ``v²/2a``); an optional
Cartesian box bounds the tip, checked at the configuration where the arm would stop if it
braked now.

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

_sqrt = math.sqrt
_INF = math.inf

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
    dt2 = dt * dt
    # Comparisons and braking_speed are inlined (no helper calls): this runs once per joint per period.
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
        brake = max_acceleration * (_sqrt(dt2 + 2.0 * gap / max_acceleration) - dt)  # braking_speed(gap)
        if brake < closing:
            closing = brake
        desired += closing if residual > 0.0 else -closing
    limited_v = -max_velocity if desired < -max_velocity else max_velocity if desired > max_velocity else desired
    low, high = velocity - amax_dt, velocity + amax_dt
    limited_a = low if limited_v < low else high if limited_v > high else limited_v
    # Position limits are hard: never faster toward a bound than braking allows (braking_speed inlined).
    room = position - lower
    low = (
        -0.0 if room <= 0.0 else -_INF if room == _INF
        else -(max_acceleration * (_sqrt(dt2 + 2.0 * room / max_acceleration) - dt))
    )
    room = upper - position
    high = (
        0.0 if room <= 0.0 else _INF if room == _INF
        else max_acceleration * (_sqrt(dt2 + 2.0 * room / max_acceleration) - dt)
    )
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


# What a step's target means (SafetyFilter._advance).
_POSITION, _VELOCITY, _BRAKE = 0, 1, 2


class SafetyFilter:
    """Stateful per-arm filter: rejection of bad targets, :func:`limit_joint` per joint, counters, workspace box.

    The control loop calls :meth:`reset` with the measured position once, then every period
    :meth:`advance` (a position target), :meth:`advance_velocity` (a joint velocity) or
    :meth:`brake`. These three allocate nothing (unless a workspace box is set: its check
    runs forward kinematics): the state lives in preallocated Python lists (for 5 to 7
    joints a scalar loop over floats beats numpy's per-call overhead several times over), the
    loops are ``while`` loops (a ``for`` loop allocates an iterator), and :attr:`position`
    and :attr:`velocity` are numpy arrays updated *in place* (copy them to keep a value).
    :meth:`step` and :meth:`step_velocity` are the same steps for arrays, returning a new
    array each call (tests, tools). ``counts`` gives, per entry of :data:`LIMIT_NAMES`, the
    cycles in which that limit changed the command (any joint).
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
        self.dof = dof = limits.dof
        self._tip_position = tip_position if limits.workspace_min is not None else None
        self._lower: list[float] = limits.lower.tolist()
        self._upper: list[float] = limits.upper.tolist()
        self._max_velocity: list[float] = limits.velocity.tolist()
        self._max_acceleration: list[float] = limits.acceleration.tolist()
        self._max_step: list[float] = limits.max_step.tolist()
        # Commanded state (position, velocity, previous clipped target) and the next one being
        # computed; the two sets are swapped after each step, so nothing is allocated.
        self._p, self._v, self._prev = [0.0] * dof, [0.0] * dof, [0.0] * dof
        self._next_p, self._next_v, self._next_prev = [0.0] * dof, [0.0] * dof, [0.0] * dof
        self.position = np.zeros(dof)
        self.velocity = np.zeros(dof)
        self._activity = [False] * len(LIMIT_NAMES)
        self._spare_activity = [False] * len(LIMIT_NAMES)
        # Floats, not ints: an int above 256 is a new object at every increment, a float comes
        # from CPython's free list (exact up to 2**53 counts).
        self._counts = [0.0] * len(LIMIT_NAMES)
        self._moving = False
        self.seeded = False

    def reset(self, measured: np.ndarray | Sequence[float]) -> None:
        """Start at rest at the measured position (call when the loop starts or resumes)."""
        values = [float(x) for x in measured]
        if len(values) != self.dof:
            raise ValueError(f"expected {self.dof} measured positions, found {len(values)}")
        self._p[:] = values
        self._prev[:] = values
        self._v[:] = [0.0] * self.dof
        self._mirror()
        self._moving = False
        self.seeded = True

    @property
    def moving(self) -> bool:
        """Whether the last command moved (kept as a bool: np.any costs microseconds per call)."""
        return self._moving

    @property
    def counts(self) -> np.ndarray:
        """Per entry of :data:`LIMIT_NAMES`, the steps in which that limit changed the command."""
        return np.array(self._counts, dtype=np.int64)

    def accepts(self, target: np.ndarray | None) -> bool:
        """Whether a target has the right size and only finite values (rejected ones are counted)."""
        if target is None:
            return False
        if target.shape != (self.dof,) or not all(map(math.isfinite, target.tolist())):
            self._counts[5] += 1.0
            return False
        return True

    # -- array API (allocates its result) -------------------------------------------------

    def step(self, target: np.ndarray | None, measured: np.ndarray, speed_scale: float = 1.0) -> np.ndarray:
        """The next command toward ``target`` (``None``, NaN/inf or wrong-sized: brake to rest), as a new array.

        ``speed_scale`` in [0, 1] lowers the velocity limit (singularity slow-down); the
        acceleration limit still applies, so the slow-down itself is smooth.
        """
        if self.accepts(target):
            assert target is not None
            self._advance(_POSITION, target.tolist(), measured.tolist(), speed_scale)
        else:
            self._advance(_BRAKE, None, measured.tolist(), 1.0)
        return self.position.copy()

    def step_velocity(self, joint_velocity: np.ndarray, measured: np.ndarray, speed_scale: float = 1.0) -> np.ndarray:
        """The next command for a velocity source (teleop): move ``joint_velocity · dt`` from the last command."""
        if joint_velocity.shape != (self.dof,):
            self._counts[5] += 1.0
            self._advance(_BRAKE, None, measured.tolist(), 1.0)
        else:
            self.advance_velocity(joint_velocity.tolist(), measured.tolist(), speed_scale)
        return self.position.copy()

    # -- the control loop's steps (allocate nothing) ------------------------------------------

    def advance(self, target: Sequence[float] | None, measured: Sequence[float], speed_scale: float = 1.0) -> None:
        """One step toward a position target (arm order; entries past ``dof`` are ignored, e.g. a gripper channel).

        ``None`` brakes; a target with a non-finite joint or fewer than ``dof`` values is
        counted as rejected and brakes too. ``measured`` holds ``dof`` finite positions (the
        ``max_step`` bound; braking ignores it and decelerates monotonically).
        """
        if target is None:
            self._advance(_BRAKE, None, measured, 1.0)
        elif self._finite(target):
            self._advance(_POSITION, target, measured, speed_scale)
        else:
            self._counts[5] += 1.0
            self._advance(_BRAKE, None, measured, 1.0)

    def advance_velocity(
        self, joint_velocity: Sequence[float], measured: Sequence[float], speed_scale: float = 1.0
    ) -> None:
        """One step of a velocity source: toward ``position + joint_velocity · dt`` (bad input: counted, brake)."""
        if self._finite(joint_velocity):
            self._advance(_VELOCITY, joint_velocity, measured, speed_scale)
        else:
            self._counts[5] += 1.0
            self._advance(_BRAKE, None, measured, 1.0)

    def brake(self) -> None:
        """One step toward rest at the acceleration limit, from the last command.

        The fallback after a fault: it uses only this filter's own state, so whatever failed
        upstream (blending, IK, teleop, the joint-state input) cannot stop the arm from
        braking. The workspace box is not checked: braking is what its check falls back to.
        """
        self._advance(_BRAKE, None, self._p, 1.0, check_workspace=False)

    def _finite(self, values: Sequence[float]) -> bool:
        if len(values) < self.dof:
            return False
        isfinite = math.isfinite
        j = 0
        while j < self.dof:
            if not isfinite(values[j]):
                return False
            j += 1
        return True

    def _advance(
        self,
        mode: int,
        target: Sequence[float] | None,
        measured: Sequence[float],
        speed_scale: float,
        check_workspace: bool = True,
    ) -> None:
        activity = self._activity
        activity[0] = activity[1] = activity[2] = activity[3] = activity[4] = activity[5] = False
        if mode == _BRAKE:
            # Braking decelerates monotonically from the last command: no max_step pull toward
            # the measurement (a stuck or lagging arm would make the command reverse and speed
            # up). It cannot run away: it stops within v²/2a.
            measured = self._p
        self._limit(mode, target, measured, speed_scale, activity)
        if check_workspace and self._tip_position is not None and not self._inside_workspace():
            activity[4] = True
            self._limit(_BRAKE, None, self._p, 1.0, self._spare_activity)
        # Commit: the computed state becomes the commanded one (swap, no copies).
        self._p, self._next_p = self._next_p, self._p
        self._v, self._next_v = self._next_v, self._v
        self._prev, self._next_prev = self._next_prev, self._prev
        self._mirror()
        counts = self._counts
        k = 0
        while k < 6:
            if activity[k]:
                counts[k] += 1.0
            k += 1

    def _limit(
        self,
        mode: int,
        target: Sequence[float] | None,
        measured: Sequence[float],
        speed_scale: float,
        activity: list[bool],
    ) -> None:
        """Fill ``_next_p``/``_next_v``/``_next_prev`` from the commanded state; one :func:`limit_joint` per joint."""
        dt = self.dt
        positions, velocities, previous = self._p, self._v, self._prev
        next_p, next_v, next_prev = self._next_p, self._next_v, self._next_prev
        lower, upper = self._lower, self._upper
        max_velocity, max_acceleration, max_step = self._max_velocity, self._max_acceleration, self._max_step
        moving = False
        j = 0
        while j < self.dof:  # not ``for``: its iterator would be an allocation per step
            p = positions[j]
            v = velocities[j]
            amax = max_acceleration[j]
            if mode == _POSITION:
                goal = target[j]  # type: ignore[index]
                prev = previous[j]
            elif mode == _VELOCITY:
                goal = p + target[j] * dt  # type: ignore[index]
                prev = p
            else:  # brake: decelerate at the limit toward rest
                speed = (v if v >= 0.0 else -v) - amax * dt
                if speed < 0.0:
                    speed = 0.0
                goal = p + speed * dt if v > 0.0 else p - speed * dt if v < 0.0 else p
                prev = p
            low, high = lower[j], upper[j]
            new_p, new_v = limit_joint(
                p, v, prev, goal, measured[j], low, high, max_velocity[j] * speed_scale, amax, max_step[j], dt, activity
            )
            next_p[j] = new_p
            next_v[j] = new_v
            next_prev[j] = low if goal < low else high if goal > high else goal
            if new_v != 0.0:
                moving = True
            j += 1
        self._moving = moving

    def _mirror(self) -> None:
        """Copy the commanded state into the public arrays, element by element (no temporary)."""
        position, velocity, p, v = self.position, self.velocity, self._p, self._v
        j = 0
        while j < self.dof:
            position[j] = p[j]
            velocity[j] = v[j]
            j += 1

    def _inside_workspace(self) -> bool:
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

        candidate = excess(np.array(self._next_p), np.array(self._next_v))
        return candidate == 0.0 or candidate <= excess(np.array(self._p), np.array(self._v)) + 1e-9


class GripperFilter:
    """Gripper command in [0, 1] (0 open, 1 closed): rejects non-finite values, clamps, limits the rate.

    The rate limit needs a starting point: :meth:`seed` it with the measured opening (or
    keep the last command) before the first target. Only a filter that was never seeded nor
    commanded takes its first target as is: there is nothing to limit from.
    """

    def __init__(self, max_speed: float, dt: float) -> None:
        if not max_speed > 0.0:
            raise ConfigurationError(
                f"gripper_max_speed must be > 0 (fraction per second), found {max_speed}"
            )
        self.max_delta = max_speed * dt
        self.value: float | None = None
        self.rejected = 0

    def seed(self, value: float) -> bool:
        """Start from ``value`` (clamped to [0, 1]); non-finite values are rejected (counted)."""
        if not math.isfinite(value):
            self.rejected += 1
            return False
        self.value = 0.0 if value < 0.0 else 1.0 if value > 1.0 else float(value)
        return True

    def step(self, target: float | None) -> float | None:
        """The next gripper command, or the previous one (None before any valid target or seed)."""
        if target is None:
            return self.value
        if not math.isfinite(target):
            self.rejected += 1
            return self.value
        target = 0.0 if target < 0.0 else 1.0 if target > 1.0 else float(target)
        value = self.value
        if value is None:
            self.value = target
        else:
            delta = target - value
            limit = self.max_delta
            self.value = value + (-limit if delta < -limit else limit if delta > limit else delta)
        return self.value
