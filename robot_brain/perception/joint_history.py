"""Joint states by time: the arm's configuration at a camera frame's stamp.

A camera frame is exposed at one instant and reaches perception tens of milliseconds later,
while ``/joint_states`` streams at hundreds of hertz. Masking the arm where it is *now*
would miss a moving arm by its speed times the camera's latency, so the history keeps a
bounded window of samples and answers "where was every joint at time t": linear
interpolation between the two samples around t (the shorter way round for continuous
joints), the nearest sample when t lies just outside the window, and a status instead of
a guess when no sample is close enough or an arm joint was never received.

Messages may carry any subset of the joints (a gripper driver often publishes its own);
each sample stores every joint, with the last value received for the ones it lacks.
Thread-safe: joint states arrive on one thread while frames are processed on another.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from robot_brain.errors import ConfigurationError

#: A stamp this far behind the newest sample means the clock jumped back (a restarted sim or bag): start over.
CLOCK_JUMP_NS = 1_000_000_000


class SampleStatus(StrEnum):
    """Why a configuration could (or could not) be given for a stamp."""

    OK = "ok"
    NO_JOINT_STATES = "no joint states"
    STALE = "stale joint states"
    MISSING_JOINTS = "missing joints"


@dataclass(frozen=True)
class Lookup:
    """The outcome of :meth:`JointStateHistory.sample`: a status and how far the nearest sample was."""

    status: SampleStatus
    offset_s: float  # frame stamp minus the nearest sample's stamp (nan without samples)
    detail: str  # one line, empty when OK


class JointStateHistory:
    """A bounded, time-ordered window of joint samples in a fixed joint order.

    Args:
        joint_names: the order of the stored vectors.
        required: joints that must have been received before any configuration is given
            (the others start at ``defaults``).
        defaults: values of joints never received.
        continuous: which joints are unbounded angles (interpolated the shorter way round).
        capacity: samples kept (at 500 Hz, 1024 cover about 2 s of camera latency).
    """

    def __init__(
        self,
        joint_names: Sequence[str],
        required: Sequence[str],
        defaults: Sequence[float] | None = None,
        continuous: Sequence[bool] | None = None,
        capacity: int = 1024,
    ) -> None:
        if capacity < 2:
            raise ConfigurationError(f"joint state history: expected a capacity of at least 2, found {capacity}")
        self.joint_names = tuple(joint_names)
        count = len(self.joint_names)
        self._index = {name: i for i, name in enumerate(self.joint_names)}
        unknown = [name for name in required if name not in self._index]
        if unknown:
            raise ConfigurationError(
                f"joint state history: required joints {unknown} are not among {list(joint_names)}"
            )
        self._required = np.array([self._index[name] for name in required], dtype=int)
        self._continuous = np.asarray(continuous if continuous is not None else [False] * count, dtype=bool)
        self._last = np.asarray(defaults if defaults is not None else np.zeros(count), dtype=np.float64).copy()
        if self._last.shape != (count,) or self._continuous.shape != (count,):
            raise ConfigurationError(f"joint state history: expected {count} defaults and continuous flags")
        self._seen = np.zeros(count, dtype=bool)
        self.capacity = int(capacity)
        # Twice the capacity: samples are appended until the end, then the newest half moves to
        # the front, so the valid window is always one contiguous, sorted slice (no per-call copy).
        self._stamps = np.zeros(2 * self.capacity, dtype=np.int64)
        self._values = np.zeros((2 * self.capacity, count), dtype=np.float64)
        self._start = 0
        self._end = 0
        self._lock = threading.Lock()
        # The last message's names, where its joints go, and scratch for their values.
        self._names_cache: tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._difference = np.zeros(count)
        self.out_of_order = 0  # samples older than the newest one (merged into the last values, not inserted)
        self.clock_jumps = 0

    def __len__(self) -> int:
        return self._end - self._start

    def clear(self) -> None:
        with self._lock:
            self._start = self._end = 0

    def _columns(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Message positions → stored columns, with scratch buffers (cached while a publisher keeps its order)."""
        cache = self._names_cache
        if cache is not None and cache[0] == names:
            return cache[1], cache[2], cache[3], cache[4]
        known = [(i, self._index[name]) for i, name in enumerate(names) if name in self._index]
        message_index = np.array([i for i, _ in known], dtype=int)
        columns = np.array([column for _, column in known], dtype=int)
        picked, finite = np.zeros(len(known)), np.zeros(len(known), dtype=bool)
        self._names_cache = (list(names), message_index, columns, picked, finite)
        return message_index, columns, picked, finite

    def add(self, stamp_ns: int, names: Sequence[str], positions: Sequence[float]) -> None:
        """Record one ``JointState``-like sample; unknown names and non-finite positions are ignored."""
        if len(positions) < len(names):
            return  # a malformed message (positions shorter than names): nothing trustworthy in it
        message_index, columns, picked, finite = self._columns(names)
        values = np.asarray(positions, dtype=np.float64)  # no copy for float64 arrays (rclpy's array('d'))
        np.take(values, message_index, out=picked)
        np.isfinite(picked, out=finite)
        with self._lock:
            if not finite.all():
                columns, picked = columns[finite], picked[finite]
            self._last[columns] = picked
            self._seen[columns] = True
            if self._end > self._start:
                newest = int(self._stamps[self._end - 1])
                if stamp_ns == newest:
                    self._values[self._end - 1] = self._last
                    return
                if stamp_ns < newest:
                    if newest - stamp_ns <= CLOCK_JUMP_NS:
                        self.out_of_order += 1
                        return
                    self.clock_jumps += 1
                    self._start = self._end = 0
            if self._end == len(self._stamps):
                keep = self.capacity - 1
                self._stamps[:keep] = self._stamps[self._end - keep : self._end]
                self._values[:keep] = self._values[self._end - keep : self._end]
                self._start, self._end = 0, keep
            self._stamps[self._end] = stamp_ns
            self._values[self._end] = self._last
            self._end += 1
            if self._end - self._start > self.capacity:
                self._start = self._end - self.capacity

    def sample(self, stamp_ns: int, tolerance_s: float, out: np.ndarray) -> Lookup:
        """The configuration at ``stamp_ns`` into ``out`` (joint order), or why there is none.

        ``out`` is written only when the status is OK.
        """
        with self._lock:
            if self._end == self._start:
                return Lookup(SampleStatus.NO_JOINT_STATES, math.nan, "no joint state received yet")
            if not self._seen[self._required].all():
                missing = [self.joint_names[i] for i in self._required if not self._seen[i]]
                return Lookup(SampleStatus.MISSING_JOINTS, math.nan, f"joint states never named {', '.join(missing)}")
            stamps = self._stamps[self._start : self._end]
            after = int(np.searchsorted(stamps, stamp_ns, side="left"))
            before = after - 1
            if after < len(stamps) and stamps[after] == stamp_ns:
                before = after
            later_is_nearer = after < len(stamps) and stamps[after] - stamp_ns < stamp_ns - stamps[before]
            nearest = after if before < 0 or later_is_nearer else before
            offset_s = (stamp_ns - int(stamps[nearest])) * 1e-9
            if abs(offset_s) > tolerance_s:
                side = "newest" if offset_s > 0 else "oldest"
                return Lookup(
                    SampleStatus.STALE,
                    offset_s,
                    f"{side} joint state is {abs(offset_s):.3f} s from the frame (tolerance {tolerance_s:.3f} s)",
                )
            values = self._values[self._start : self._end]
            if before < 0 or after >= len(stamps) or before == after:
                np.copyto(out, values[nearest])
                return Lookup(SampleStatus.OK, offset_s, "")
            weight = (stamp_ns - int(stamps[before])) / float(stamps[after] - stamps[before])
            difference = self._difference
            np.subtract(values[after], values[before], out=difference)
            if self._continuous.any():
                wrapped = np.mod(difference + math.pi, 2.0 * math.pi) - math.pi
                np.copyto(difference, wrapped, where=self._continuous)
            np.multiply(difference, weight, out=out)
            out += values[before]
            return Lookup(SampleStatus.OK, offset_s, "")
