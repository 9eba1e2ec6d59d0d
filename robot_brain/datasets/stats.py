"""Feature statistics exactly as LeRobot v3.0 computes and stores them (``compute_stats.py``).

Per episode (stored in ``meta/episodes/...parquet`` as ``stats/<feature>/<stat>``) and for the
whole dataset (``meta/stats.json``), every feature has ``min``, ``max``, ``mean``, ``std``,
``count`` and the quantiles ``q01``, ``q10``, ``q50``, ``q90``, ``q99``:

- **Vectors** ``(T, D)``: per dimension, shape ``(D,)``; scalar features ``(T,)`` give shape
  ``(1,)``. ``count`` is ``[T]``. ``std`` is the population standard deviation.
- **Images** (video features): computed on a sample of the episode's frames (all frames up to
  100, then ``T ** 0.75`` of them, evenly spaced, at most 10 000), each frame subsampled by
  an integer stride when its larger side is 300 px or more (stride = larger side // 150),
  per colour channel, scaled to [0, 1]: shape ``(3, 1, 1)``; ``count`` is the number of
  sampled frames.
- **Quantiles** come from a 5000-bin histogram between the minimum and maximum, with linear
  interpolation inside the bin: LeRobot's estimator, reproduced so the numbers agree.
- **Aggregation** over episodes: min of minima, max of maxima, count-weighted mean, the
  pooled variance (exact), and for quantiles LeRobot's conservative envelope: the smallest
  episode value for q01..q50, the largest for q90..q99 (bounds, not global quantiles).

LeRobot accumulates in float32 for float32 data; here everything is float64, so values can
differ from LeRobot's in the seventh significant digit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(q * 100):02d}" for q in QUANTILES)
STAT_KEYS = ("min", "max", "mean", "std", "count", *QUANTILE_KEYS)
HISTOGRAM_BINS = 5000

FeatureStats = dict[str, np.ndarray]


def _histogram_quantile(histogram: np.ndarray, edges: np.ndarray, target: float) -> float:
    cumulative = np.cumsum(histogram)
    position = int(np.searchsorted(cumulative, target))
    if position == 0:
        return float(edges[0])
    if position >= len(cumulative):
        return float(edges[-1])
    before = cumulative[position - 1]
    inside = cumulative[position] - before
    if inside == 0:
        return float(edges[position])
    fraction = (target - before) / inside
    return float(edges[position] + fraction * (edges[position + 1] - edges[position]))


def _columns_stats(samples: np.ndarray, count: int) -> FeatureStats:
    """Stats of each column of ``samples`` (N, D); ``count`` is what LeRobot records as the sample count."""
    values = samples.astype(np.float64, copy=False)
    minimum = values.min(axis=0)
    maximum = values.max(axis=0)
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    stats: FeatureStats = {"min": minimum, "max": maximum, "mean": mean, "std": std, "count": np.array([count])}
    if values.shape[0] < 2:
        for key in QUANTILE_KEYS:
            stats[key] = mean.copy()
        return stats
    quantiles = np.empty((len(QUANTILES), values.shape[1]))
    for column in range(values.shape[1]):
        edges = np.linspace(minimum[column] - 1e-10, maximum[column] + 1e-10, HISTOGRAM_BINS + 1)
        histogram, _ = np.histogram(values[:, column], bins=edges)
        for row, q in enumerate(QUANTILES):
            quantiles[row, column] = _histogram_quantile(histogram, edges, q * values.shape[0])
    for row, key in enumerate(QUANTILE_KEYS):
        stats[key] = quantiles[row]
    return stats


def vector_stats(values: np.ndarray) -> FeatureStats:
    """Stats of one episode's numeric feature: ``(T,)`` gives shape ``(1,)``, ``(T, D)`` gives ``(D,)``."""
    array = np.asarray(values)
    if array.ndim == 1:
        return _columns_stats(array.reshape(-1, 1), array.shape[0])
    if array.ndim != 2:
        raise ValueError(f"expected (T,) or (T, D) values, found shape {array.shape}")
    return _columns_stats(array, array.shape[0])


def image_sample_indices(num_frames: int) -> np.ndarray:
    """The frames LeRobot samples for image statistics: evenly spaced, rounded, as many as it estimates."""
    if num_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    minimum = min(100, num_frames)
    count = max(minimum, min(int(num_frames**0.75), 10_000))
    return np.round(np.linspace(0, num_frames - 1, count)).astype(np.int64)


def downsample_for_stats(frame: np.ndarray) -> np.ndarray:
    """One ``(H, W, C)`` frame as the ``(C, h, w)`` array LeRobot reduces: strided when a side reaches 300 px."""
    height, width = frame.shape[:2]
    chw = np.moveaxis(frame, -1, 0)
    if max(height, width) < 300:
        return chw
    stride = int(width / 150) if width > height else int(height / 150)
    return chw[:, ::stride, ::stride]


def image_stats(sampled: np.ndarray) -> FeatureStats:
    """Per-channel stats of sampled ``(N, C, h, w)`` uint8 frames, in [0, 1], shaped ``(C, 1, 1)``."""
    frames = np.asarray(sampled)
    if frames.ndim != 4:
        raise ValueError(f"expected sampled frames (N, C, h, w), found shape {frames.shape}")
    channels = frames.shape[1]
    pixels = np.moveaxis(frames, 1, -1).reshape(-1, channels)
    stats = _columns_stats(pixels, frames.shape[0])
    return {key: value if key == "count" else (value / 255.0).reshape(channels, 1, 1) for key, value in stats.items()}


def aggregate(per_episode: Sequence[Mapping[str, Mapping[str, np.ndarray]]]) -> dict[str, FeatureStats]:
    """Dataset stats from episode stats, by LeRobot's rules (see the module docstring)."""
    features: list[str] = []
    for episode in per_episode:
        for name in episode:
            if name not in features:
                features.append(name)
    result: dict[str, FeatureStats] = {}
    for name in features:
        items = [episode[name] for episode in per_episode if name in episode]
        means = np.stack([np.asarray(s["mean"], dtype=np.float64) for s in items])
        variances = np.stack([np.asarray(s["std"], dtype=np.float64) ** 2 for s in items])
        counts = np.array([int(np.asarray(s["count"]).reshape(-1)[0]) for s in items], dtype=np.float64)
        total = counts.sum()
        weights = counts.reshape(-1, *([1] * (means.ndim - 1)))
        mean = (means * weights).sum(axis=0) / total
        variance = ((variances + (means - mean) ** 2) * weights).sum(axis=0) / total
        merged: FeatureStats = {
            "min": np.min(np.stack([np.asarray(s["min"], dtype=np.float64) for s in items]), axis=0),
            "max": np.max(np.stack([np.asarray(s["max"], dtype=np.float64) for s in items]), axis=0),
            "mean": mean,
            "std": np.sqrt(variance),
            "count": np.array([int(total)], dtype=np.int64),
        }
        for key in QUANTILE_KEYS:
            if all(key in s for s in items):
                stacked = np.stack([np.asarray(s[key], dtype=np.float64) for s in items])
                merged[key] = stacked.min(axis=0) if int(key[1:]) <= 50 else stacked.max(axis=0)
        result[name] = merged
    return result


def to_json(stats: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, list]]:
    """Plain lists for ``stats.json`` (counts as integers), features and stats in the given order."""
    out: dict[str, dict[str, list]] = {}
    for name, feature in stats.items():
        out[name] = {}
        for key in STAT_KEYS:
            if key not in feature:
                continue
            value = np.asarray(feature[key])
            out[name][key] = value.astype(np.int64).tolist() if key == "count" else value.astype(np.float64).tolist()
    return out


def from_json(data: Mapping[str, Mapping[str, object]]) -> dict[str, FeatureStats]:
    """``stats.json`` content back as numpy arrays (at least 1-D, like LeRobot's loader)."""
    return {
        name: {key: np.atleast_1d(np.asarray(value)) for key, value in feature.items()}
        for name, feature in data.items()
    }
