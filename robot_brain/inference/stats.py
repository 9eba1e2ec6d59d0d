"""Bounded latency statistics for diagnostics (median and p99 over the last N samples).

A fixed ring buffer: recording is O(1) and allocation-free on the hot path; percentiles are
computed only when diagnostics are published (about once a second).
"""

from __future__ import annotations

import threading

import numpy as np


class LatencyStats:
    """The last ``capacity`` durations in seconds."""

    def __init__(self, capacity: int = 1000) -> None:
        self._values = np.zeros(capacity, dtype=np.float64)
        self._count = 0
        self._lock = threading.Lock()

    def record(self, seconds: float) -> None:
        """Add one duration."""
        with self._lock:
            self._values[self._count % self._values.size] = seconds
            self._count += 1

    @property
    def count(self) -> int:
        """Durations recorded since creation."""
        return self._count

    def percentiles(self) -> tuple[float, float]:
        """(median, p99) in seconds; NaN before the first sample."""
        with self._lock:
            values = self._values[: min(self._count, self._values.size)].copy()
        if values.size == 0:
            return float("nan"), float("nan")
        median, p99 = np.percentile(values, [50.0, 99.0])
        return float(median), float(p99)
