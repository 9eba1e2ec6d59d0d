"""Streams recorded at their own rates, put on a dataset's frame grid by their real timestamps.

A recorded episode has joint states at 250-500 Hz, controller commands at 500 Hz, a camera at
15-30 Hz, perception points at ~15 Hz, each message stamped with its own time. A LeRobot
dataset has one row per frame at ``k / fps``. :func:`resample` builds the grid
``start + k / fps`` and samples every stream at each grid time:

- ``nearest``: the sample closest in time, if within the stream's tolerance (images, points);
- ``previous``: the latest sample at or before the grid time, if not older than the tolerance
  (commands: the one in force; causal, never a future sample);
- ``linear``: interpolation between the samples just before and just after, if both are within
  the tolerance (continuous signals such as joint positions; at either end of the stream, the
  end sample when within the tolerance; never extrapolated). Refused for images.

A grid frame that misses **any** stream within its tolerance is **dropped and counted** with
the reason, never filled with a stale or future sample stamped as on time. Dropping a frame
inside an episode would leave a gap that LeRobot's format cannot express (its timestamps are
``frame_index / fps``, and training windows count frames), so the kept frames are returned as
**segments**: runs of consecutive grid frames, each written as its own dataset episode, with
``timestamps`` ``k / fps`` from 0 and ``start_s`` its first frame's time on the input clock.
Runs shorter than ``min_segment_frames`` are dropped too (counted as such).

Input timestamps must be finite and strictly increasing per stream; otherwise
:class:`ResampleError` names the stream and the sample. An empty stream is an error too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_brain.errors import UserError

METHODS = ("nearest", "previous", "linear")
SHORT_SEGMENT = "segment shorter than min_segment_frames"


class ResampleError(UserError):
    """A stream cannot be resampled as asked (out-of-order or missing timestamps, a bad method)."""


@dataclass(frozen=True)
class Stream:
    """One recorded stream: sample times (seconds, one clock for all streams) and optional values.

    ``values`` ``(N, ...)``: numeric samples to resample (``linear`` needs ``(N,)`` or
    ``(N, D)`` numbers). Leave it ``None`` for data fetched later by sample index (camera
    frames in a bag): the result then holds only the chosen indices.
    """

    name: str
    timestamps: Any
    values: Any = None
    method: str = "nearest"
    tolerance_s: float = 0.0


@dataclass
class Segment:
    """A run of consecutive kept grid frames: one dataset episode.

    ``timestamps``: ``k / fps`` for ``k = 0..T-1``. ``start_s``: time of frame 0 on the input
    clock. ``grid_indices``: the frames' positions on the full grid. ``indices[stream]``: the
    source sample used per frame (``linear``: the one at or before the frame).
    ``values[stream]``: the resampled values, for streams given with values.
    """

    start_s: float
    timestamps: np.ndarray
    grid_indices: np.ndarray
    indices: dict[str, np.ndarray]
    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])


@dataclass
class ResampleReport:
    """What happened to every grid frame, and to every stream."""

    fps: int
    start_s: float
    grid_frames: int
    kept_frames: int
    dropped_frames: int
    # Each dropped frame counted once, under the first missing stream (in the order given) or the short-segment rule.
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    # Frames each stream could not serve (a frame missing two streams counts for both).
    missing_by_stream: dict[str, int] = field(default_factory=dict)
    # Kept frames that reuse the previous kept frame's sample (e.g. a 15 Hz camera on a 30 fps grid).
    repeated_by_stream: dict[str, int] = field(default_factory=dict)
    segment_lengths: list[int] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and reports."""
        reasons = ", ".join(f"{count} {reason}" for reason, count in self.dropped_by_reason.items()) or "none"
        return (
            f"{self.kept_frames}/{self.grid_frames} frames kept at {self.fps} fps in {len(self.segment_lengths)} "
            f"segments; dropped: {reasons}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "fps": self.fps,
            "start_s": self.start_s,
            "grid_frames": self.grid_frames,
            "kept_frames": self.kept_frames,
            "dropped_frames": self.dropped_frames,
            "dropped_by_reason": dict(self.dropped_by_reason),
            "missing_by_stream": dict(self.missing_by_stream),
            "repeated_by_stream": dict(self.repeated_by_stream),
            "segment_lengths": list(self.segment_lengths),
        }


@dataclass
class Resampled:
    segments: list[Segment]
    report: ResampleReport


def _check_stream(stream: Stream) -> tuple[np.ndarray, np.ndarray | None]:
    if stream.method not in METHODS:
        raise ResampleError(f"stream {stream.name!r}: expected a method in {list(METHODS)}, found {stream.method!r}")
    if not np.isfinite(stream.tolerance_s) or stream.tolerance_s < 0:
        raise ResampleError(f"stream {stream.name!r}: expected a tolerance >= 0 s, found {stream.tolerance_s}")
    stamps = np.asarray(stream.timestamps, dtype=np.float64)
    if stamps.ndim != 1 or stamps.size == 0:
        raise ResampleError(f"stream {stream.name!r}: expected at least one timestamp, found shape {stamps.shape}")
    if not np.all(np.isfinite(stamps)):
        bad = int(np.flatnonzero(~np.isfinite(stamps))[0])
        raise ResampleError(f"stream {stream.name!r}: sample {bad} has no finite timestamp ({stamps[bad]})")
    steps = np.diff(stamps)
    if np.any(steps <= 0):
        bad = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise ResampleError(
            f"stream {stream.name!r}: expected strictly increasing timestamps, sample {bad} at {stamps[bad]:.6f} s "
            f"follows {stamps[bad - 1]:.6f} s (sort or deduplicate the stream first)"
        )
    values = None
    if stream.values is not None:
        values = np.asarray(stream.values)
        if values.shape[0] != stamps.shape[0]:
            raise ResampleError(
                f"stream {stream.name!r}: expected one value per timestamp ({stamps.shape[0]}), found {values.shape[0]}"
            )
    if stream.method == "linear":
        if values is None:
            raise ResampleError(f"stream {stream.name!r}: linear interpolation needs values")
        if values.ndim > 2 or values.dtype.kind not in "fiu":
            raise ResampleError(
                f"stream {stream.name!r}: linear interpolation is for numeric (N,) or (N, D) signals, "
                f"found {values.shape} {values.dtype} (use 'nearest' for images)"
            )
    return stamps, values


def _sample(
    stamps: np.ndarray, grid: np.ndarray, method: str, tolerance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valid mask, chosen/lower index, interpolation weight of the upper sample) per grid time."""
    last = stamps.shape[0] - 1
    upper = np.searchsorted(stamps, grid, side="left")  # first sample >= t
    at_or_before = np.searchsorted(stamps, grid, side="right") - 1  # last sample <= t
    weight = np.zeros(grid.shape[0])
    if method == "previous":
        index = at_or_before
        valid = (index >= 0) & (grid - stamps[np.clip(index, 0, last)] <= tolerance)
        return valid, np.clip(index, 0, last), weight
    before = np.clip(upper - 1, 0, last)
    after = np.clip(upper, 0, last)
    distance_before = np.abs(grid - stamps[before])
    distance_after = np.abs(stamps[after] - grid)
    nearest = np.where(distance_after < distance_before, after, before)
    nearest_ok = np.abs(stamps[nearest] - grid) <= tolerance
    if method == "nearest":
        return nearest_ok, nearest, weight
    # linear: bracketing samples both within tolerance, exact hits, or the end sample at either end.
    exact = (at_or_before >= 0) & (stamps[np.clip(at_or_before, 0, last)] == grid)
    inside = (at_or_before >= 0) & (at_or_before < last) & ~exact
    lower = np.clip(at_or_before, 0, last)
    higher = np.clip(at_or_before + 1, 0, last)
    bracket_ok = inside & (grid - stamps[lower] <= tolerance) & (stamps[higher] - grid <= tolerance)
    span = stamps[higher] - stamps[lower]
    weight = np.where(bracket_ok, (grid - stamps[lower]) / np.where(span > 0, span, 1.0), 0.0)
    outside = (at_or_before < 0) | (at_or_before >= last)
    end_ok = outside & nearest_ok & ~exact
    index = np.where(bracket_ok, lower, np.where(exact, lower, nearest))
    return bracket_ok | exact | end_ok, index, weight


def _check_resample_arguments(streams: Sequence[Stream], fps: int) -> list[str]:
    """Refuse a bad ``fps``, no streams or repeated stream names; return the stream names in order."""
    if isinstance(fps, bool) or int(fps) != fps or fps <= 0:
        raise ResampleError(f"expected fps as a positive integer, found {fps!r}")
    if not streams:
        raise ResampleError("expected at least one stream, found none")
    names = [s.name for s in streams]
    if len(set(names)) != len(names):
        raise ResampleError(f"expected distinct stream names, found {names}")
    return names


def _frame_grid(
    checked: Sequence[tuple[Stream, np.ndarray, np.ndarray | None]],
    fps: int,
    start_s: float | None,
    end_s: float | None,
) -> tuple[float, int, np.ndarray]:
    """(start time, frame count, grid times ``start + k / fps``) spanning the streams or the given start and end."""
    first = min(float(stamps[0]) for _, stamps, _ in checked) if start_s is None else float(start_s)
    last = max(float(stamps[-1]) for _, stamps, _ in checked) if end_s is None else float(end_s)
    if last < first:
        raise ResampleError(f"expected end {last:.6f} s >= start {first:.6f} s")
    count = int(np.floor((last - first) * fps + 1e-9)) + 1
    grid = first + np.arange(count) / fps
    return first, count, grid


def _sample_streams(
    checked: Sequence[tuple[Stream, np.ndarray, np.ndarray | None]], grid: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]], dict[str, int]]:
    """(kept mask, first missing stream's position or -1 per frame, (index, weight) and missed frames by stream)."""
    keep = np.ones(count, dtype=bool)
    reason_of = np.full(count, -1)
    sampled: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    missing_by_stream: dict[str, int] = {}
    for position, (stream, stamps, _values) in enumerate(checked):
        valid, index, weight = _sample(stamps, grid, stream.method, float(stream.tolerance_s))
        missing_by_stream[stream.name] = int((~valid).sum())
        reason_of[(~valid) & keep] = position
        keep &= valid
        sampled[stream.name] = (index, weight)
    return keep, reason_of, sampled, missing_by_stream


def _dropped_by_stream(
    checked: Sequence[tuple[Stream, np.ndarray, np.ndarray | None]], reason_of: np.ndarray
) -> dict[str, int]:
    """Dropped frames counted under the first stream that missed them, keyed by a readable reason."""
    dropped_by_reason: dict[str, int] = {}
    for position, (stream, _stamps, _values) in enumerate(checked):
        dropped = int((reason_of == position).sum())
        if dropped:
            dropped_by_reason[f"{stream.name}: no sample within {stream.tolerance_s:g} s ({stream.method})"] = dropped
    return dropped_by_reason


def _kept_runs(keep: np.ndarray, min_segment_frames: int) -> tuple[list[tuple[int, int]], int]:
    """(``[begin, end)`` runs of kept frames at least ``min_segment_frames`` long, frames in shorter runs)."""
    runs: list[tuple[int, int]] = []
    short_frames = 0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], keep.astype(np.int8), [0]))))
    for begin, end in zip(edges[0::2], edges[1::2], strict=True):
        if end - begin >= min_segment_frames:
            runs.append((int(begin), int(end)))
        else:
            short_frames += int(end - begin)
    return runs, short_frames


def _resampled_values(stream: Stream, values: np.ndarray, chosen: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """One stream's values at the chosen samples, interpolated with ``weight`` for ``linear`` streams."""
    if stream.method == "linear":
        low = values[chosen].astype(np.float64)
        high = values[np.minimum(chosen + 1, values.shape[0] - 1)].astype(np.float64)
        w = weight.reshape(-1, *([1] * (values.ndim - 1)))
        return low + (high - low) * w
    return values[chosen]


def _build_segments(
    checked: Sequence[tuple[Stream, np.ndarray, np.ndarray | None]],
    sampled: Mapping[str, tuple[np.ndarray, np.ndarray]],
    grid: np.ndarray,
    runs: Sequence[tuple[int, int]],
    fps: int,
    names: Sequence[str],
) -> tuple[list[Segment], dict[str, int]]:
    """(one segment per run with its chosen indices and values, repeated-sample counts by stream)."""
    segments: list[Segment] = []
    repeated = dict.fromkeys(names, 0)
    for begin, end in runs:
        span = slice(begin, end)
        indices: dict[str, np.ndarray] = {}
        values_out: dict[str, np.ndarray] = {}
        for stream, _stamps, values in checked:
            index, weight = sampled[stream.name]
            chosen = index[span].astype(np.int64)
            indices[stream.name] = chosen
            repeated[stream.name] += int(np.sum(chosen[1:] == chosen[:-1]))
            if values is None:
                continue
            values_out[stream.name] = _resampled_values(stream, values, chosen, weight[span])
        segments.append(
            Segment(
                start_s=float(grid[begin]),
                timestamps=np.arange(end - begin) / fps,
                grid_indices=np.arange(begin, end),
                indices=indices,
                values=values_out,
            )
        )
    return segments, repeated


def resample(
    streams: Sequence[Stream],
    fps: int,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    min_segment_frames: int = 1,
) -> Resampled:
    """Put ``streams`` on the grid ``start_s + k / fps`` (see the module docstring).

    ``start_s``/``end_s`` default to the earliest and latest sample over all streams, so a
    stream that starts late or stops early shows up as dropped frames; pass the episode's
    recorded start and end to count against its full span.
    """
    names = _check_resample_arguments(streams, fps)
    checked = [(_stream, *_check_stream(_stream)) for _stream in streams]
    first, count, grid = _frame_grid(checked, fps, start_s, end_s)
    keep, reason_of, sampled, missing_by_stream = _sample_streams(checked, grid, count)
    dropped_by_reason = _dropped_by_stream(checked, reason_of)
    runs, short_frames = _kept_runs(keep, min_segment_frames)
    if short_frames:
        dropped_by_reason[SHORT_SEGMENT] = short_frames
    segments, repeated = _build_segments(checked, sampled, grid, runs, fps, names)
    kept = sum(end - begin for begin, end in runs)
    report = ResampleReport(
        fps=int(fps),
        start_s=first,
        grid_frames=count,
        kept_frames=kept,
        dropped_frames=count - kept,
        dropped_by_reason=dropped_by_reason,
        missing_by_stream=missing_by_stream,
        repeated_by_stream=repeated,
        segment_lengths=[end - begin for begin, end in runs],
    )
    return Resampled(segments=segments, report=report)


def frames_at(source: Sequence[Any] | Callable[[int], Any], indices: Sequence[int] | np.ndarray) -> Iterator[Any]:
    """Yield ``source[i]`` (or ``source(i)``) for each chosen sample index, fetching a repeated index once.

    For camera frames picked by :func:`resample`: pass the result to the dataset writer as a
    camera's frame iterator so only one frame is held at a time.
    """
    fetch: Callable[[int], Any] = source if callable(source) else source.__getitem__  # type: ignore[assignment]
    previous_index: int | None = None
    previous_value: Any = None
    for index in np.asarray(indices, dtype=np.int64).tolist():
        if index != previous_index:
            previous_value = fetch(index)
            previous_index = index
        yield previous_value


def join_values(segment: Segment, mapping: Mapping[str, Sequence[str]]) -> dict[str, np.ndarray]:
    """Build dataset columns by concatenating resampled streams, e.g. ``{"observation.state": ["q", "gripper"]}``."""
    columns: dict[str, np.ndarray] = {}
    for column, stream_names in mapping.items():
        parts = []
        for name in stream_names:
            if name not in segment.values:
                raise ResampleError(f"column {column!r}: stream {name!r} has no resampled values")
            value = segment.values[name]
            parts.append(value.reshape(value.shape[0], -1))
        columns[column] = np.concatenate(parts, axis=1)
    return columns
