"""Reading LeRobot v3.0 datasets with pyarrow and PyAV, for training (no LeRobot, no torch needed).

:class:`LeRobotDataset` opens a dataset root and checks, cheaply, that its metadata agrees
with itself and that every file it names exists: ``meta/info.json`` (version ``v3.0``),
``meta/tasks.parquet``, the ``meta/episodes`` files (episode indices ``0..N-1``, frame ranges
contiguous and matching the lengths, totals matching ``info.json``), the data and video files
each episode points to. An unfinished robot_brain export (``INCOMPLETE.json``) is refused, and
so is a stale one (``STALE.json``: ``robot-brain data purge`` erased episodes it was made from;
``allow_stale=True`` opens it anyway, for tools that inspect rather than train).
Every problem is a :class:`~robot_brain.datasets.lerobot_format.DatasetFormatError` naming the file.

- :attr:`LeRobotDataset.episodes`: the episodes table (everything but ``stats/*``) as numpy arrays;
- :meth:`LeRobotDataset.frames`: the per-frame table as numpy arrays, ``(N, *shape)`` per feature;
- :meth:`LeRobotDataset.video_frames` / :meth:`LeRobotDataset.iter_video_frames`: decoded RGB
  frames of one episode at given timestamps (episode-relative, LeRobot's 1e-4 s tolerance) or all;
- :attr:`LeRobotDataset.stats`: ``meta/stats.json`` as numpy arrays (normalisation);
- :meth:`LeRobotDataset.validate`: the deep check (row counts, indices and timestamps of every
  data file; frame counts of every video).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from robot_brain.datasets import stats as feature_stats
from robot_brain.datasets.lerobot_format import (
    CODEBASE_VERSION,
    EPISODES_DIR,
    INCOMPLETE_MARKER,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    TIMESTAMP_TOLERANCE_S,
    DatasetFormatError,
    camera_key,
    column_to_numpy,
    data_keys,
    read_json,
    read_parquet,
    video_keys,
)
from robot_brain.datasets.video import VideoError, decode_at, iter_frames, probe
from robot_brain.storage.paths import confined

REQUIRED_INFO_KEYS = (
    "codebase_version",
    "fps",
    "features",
    "total_episodes",
    "total_frames",
    "total_tasks",
    "chunks_size",
    "data_path",
    "video_path",
)
DEFAULT_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
STALE_MARKER = "STALE.json"
"""Written beside ``meta/`` by ``robot-brain data purge``: the dataset holds erased episodes; never train on it."""


class StaleDatasetError(DatasetFormatError):
    """The dataset was derived from episodes since erased (right to erasure): rebuild it or delete it."""


def stale_message(root: Path) -> str:
    """One line saying why ``root`` is stale (from its ``STALE.json``, pseudonyms only) and what to do."""
    try:
        purges = read_json(root / STALE_MARKER).get("purges") or []
        operators = sorted({str(p.get("operator")) for p in purges if isinstance(p, dict)})
        since = min(str(p.get("at")) for p in purges if isinstance(p, dict))
        detail = f"since {since} episodes of {', '.join(operators)} were erased"
    except (DatasetFormatError, AttributeError, TypeError, ValueError):
        operators, detail = [], "episodes it was made from were erased"
    rebuild = f"robot-brain data purge --operator {operators[0]} --rebuild" if len(operators) == 1 else "a re-export"
    return f"{root}: a stale dataset ({STALE_MARKER}): {detail}; rebuild it ({rebuild}) or delete it"


class LeRobotDataset:
    """A LeRobot v3.0 dataset on disk, checked when opened (see the module docstring)."""

    def __init__(
        self, root: str | os.PathLike[str], *, tolerance_s: float = TIMESTAMP_TOLERANCE_S, allow_stale: bool = False
    ) -> None:
        self.root = Path(root)
        self.tolerance_s = tolerance_s
        if not self.root.is_dir():
            raise DatasetFormatError(f"{self.root}: expected a dataset folder, found none")
        if (self.root / INCOMPLETE_MARKER).exists():
            raise DatasetFormatError(
                f"{self.root}: an unfinished export ({INCOMPLETE_MARKER}); "
                "finish it with robot_brain.datasets.lerobot.recover"
            )
        self.stale = (self.root / STALE_MARKER).exists()
        if self.stale and not allow_stale:
            raise StaleDatasetError(stale_message(self.root))
        self.info: dict[str, Any] = read_json(self.root / INFO_PATH)
        missing = [key for key in REQUIRED_INFO_KEYS if key not in self.info]
        if missing:
            raise DatasetFormatError(f"{self.root / INFO_PATH}: expected keys {missing}, found none")
        if self.info["codebase_version"] != CODEBASE_VERSION:
            raise DatasetFormatError(
                f"{self.root / INFO_PATH}: expected codebase_version {CODEBASE_VERSION}, "
                f"found {self.info['codebase_version']!r}"
            )
        self.fps: int = int(self.info["fps"])
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.robot_type: str | None = self.info.get("robot_type")
        self.video_keys: list[str] = video_keys(self.features)
        self.data_keys: list[str] = data_keys(self.features)
        self.tasks: list[str] = self._load_tasks()
        self.episodes: dict[str, Any] = self._load_episodes()
        self._check_files()

    # -- metadata ----------------------------------------------------------------------------

    @property
    def num_episodes(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def num_frames(self) -> int:
        return int(self.info["total_frames"])

    @cached_property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """``meta/stats.json``: per feature ``min/max/mean/std/count/q01..q99`` as numpy arrays."""
        return feature_stats.from_json(read_json(self.root / STATS_PATH))

    def _load_tasks(self) -> list[str]:
        path = self.root / TASKS_PATH
        table = read_parquet(path)
        if "task_index" not in table.column_names or "task" not in table.column_names:
            raise DatasetFormatError(f"{path}: expected columns 'task' and 'task_index', found {table.column_names}")
        indices = table.column("task_index").to_numpy()
        names = table.column("task").to_pylist()
        if sorted(indices.tolist()) != list(range(len(names))):
            raise DatasetFormatError(
                f"{path}: expected task indices 0..{len(names) - 1}, found {sorted(indices.tolist())}"
            )
        if len(names) != int(self.info["total_tasks"]):
            raise DatasetFormatError(
                f"{path}: expected {self.info['total_tasks']} tasks (info.json), found {len(names)}"
            )
        ordered = [""] * len(names)
        for index, name in zip(indices.tolist(), names, strict=True):
            ordered[index] = name
        return ordered

    def _load_episodes(self) -> dict[str, Any]:
        folder = self.root / EPISODES_DIR
        paths = sorted(folder.glob("*/*.parquet"))
        if not paths:
            raise DatasetFormatError(f"{folder}: expected episode metadata files, found none")
        tables = [read_parquet(path) for path in paths]
        columns = [name for name in tables[0].column_names if not name.startswith("stats/")]
        table = pa.concat_tables([t.select(columns) for t in tables])
        episodes: dict[str, Any] = {}
        for name in columns:
            column = table.column(name)
            if pa.types.is_list(column.type) or pa.types.is_string(column.type):
                episodes[name] = column.to_pylist()
            else:
                episodes[name] = column.to_numpy()
        where = f"{folder}"
        required = [
            "episode_index",
            "tasks",
            "length",
            "data/chunk_index",
            "data/file_index",
            "dataset_from_index",
            "dataset_to_index",
        ]
        for key in self.video_keys:
            required += [
                f"videos/{key}/{name}" for name in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
            ]
        missing = [name for name in required if name not in episodes]
        if missing:
            raise DatasetFormatError(f"{where}: expected episode columns {missing}, found none")
        count = len(episodes["episode_index"])
        if count != self.num_episodes:
            raise DatasetFormatError(f"{where}: expected {self.num_episodes} episodes (info.json), found {count}")
        order = np.argsort(episodes["episode_index"], kind="stable")
        episodes = {
            name: (values[order] if isinstance(values, np.ndarray) else [values[i] for i in order])
            for name, values in episodes.items()
        }
        if not np.array_equal(episodes["episode_index"], np.arange(count)):
            raise DatasetFormatError(
                f"{where}: expected episode indices 0..{count - 1}, found {episodes['episode_index'].tolist()}"
            )
        starts, ends, lengths = episodes["dataset_from_index"], episodes["dataset_to_index"], episodes["length"]
        if np.any(ends - starts != lengths) or np.any(lengths <= 0):
            bad = int(np.flatnonzero((ends - starts != lengths) | (lengths <= 0))[0])
            raise DatasetFormatError(
                f"{where}: episode {bad} spans frames {starts[bad]}..{ends[bad]} but its length is {lengths[bad]}"
            )
        if starts[0] != 0 or np.any(starts[1:] != ends[:-1]):
            raise DatasetFormatError(
                f"{where}: expected contiguous frame ranges from 0, found starts {starts.tolist()}"
            )
        if int(ends[-1]) != self.num_frames:
            raise DatasetFormatError(f"{where}: episodes hold {int(ends[-1])} frames, info.json says {self.num_frames}")
        return episodes

    def _check_files(self) -> None:
        for episode in range(self.num_episodes):
            path = self.data_path(episode)
            if not path.is_file():
                raise DatasetFormatError(f"{path}: data file of episode {episode} is missing")
            for key in self.video_keys:
                path = self.video_path(episode, key)
                if not path.is_file():
                    raise DatasetFormatError(f"{path}: video of episode {episode} ({key}) is missing")

    # -- paths -------------------------------------------------------------------------------

    def _episode_check(self, episode: int) -> int:
        if not 0 <= int(episode) < self.num_episodes:
            raise DatasetFormatError(f"{self.root}: expected an episode in 0..{self.num_episodes - 1}, found {episode}")
        return int(episode)

    def data_path(self, episode: int) -> Path:
        episode = self._episode_check(episode)
        return self._inside("data_path", self.info["data_path"].format(
            chunk_index=int(self.episodes["data/chunk_index"][episode]),
            file_index=int(self.episodes["data/file_index"][episode]),
        ))

    def video_path(self, episode: int, camera: str) -> Path:
        episode = self._episode_check(episode)
        key = self._video_key(camera)
        return self._inside("video_path", self.info["video_path"].format(
            video_key=key,
            chunk_index=int(self.episodes[f"videos/{key}/chunk_index"][episode]),
            file_index=int(self.episodes[f"videos/{key}/file_index"][episode]),
        ))

    def _inside(self, template: str, relative: str) -> Path:
        """A path a template of ``meta/info.json`` made, refused when it leaves the dataset's folder."""
        path = confined(self.root, relative)
        if path is None:
            raise DatasetFormatError(
                f"{self.root / INFO_PATH}: {template} gives {relative!r}, outside the dataset's folder (refused)"
            )
        return path

    def _video_key(self, camera: str) -> str:
        key = camera if camera in self.video_keys else camera_key(camera)
        if key not in self.video_keys:
            raise DatasetFormatError(f"{self.root}: expected a camera in {self.video_keys}, found {camera!r}")
        return key

    # -- per-frame data ----------------------------------------------------------------------

    def _data_files(self, episodes: Sequence[int]) -> list[Path]:
        files: list[Path] = []
        for episode in episodes:
            path = self.data_path(episode)
            if path not in files:
                files.append(path)
        return files

    def frames(
        self, episodes: Sequence[int] | None = None, columns: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The per-frame table of ``episodes`` (default: all), ordered by ``index``.

        User features come as ``(N, *shape)`` arrays in their dtype (a one-value feature as
        ``(N, 1)``); ``timestamp``, ``frame_index``, ``episode_index``, ``index`` and
        ``task_index`` as ``(N,)``.
        """
        wanted = list(range(self.num_episodes)) if episodes is None else [self._episode_check(e) for e in episodes]
        names = list(columns) if columns is not None else list(self.data_keys)
        unknown = [name for name in names if name not in self.data_keys]
        if unknown:
            raise DatasetFormatError(f"{self.root}: expected columns from {self.data_keys}, found {unknown}")
        read = list(dict.fromkeys([*names, "episode_index", "index"]))
        tables = []
        for path in self._data_files(wanted):
            table = read_parquet(path, columns=read)
            mask = np.isin(table.column("episode_index").to_numpy(), np.asarray(wanted, dtype=np.int64))
            tables.append(table.filter(pa.array(mask)))
        table = pa.concat_tables(tables)
        order = np.argsort(table.column("index").to_numpy(), kind="stable")
        table = table.take(pa.array(order))
        expected_rows = int(sum(int(self.episodes["length"][e]) for e in wanted))
        if table.num_rows != expected_rows:
            raise DatasetFormatError(
                f"{self.root}: expected {expected_rows} frames for episodes {wanted[:5]}..., "
                f"the data files hold {table.num_rows}"
            )
        result: dict[str, np.ndarray] = {}
        for name in names:
            column = table.column(name)
            if name in DEFAULT_COLUMNS:
                result[name] = column.to_numpy()
            else:
                result[name] = column_to_numpy(column, self.features[name])
        return result

    def episode_frames(self, episode: int, columns: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The per-frame table of one episode (see :meth:`frames`)."""
        return self.frames([episode], columns)

    # -- video -------------------------------------------------------------------------------

    def episode_timestamps(self, episode: int) -> np.ndarray:
        """The episode's frame timestamps (seconds from its start), from the data file."""
        return self.episode_frames(episode, ["timestamp"])["timestamp"].astype(np.float64)

    def video_frames(self, episode: int, camera: str, timestamps: Sequence[float] | None = None) -> np.ndarray:
        """Decoded RGB frames ``(N, H, W, 3)`` uint8 of ``camera`` in ``episode`` at episode-relative ``timestamps``.

        Default: every frame of the episode, at its data timestamps. Each frame must lie within
        the tolerance (1e-4 s) of ``from_timestamp + timestamp`` in the camera's file.
        """
        episode = self._episode_check(episode)
        key = self._video_key(camera)
        query = self.episode_timestamps(episode) if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        start = float(self.episodes[f"videos/{key}/from_timestamp"][episode])
        return decode_at(self.video_path(episode, key), start + query, self.tolerance_s)

    def iter_video_frames(self, episode: int, camera: str) -> Iterator[tuple[float, np.ndarray]]:
        """Stream an episode's frames in order as (episode-relative time, RGB frame), one decode pass.

        Raises :class:`VideoError` when the file holds a different number of frames for the
        episode than its length, or a frame off the ``k / fps`` grid by more than the tolerance.
        """
        episode = self._episode_check(episode)
        key = self._video_key(camera)
        start = float(self.episodes[f"videos/{key}/from_timestamp"][episode])
        length = int(self.episodes["length"][episode])
        end = start + (length - 1) / self.fps
        count = 0
        for moment, frame in iter_frames(self.video_path(episode, key), start, end, margin_s=self.tolerance_s):
            relative = moment - start
            if abs(relative - count / self.fps) > self.tolerance_s:
                raise VideoError(
                    f"{self.video_path(episode, key)}: episode {episode} frame {count} is at {relative:.6f} s, "
                    f"expected {count / self.fps:.6f} s"
                )
            yield relative, frame
            count += 1
        if count != length:
            raise VideoError(
                f"{self.video_path(episode, key)}: episode {episode} has {count} frames, expected {length}"
            )

    # -- deep check --------------------------------------------------------------------------

    def validate(self) -> None:
        """Check every data file (rows, indices, timestamps) and every video (frame counts, ranges)."""
        data = self.frames(columns=list(DEFAULT_COLUMNS))
        if not np.array_equal(data["index"], np.arange(self.num_frames)):
            raise DatasetFormatError(f"{self.root}: expected the index column to be 0..{self.num_frames - 1}")
        for episode in range(self.num_episodes):
            lo, hi = int(self.episodes["dataset_from_index"][episode]), int(self.episodes["dataset_to_index"][episode])
            if not np.all(data["episode_index"][lo:hi] == episode):
                raise DatasetFormatError(
                    f"{self.data_path(episode)}: rows {lo}..{hi} do not all belong to episode {episode}"
                )
            if not np.array_equal(data["frame_index"][lo:hi], np.arange(hi - lo)):
                raise DatasetFormatError(
                    f"{self.data_path(episode)}: episode {episode} frame_index is not 0..{hi - lo - 1}"
                )
            stamps = data["timestamp"][lo:hi].astype(np.float64)
            if np.any(np.abs(stamps - np.arange(hi - lo) / self.fps) > self.tolerance_s):
                raise DatasetFormatError(
                    f"{self.data_path(episode)}: episode {episode} timestamps are not k/{self.fps}"
                )
            if np.any(data["task_index"][lo:hi] >= len(self.tasks)):
                raise DatasetFormatError(f"{self.data_path(episode)}: episode {episode} has a task_index with no task")
        for key in self.video_keys:
            frames_by_file: dict[Path, int] = {}
            end_by_file: dict[Path, float] = {}
            for episode in range(self.num_episodes):
                path = self.video_path(episode, key)
                start = float(self.episodes[f"videos/{key}/from_timestamp"][episode])
                stop = float(self.episodes[f"videos/{key}/to_timestamp"][episode])
                length = int(self.episodes["length"][episode])
                if abs((stop - start) - length / self.fps) > self.tolerance_s:
                    raise DatasetFormatError(
                        f"{path}: episode {episode} spans {stop - start:.6f} s of video "
                        f"for {length} frames at {self.fps} fps"
                    )
                if abs(start - end_by_file.get(path, 0.0)) > self.tolerance_s:
                    raise DatasetFormatError(
                        f"{path}: episode {episode} starts at {start:.6f} s, not where the previous ends"
                    )
                end_by_file[path] = stop
                frames_by_file[path] = frames_by_file.get(path, 0) + length
            for path, expected in frames_by_file.items():
                try:
                    found = probe(path).frames
                except VideoError as error:
                    raise DatasetFormatError(str(error)) from error
                if found != expected:
                    raise DatasetFormatError(f"{path}: expected {expected} frames for its episodes, found {found}")


def open_dataset(
    root: str | os.PathLike[str], *, tolerance_s: float = TIMESTAMP_TOLERANCE_S, allow_stale: bool = False
) -> LeRobotDataset:
    """Open and check the LeRobot v3.0 dataset at ``root`` (a stale one only with ``allow_stale``)."""
    return LeRobotDataset(root, tolerance_s=tolerance_s, allow_stale=allow_stale)
