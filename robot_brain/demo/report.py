"""Demo results: per-episode records, the summary table/JSON, the trajectory plot and the contact sheet.

Pure (no ROS): the runner fills :class:`EpisodeRecord` objects; this module turns them into
what a person reads. Definitions of the reported numbers:

- ``latency``: observation → action, the wall time between an ActionChunk's ``header.stamp``
  (the stamp of the newest synchronized observation it was computed from) and its arrival
  at the demo's subscriber, i.e. what the arm controller sees (it acts on the next cycle);
- ``control_p99_us``: the arm controller's own p99 absolute period error (its diagnostics);
- ``real_time_factor``: sim seconds per wall second reported by the sim node (median).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class EpisodeRecord:
    """One episode as the demo saw it."""

    episode: int
    seed: int
    success: bool
    time_to_success: float  # sim s; nan when it failed
    final_distance: float  # m
    target: np.ndarray  # object centre, base frame
    message: str
    located: bool = True  # perception located the object, so the arm was let go
    stall: str = ""  # the arm controller's last stall report in the episode ("" when none)
    branch_moves: int = 0  # moves to another IK branch the controller made to leave a stall
    tool_path: list[tuple[float, float, float, float]] = field(default_factory=list)  # (t, x, y, z)
    frames: list[np.ndarray] = field(default_factory=list, repr=False)
    # Perception's annotated copy of each frame (its debug image with the same stamp), None where none came.
    debug_frames: list[np.ndarray | None] = field(default_factory=list, repr=False)

    def path_ratio(self) -> float:
        """Length of the tool's path over the straight line from its start to its end (1: straight; nan: no path).

        A path that wobbles sideways or detours through another branch is longer than the line.
        """
        if len(self.tool_path) < 2:
            return math.nan
        points = np.asarray(self.tool_path, dtype=float)[:, 1:]
        straight = float(np.linalg.norm(points[-1] - points[0]))
        if straight < 1e-3:
            return math.nan
        return float(np.sum(np.linalg.norm(np.diff(points, axis=0), axis=1))) / straight


@dataclass
class DemoSummary:
    robot: str
    model: str
    episodes: list[EpisodeRecord]
    latencies_ms: list[float]
    control_p99_us: float
    real_time_factor: float
    tolerance: float
    wall_s: float

    @property
    def success_rate(self) -> float:
        return sum(e.success for e in self.episodes) / len(self.episodes) if self.episodes else math.nan

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` object."""
        times = [e.time_to_success for e in self.episodes if e.success]
        latencies = np.asarray(self.latencies_ms, dtype=float)
        ratios = np.array([e.path_ratio() for e in self.episodes], dtype=float)

        def pct(values: np.ndarray, q: float) -> float | None:
            return round(float(np.percentile(values, q)), 3) if values.size else None

        return {
            "robot": self.robot,
            "model": self.model,
            "episodes": len(self.episodes),
            "successes": sum(e.success for e in self.episodes),
            "success_rate": round(self.success_rate, 4),
            "time_to_success_mean_s": round(float(np.mean(times)), 3) if times else None,
            "time_to_success_max_s": round(float(np.max(times)), 3) if times else None,
            "latency_p50_ms": pct(latencies, 50),
            "latency_p99_ms": pct(latencies, 99),
            "latency_samples": int(latencies.size),
            "control_p99_us": _finite(self.control_p99_us),
            "real_time_factor": _finite(self.real_time_factor, 3),
            "tolerance_m": round(self.tolerance, 4),
            "wall_s": round(self.wall_s, 1),
            "path_ratio_median": _finite(float(np.nanmedian(ratios)), 3) if np.isfinite(ratios).any() else None,
            "path_ratios": [None if not math.isfinite(r) else round(r, 3) for r in ratios],
            "stalled_episodes": sum(bool(e.stall) for e in self.episodes),
            "branch_moves": sum(e.branch_moves for e in self.episodes),
            "failures": [{"episode": e.episode, "seed": e.seed, "message": e.message, "stall": e.stall}
                         for e in self.episodes if not e.success],
        }

    def table(self) -> str:
        data = self.as_dict()

        def show(value: Any, unit: str = "") -> str:
            return "n/a" if value is None else f"{value}{unit}"

        rows = [
            ("robot", data["robot"]),
            ("model", data["model"]),
            ("episodes", f"{data['successes']}/{data['episodes']} reached"),
            ("success rate", f"{100 * data['success_rate']:.1f} %"),
            ("time to success", f"mean {show(data['time_to_success_mean_s'], ' s')}, "
                                f"max {show(data['time_to_success_max_s'], ' s')}"),
            ("obs→action latency", f"p50 {show(data['latency_p50_ms'], ' ms')}, "
                                   f"p99 {show(data['latency_p99_ms'], ' ms')} ({data['latency_samples']} chunks)"),
            ("control loop p99 period error", show(data["control_p99_us"], " µs")),
            ("real-time factor", show(data["real_time_factor"])),
            ("success tolerance", f"{100 * data['tolerance_m']:.1f} cm"),
            ("tool path / straight line", f"median {show(data['path_ratio_median'])}"),
            ("stalls", f"{data['stalled_episodes']} episodes stalled, {data['branch_moves']} moves to another "
                       "IK branch"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {text}" for name, text in rows]
        lines += [f"failed: episode {f['episode']} (seed {f['seed']}): {f['message']}" for f in data["failures"]]
        return "\n".join(lines)


def _finite(value: float, digits: int = 1) -> float | None:
    return round(float(value), digits) if math.isfinite(value) else None


def write_outputs(summary: DemoSummary, folder: Path) -> dict[str, Path]:
    """summary.json, trajectories.png and contact_sheet.png in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"summary": folder / "summary.json"}
    files["summary"].write_text(json.dumps(summary.as_dict(), indent=2) + "\n", encoding="utf-8")
    files["trajectories"] = plot_trajectories(summary, folder / "trajectories.png")
    sheet = contact_sheet([e for e in summary.episodes if e.frames], folder / "contact_sheet.png")
    if sheet is not None:
        files["contact_sheet"] = sheet
    return files


def plot_trajectories(summary: DemoSummary, path: Path) -> Path:
    """Top view of every tool path with the objects and tolerance circles, distance over time, path straightness."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, distance, straightness) = plt.subplots(1, 3, figsize=(17, 5.5))
    colours = plt.cm.viridis(np.linspace(0, 1, max(len(summary.episodes), 1)))
    for colour, episode in zip(colours, summary.episodes, strict=False):
        if not episode.tool_path:
            continue
        path_array = np.asarray(episode.tool_path)
        style = "-" if episode.success else ":"
        top.plot(path_array[:, 1], path_array[:, 2], style, color=colour, linewidth=1.2)
        top.plot(path_array[0, 1], path_array[0, 2], "o", color=colour, markersize=3)
        top.add_patch(plt.Circle((episode.target[0], episode.target[1]), summary.tolerance, color=colour,
                                 fill=False, linestyle="--"))
        top.plot(episode.target[0], episode.target[1], "s", color="red", markersize=4)
        distances = np.linalg.norm(path_array[:, 1:] - episode.target, axis=1)
        distance.plot(path_array[:, 0] - path_array[0, 0], distances, style, color=colour, linewidth=1.0)
    distance.axhline(summary.tolerance, color="red", linestyle="--", label="tolerance")
    top.set(xlabel="x (m, base frame)", ylabel="y (m)", title=f"{summary.robot}: tool paths (top view)")
    top.set_aspect("equal", adjustable="datalim")
    top.grid(True, alpha=0.3)
    distance.set(xlabel="time since reset (s)", ylabel="tool-object distance (m)",
                 title=f"success {100 * summary.success_rate:.0f}% of {len(summary.episodes)}")
    distance.grid(True, alpha=0.3)
    distance.legend()
    ratios = [episode.path_ratio() for episode in summary.episodes]
    straightness.bar([str(e.episode) for e in summary.episodes], [r if math.isfinite(r) else 0.0 for r in ratios],
                     color=colours[: len(ratios)])
    straightness.axhline(1.0, color="black", linewidth=0.8)
    straightness.set(xlabel="episode", ylabel="tool path length / straight line",
                     title="straightness (1: a straight line)")
    straightness.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def contact_sheet(episodes: list[EpisodeRecord], path: Path, columns: int = 4, max_rows: int = 6) -> Path | None:
    """A grid of camera frames: one row per episode (start → end), labelled with the outcome.

    Where perception's annotated debug image of a frame came (robot mask, detection, 3D point),
    it stands beside the raw frame, and a row holds ``columns - 1`` such pairs.
    """
    import cv2

    rows = []
    for episode in episodes[:max_rows]:
        paired = any(debug is not None for debug in episode.debug_frames)
        slots = columns - 1 if paired and columns > 1 else columns
        indices = _pick(list(range(len(episode.frames))), slots)
        if not indices:
            continue
        tiles = []
        for index in indices:
            frame = np.ascontiguousarray(episode.frames[index])
            tile = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            if paired:
                debug = episode.debug_frames[index] if index < len(episode.debug_frames) else None
                tile = np.hstack([tile, _debug_tile(debug, tile.shape)])
            if not tiles:
                outcome = "reached" if episode.success else "missed" if episode.located else "object not located"
                label = f"ep {episode.episode} seed {episode.seed}: {outcome}"
                cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        while len(tiles) < slots:
            tiles.append(np.zeros_like(tiles[0]))
        rows.append(np.hstack(tiles))
    if not rows:
        return None
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0))) for row in rows]
    cv2.imwrite(str(path), np.vstack(rows))
    return path


def _debug_tile(debug: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """Perception's annotated frame (rgb8 from the debug view) as a BGR tile of ``shape``; grey when missing."""
    import cv2

    if debug is None or debug.ndim != 3 or debug.shape[2] != 3:
        tile = np.full(shape, 40, np.uint8)
        cv2.putText(tile, "no debug image", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
        return tile
    tile = cv2.cvtColor(np.ascontiguousarray(debug), cv2.COLOR_RGB2BGR)
    if tile.shape != shape:
        tile = cv2.resize(tile, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return tile


def _pick(items: list[int], count: int) -> list[int]:
    """``count`` items spread evenly from first to last (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[round(i)] for i in np.linspace(0, len(items) - 1, count)]
