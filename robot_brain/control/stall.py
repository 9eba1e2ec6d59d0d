"""Knowing when the arm is stuck short of what the policy asks, and why (ROS-free).

An end-effector chunk asks for tool poses; the IK turns them into joint positions, one
waypoint after the other, and stops at the first it cannot reach. Right after a chunk is
converted, the *residual* is the distance from the chunk's last requested tool position to
where the reachable part of the chunk leaves the tool. While the arm follows, the residual
stays at the IK's tolerance. When a joint pins the chain against a limit, or the solution
branch the arm is on cannot continue, the residual grows and stays. The policy keeps asking
from where the tool is, so the gap does not close.

:class:`StallMonitor` sees the residual of every converted chunk. It declares a stall when
the residual stays above ``min_residual`` for ``window`` seconds without falling by
``min_progress`` of its value. A :class:`Stall` names the joints sitting at a limit, which
limit, and the residual, so diagnostics and a failed episode can say why instead of just
timing out.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

#: A joint this close to a limit (rad or m, or this fraction of its range if smaller) is "at" it.
AT_LIMIT_TOLERANCE = 0.02
AT_LIMIT_RANGE_FRACTION = 0.01


@dataclass(frozen=True)
class JointAtLimit:
    joint: str
    limit: str  # "lower" or "upper"
    value: float


@dataclass(frozen=True)
class Stall:
    """The arm has stopped short of the commanded pose: since when, by how much, against which limits."""

    since: float  # loop time the residual stopped falling
    residual: float  # m, tool position asked for vs reachable
    at_limits: tuple[JointAtLimit, ...]
    observed: float = 0.0  # loop time of the chunk that last confirmed it

    def current(self, now: float, horizon: float) -> bool:
        """Still confirmed by a chunk within ``horizon`` seconds of ``now`` (the policy may have stopped)."""
        return now - self.observed <= horizon

    def describe(self) -> str:
        if self.at_limits:
            limits = ", ".join(f"{j.joint} at its {j.limit} limit ({j.value:+.3f})" for j in self.at_limits)
            cause = f"{limits}"
        else:
            cause = "no joint at a limit (the IK's local step cannot continue on this branch)"
        return f"stalled {self.residual * 100:.1f} cm short of the commanded tool position: {cause}"


def joints_at_limits(
    names: tuple[str, ...], q: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[JointAtLimit, ...]:
    """The joints of ``q`` within :data:`AT_LIMIT_TOLERANCE` of a finite limit."""
    found: list[JointAtLimit] = []
    for name, value, low, high in zip(names, q, lower, upper, strict=True):
        span = high - low if math.isfinite(high - low) else math.inf
        tolerance = min(AT_LIMIT_TOLERANCE, AT_LIMIT_RANGE_FRACTION * span)
        if math.isfinite(low) and value <= low + tolerance:
            found.append(JointAtLimit(name, "lower", float(value)))
        elif math.isfinite(high) and value >= high - tolerance:
            found.append(JointAtLimit(name, "upper", float(value)))
    return tuple(found)


class StallMonitor:
    """Declares a stall from the residuals of consecutive end-effector chunks (one thread: the converter's)."""

    def __init__(self, window: float = 1.0, min_residual: float = 0.01, min_progress: float = 0.1) -> None:
        if window <= 0.0 or min_residual <= 0.0 or not 0.0 < min_progress < 1.0:
            raise ValueError(
                f"stall monitor: expected window > 0, min_residual > 0 and 0 < min_progress < 1, found "
                f"{window}, {min_residual}, {min_progress}")
        self.window = window
        self.min_residual = min_residual
        self.min_progress = min_progress
        self._history: deque[tuple[float, float]] = deque()
        self.stall: Stall | None = None

    def clear(self) -> None:
        self._history.clear()
        self.stall = None

    def observe(
        self, now: float, residual: float, at_limits: tuple[JointAtLimit, ...] = ()
    ) -> Stall | None:
        """Feed one chunk's residual at loop time ``now``; returns the current stall (None: progressing)."""
        if not math.isfinite(residual) or residual < self.min_residual:
            self.clear()
            return None
        history = self._history
        history.append((now, residual))
        while len(history) > 1 and now - history[1][0] >= self.window:
            history.popleft()  # keep one sample at least a window old
        start, first = history[0]
        if now - start < self.window:
            return self.stall
        if residual > first * (1.0 - self.min_progress):
            since = start if self.stall is None else self.stall.since
            self.stall = Stall(since, residual, at_limits, now)
        else:
            self.stall = None
        return self.stall
