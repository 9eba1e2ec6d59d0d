"""Lock-protected hand-over between the ROS callbacks and the control loop's thread (ROS-free).

Callbacks (executor thread) write; the loop reads the latest value without ever waiting
on DDS. Writers publish an immutable object with one reference assignment (atomic in
CPython), so the loop's reads take no lock and allocate nothing; locks only guard the
writers' own bookkeeping (history, FIFO), each held for a few assignments.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class StateSample:
    """Arm joint positions (arm order), the time they were measured and the time they arrived (loop clock).

    ``values`` holds the same positions as Python floats, converted once on arrival so the
    control loop's scalar code reads them without a conversion per cycle.
    """

    positions: np.ndarray
    stamp: float
    received: float
    values: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.values:
            object.__setattr__(self, "values", tuple(self.positions.tolist()))


class StateBuffer:
    """The latest measured joint state plus a short history for lookups at a chunk's observation time."""

    def __init__(self, dof: int, history: int = 1024) -> None:
        self.dof = dof
        self._lock = threading.Lock()
        self._latest: StateSample | None = None
        self._history: deque[StateSample] = deque(maxlen=history)
        self.rejected = 0

    def update(self, positions: np.ndarray, stamp: float, received: float) -> bool:
        """Store a measurement; non-finite or wrong-sized ones are counted and ignored."""
        if positions.shape != (self.dof,) or not np.isfinite(positions).all():
            self.rejected += 1
            return False
        # A copy: the caller may reuse its array (the controller's own command, a message buffer).
        sample = StateSample(np.array(positions, dtype=float), stamp, received)
        with self._lock:
            self._latest = sample
            self._history.append(sample)
        return True

    def latest(self) -> StateSample | None:
        """The newest sample (lock-free: one reference read; the sample is immutable)."""
        return self._latest

    def at(self, t: float) -> np.ndarray | None:
        """The measurement closest to (and preferably not after) time ``t``; the oldest one if ``t`` is older."""
        with self._lock:
            for sample in reversed(self._history):
                if sample.stamp <= t:
                    return sample.positions
            return self._history[0].positions if self._history else None

    def clear(self) -> None:
        with self._lock:
            self._latest = None
            self._history.clear()


class Latest(Generic[T]):
    """The most recent value of something (a teleop twist, a gripper request) and when it arrived.

    The value, its arrival time and a sequence number are published together as one tuple,
    so :meth:`get` is a lock-free read that allocates nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry: tuple[T | None, float, int] = (None, -math.inf, 0)

    def put(self, value: T, received: float) -> None:
        with self._lock:
            self._entry = (value, received, self._entry[2] + 1)

    def get(self) -> tuple[T | None, float, int]:
        """(value, arrival time, sequence number); the sequence tells the reader whether it is new."""
        return self._entry

    def clear(self) -> None:
        with self._lock:
            self._entry = (None, -math.inf, self._entry[2])


class Inbox(Generic[T]):
    """A bounded FIFO of items for the loop; the oldest are dropped when it is full (counted)."""

    def __init__(self, capacity: int = 8) -> None:
        self._lock = threading.Lock()
        self._items: deque[T] = deque(maxlen=capacity)
        self.overflowed = 0

    def put(self, item: T) -> None:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.overflowed += 1
            self._items.append(item)

    @property
    def pending(self) -> bool:
        """Whether anything waits (lock-free: the loop checks this every cycle, takes only when true)."""
        return bool(self._items)

    def take(self) -> list[T]:
        with self._lock:
            if not self._items:
                return []
            items = list(self._items)
            self._items.clear()
            return items
