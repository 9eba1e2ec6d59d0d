"""LeRobot v3.0 datasets, written (and, through :mod:`lerobot_reader`, read) without LeRobot.

Writing::

    from robot_brain.datasets import lerobot

    writer = lerobot.create(out, fps=30, robot_type="panda", features={
        "observation.state": lerobot.vector_feature(joint_names),
        "action": lerobot.vector_feature(joint_names),
        "observation.images.scene": lerobot.video_feature(480, 640),
    })
    for segment in segments:                        # e.g. from robot_brain.datasets.resample
        writer.add_episode("pick the red cube",
                           columns={"observation.state": q, "action": q_cmd},   # (T, D) arrays
                           images={"scene": frames},  # (T, H, W, 3) uint8, or an iterator of frames
                           timestamps=segment.timestamps, provenance=manifest_dict)
    summary = writer.finalize(export={"excluded": [...]})

The files are those LeRobot's own writer produces (see :mod:`lerobot_format` for the layout,
:mod:`stats` for the statistics, :mod:`video` for the encoding). Episodes are contiguous: frame
``k`` of an episode is at ``k / fps`` seconds, as LeRobot's recorder stamps them; streams are
put on that grid by :mod:`robot_brain.datasets.resample`, which splits an episode where inputs are
missing instead of stamping late data as on time.

**Crash safety.** LeRobot keeps parquet writers open across episodes, so a crash loses the
whole session (lerobot#3522). Here each :meth:`LeRobotWriter.add_episode` writes that
episode's files completely (data parquet, one MP4 per camera with its frame count checked,
statistics and provenance) into a temporary folder under ``.staging/`` and renames it into
place: an episode is either entirely staged or absent. :meth:`LeRobotWriter.finalize` joins the
staged episodes into the LeRobot layout (parquet row groups copied, MP4 packets copied, no
re-encoding) and writes ``meta/info.json`` last. Until then the root holds ``INCOMPLETE.json``
and no ``meta/info.json``: an interrupted export is a clearly unfinished folder that neither
LeRobot nor :class:`~robot_brain.datasets.lerobot_reader.LeRobotDataset` will load, and
:func:`recover` turns it into a valid dataset of the episodes finished before the crash.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robot_brain.datasets import stats as feature_stats
from robot_brain.datasets.dataset_provenance import check_no_personal_data, write_provenance
from robot_brain.datasets.lerobot_format import (
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DATA_FILE_SIZE_IN_MB,
    DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    EPISODES_PATH,
    INCOMPLETE_MARKER,
    INFO_PATH,
    STAGING_DIR,
    STATS_PATH,
    TASKS_PATH,
    TIMESTAMP_TOLERANCE_S,
    VIDEO_PATH,
    DatasetFormatError,
    Features,
    all_features,
    camera_key,
    data_keys,
    data_schema,
    json_bytes,
    next_chunk_file,
    normalize_features,
    read_json,
    tasks_table,
    vector_feature,
    video_feature,
    video_keys,
)
from robot_brain.datasets.lerobot_reader import LeRobotDataset, open_dataset
from robot_brain.datasets.video import VideoEncoding, VideoError, concatenate, encode_frames, probe
from robot_brain.storage.files import atomic_write_bytes, fsync_directory, fsync_file, temporary_sibling
from robot_brain.storage.times import format_time, utc_now

__all__ = [
    "DatasetFormatError",
    "DatasetSummary",
    "EpisodeSummary",
    "LeRobotDataset",
    "LeRobotWriter",
    "VideoEncoding",
    "VideoError",
    "camera_key",
    "create",
    "open_dataset",
    "recover",
    "resume",
    "vector_feature",
    "video_feature",
]

EXPORT_FORMAT = "robot_brain.lerobot_export/1"
#: A dataset holds people's motions and camera frames: its folder and files are the owner's only.
DATASET_DIR_MODE = 0o700
DATASET_FILE_MODE = 0o600
MB = 1024**2


@dataclass(frozen=True)
class EpisodeSummary:
    """One staged episode: its index, frame range in the dataset, task and encoded frames per camera."""

    episode_index: int
    length: int
    task: str
    task_index: int
    dataset_from_index: int
    dataset_to_index: int
    video_frames: dict[str, int]


@dataclass(frozen=True)
class DatasetSummary:
    """A finalized dataset: totals, the files written (relative paths), bytes on disk and content hash."""

    root: Path
    episodes: int
    frames: int
    tasks: list[str]
    data_files: list[str]
    video_files: dict[str, list[str]]
    size_bytes: int
    content_hash: str
    video_frames: dict[str, int] = field(default_factory=dict)


def _seal(path: Path) -> None:
    """A file a library wrote (pyarrow, PyAV): owner-only, then durable, before it is renamed into place."""
    os.chmod(path, DATASET_FILE_MODE)
    fsync_file(path)


def _episode_dir_name(index: int) -> str:
    return f"episode-{index:06d}"



def _encoding_to_json(encoding: VideoEncoding) -> dict[str, Any]:
    return {
        "codec": encoding.codec,
        "pix_fmt": encoding.pix_fmt,
        "g": encoding.g,
        "crf": encoding.crf,
        "preset": encoding.preset,
        "fast_decode": encoding.fast_decode,
        "threads": encoding.threads,
        "extra_options": dict(encoding.extra_options),
    }


class _FrameSampler:
    """Keeps the frames LeRobot's image statistics sample, downsampled, while they stream to the encoder."""

    def __init__(self, num_frames: int) -> None:
        self._wanted = set(feature_stats.image_sample_indices(num_frames).tolist())
        self.samples: list[np.ndarray] = []

    def __call__(self, index: int, frame: np.ndarray) -> None:
        if index in self._wanted:
            self.samples.append(feature_stats.downsample_for_stats(frame).copy())


def _add_stats_columns(rows: list[dict[str, Any]], episode_stats: list[dict[str, dict[str, np.ndarray]]]) -> None:
    """Add each episode's statistics to its ``meta/episodes`` row as ``stats/<feature>/<stat>`` columns."""
    for row, ep_stats in zip(rows, episode_stats, strict=True):
        for name, values in feature_stats.to_json(ep_stats).items():
            for stat, value in values.items():
                row[f"stats/{name}/{stat}"] = value


class LeRobotWriter:
    """Writes one LeRobot v3.0 dataset, episode by episode; made by :func:`create` or :func:`resume`."""

    def __init__(self, root: Path, config: Mapping[str, Any]) -> None:
        self.root = root
        self.fps: int = int(config["fps"])
        self.robot_type: str | None = config.get("robot_type")
        self.user_features: Features = normalize_features(config["features"])
        self.features: Features = all_features(self.user_features)
        self.encoding = VideoEncoding(**config["video"])
        self.chunks_size: int = int(config["chunks_size"])
        # Integers in practice (LeRobot's defaults 100 and 200); fractions are allowed to test rollover.
        self.data_files_size_in_mb: float = config["data_files_size_in_mb"]
        self.video_files_size_in_mb: float = config["video_files_size_in_mb"]
        self._schema = data_schema(self.features)
        self._staging = root / STAGING_DIR
        self._tasks: list[str] = []
        self._episodes: list[dict[str, Any]] = []
        self._finalized = False

    # -- state ---------------------------------------------------------------------------

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    @property
    def num_frames(self) -> int:
        return self._episodes[-1]["dataset_to_index"] if self._episodes else 0

    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    def _load_staged(self) -> None:
        for leftover in self._staging.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        staged = sorted(p for p in self._staging.glob("episode-*") if p.is_dir())
        for position, folder in enumerate(staged):
            meta = read_json(folder / "episode.json")
            if meta.get("episode_index") != position or folder.name != _episode_dir_name(position):
                raise DatasetFormatError(f"{folder}: expected staged episode {position}, found {folder.name}")
            expected_from = self._episodes[-1]["dataset_to_index"] if self._episodes else 0
            if meta.get("dataset_from_index") != expected_from:
                raise DatasetFormatError(
                    f"{folder}: expected dataset_from_index {expected_from}, found {meta.get('dataset_from_index')}"
                )
            for name in ["data.parquet"] + [f"{key}.mp4" for key in video_keys(self.features)]:
                if not (folder / name).is_file():
                    raise DatasetFormatError(f"{folder}: staged episode lacks {name}")
            if meta["task"] not in self._tasks:
                self._tasks.append(meta["task"])
            self._episodes.append(meta)

    def _check_open(self) -> None:
        if self._finalized:
            raise DatasetFormatError(f"{self.root}: the dataset is finalized; no more episodes can be added")

    # -- input checks ------------------------------------------------------------------------

    def _prepare_columns(self, columns: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], int]:
        expected = data_keys(self.user_features)
        missing = [k for k in expected if k not in columns]
        extra = [k for k in columns if k not in expected]
        if missing or extra:
            raise DatasetFormatError(f"expected columns {expected}, missing {missing}, unexpected {extra}")
        prepared: dict[str, np.ndarray] = {}
        length: int | None = None
        for key in expected:
            spec = self.user_features[key]
            array = np.asarray(columns[key])
            width = spec["shape"][0]
            if array.ndim == 1 and width == 1:
                array = array.reshape(-1, 1)
            if array.ndim != 2 or array.shape[1] != width:
                raise DatasetFormatError(f"column {key!r}: expected shape (T, {width}), found {array.shape}")
            target = np.dtype(spec["dtype"])
            if target == np.bool_ and array.dtype != np.bool_:
                raise DatasetFormatError(f"column {key!r}: expected bool values, found {array.dtype}")
            if not (
                np.can_cast(array.dtype, target, casting="same_kind")
                or (target.kind == "f" and array.dtype.kind in "iub")
            ):
                raise DatasetFormatError(f"column {key!r}: expected {target} values, found {array.dtype}")
            if target.kind in "iu" and array.size:
                limits = np.iinfo(target)
                if array.min() < limits.min or array.max() > limits.max:
                    raise DatasetFormatError(f"column {key!r}: values outside the range of {target}")
            converted = array.astype(target)
            if target.kind == "f" and not np.isfinite(converted).all():
                frame = int(np.flatnonzero(~np.isfinite(converted).all(axis=1))[0])
                raise DatasetFormatError(f"column {key!r}: expected finite values, frame {frame} has NaN or inf")
            if length is None:
                length = array.shape[0]
            elif array.shape[0] != length:
                raise DatasetFormatError(
                    f"column {key!r}: expected {length} frames like the others, found {array.shape[0]}"
                )
            prepared[key] = converted
        if not length:
            raise DatasetFormatError("expected an episode of at least one frame, found none")
        return prepared, length

    def _check_timestamps(self, timestamps: Any, length: int) -> None:
        stamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if stamps.shape[0] != length:
            raise DatasetFormatError(f"expected {length} timestamps (one per frame), found {stamps.shape[0]}")
        expected = np.arange(length) / self.fps
        error = np.abs(stamps - expected)
        if not np.all(error <= TIMESTAMP_TOLERANCE_S):
            frame = int(np.argmax(error > TIMESTAMP_TOLERANCE_S))
            raise DatasetFormatError(
                f"expected frame k at k/{self.fps} s from 0 without gaps (±{TIMESTAMP_TOLERANCE_S} s); "
                f"frame {frame} is at {stamps[frame]:.6f} s, not {expected[frame]:.6f} s "
                "(split episodes at gaps: robot_brain.datasets.resample)"
            )

    def _prepare_images(self, images: Mapping[str, Any] | None, length: int) -> dict[str, Any]:
        expected = video_keys(self.user_features)
        given = {camera_key(name): frames for name, frames in (images or {}).items()}
        missing = [k for k in expected if k not in given]
        extra = [k for k in given if k not in expected]
        if missing or extra:
            raise DatasetFormatError(f"expected images for {expected}, missing {missing}, unexpected {extra}")
        for key, frames in given.items():
            if isinstance(frames, np.ndarray):
                height, width, _ = self.user_features[key]["shape"]
                if frames.shape != (length, height, width, 3) or frames.dtype != np.uint8:
                    raise DatasetFormatError(
                        f"images {key!r}: expected ({length}, {height}, {width}, 3) uint8, "
                        f"found {frames.shape} {frames.dtype}"
                    )
        return given

    # -- writing -----------------------------------------------------------------------------

    def add_episode(
        self,
        task: str,
        columns: Mapping[str, Any],
        images: Mapping[str, np.ndarray | Iterable[np.ndarray]] | None = None,
        timestamps: Any = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> EpisodeSummary:
        """Stage one episode completely, or raise and leave the dataset as it was.

        ``columns``: every numeric feature, ``(T, D)`` (``(T,)`` for one-value features), cast to
        the feature's dtype (floats must be finite). ``images``: every video feature, by camera
        name or full key, as ``(T, H, W, 3)`` uint8 RGB or an iterator of ``T`` such frames
        (read once, streamed to the encoder). ``timestamps``: optional; when given they must be
        ``k / fps`` from 0 without gaps (±1e-4 s). ``provenance``: this episode's provenance
        (from its manifest, pseudonyms only), kept for ``meta/provenance.json``.
        """
        self._check_open()
        if not isinstance(task, str) or not task.strip():
            raise DatasetFormatError(f"expected a task description, found {task!r}")
        prepared, length = self._prepare_columns(columns)
        if timestamps is not None:
            self._check_timestamps(timestamps, length)
        frames_by_key = self._prepare_images(images, length)
        source = dict(provenance or {})
        check_no_personal_data(source, "episode provenance")
        json_bytes(source)  # provenance must be JSON: fail before anything is written

        episode_index = self.num_episodes
        task_index = self._tasks.index(task) if task in self._tasks else len(self._tasks)
        dataset_from = self.num_frames
        self._staging.mkdir(parents=True, exist_ok=True)
        temporary = self._staging / f".tmp-{episode_index:06d}-{uuid.uuid4().hex[:8]}"
        temporary.mkdir()
        try:
            table = self._episode_table(prepared, length, episode_index, dataset_from, task_index)
            pq.write_table(table, temporary / "data.parquet", compression="snappy", use_dictionary=True)
            _seal(temporary / "data.parquet")
            video_frames, samples = self._encode_episode_videos(temporary, frames_by_key, length)
            episode_stats = self._episode_stats(table, samples, length)
            meta = {
                "episode_index": episode_index,
                "task": task,
                "task_index": task_index,
                "length": length,
                "dataset_from_index": dataset_from,
                "dataset_to_index": dataset_from + length,
                "video_frames": video_frames,
                "stats": feature_stats.to_json(episode_stats),
                "provenance": source,
                "staged": format_time(utc_now()),
            }
            self._commit_staged_episode(temporary, episode_index, meta)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        if task_index == len(self._tasks):
            self._tasks.append(task)
        self._episodes.append(meta)
        return EpisodeSummary(
            episode_index=episode_index,
            length=length,
            task=task,
            task_index=task_index,
            dataset_from_index=dataset_from,
            dataset_to_index=dataset_from + length,
            video_frames=video_frames,
        )

    def _encode_episode_videos(
        self, temporary: Path, frames_by_key: Mapping[str, Any], length: int
    ) -> tuple[dict[str, int], dict[str, np.ndarray]]:
        """Encode and fsync one MP4 per camera in ``temporary``; (frames encoded, stacked stats samples) by key."""
        video_frames: dict[str, int] = {}
        samples: dict[str, np.ndarray] = {}
        for key, frames in frames_by_key.items():
            height, width, _ = self.user_features[key]["shape"]
            sampler = _FrameSampler(length)
            path = temporary / f"{key}.mp4"
            video_frames[key] = encode_frames(
                path,
                frames,
                fps=self.fps,
                height=height,
                width=width,
                encoding=self.encoding,
                expected_frames=length,
                on_frame=sampler,
            )
            _seal(path)
            samples[key] = np.stack(sampler.samples)
        return video_frames, samples

    def _episode_stats(
        self, table: pa.Table, samples: Mapping[str, np.ndarray], length: int
    ) -> dict[str, dict[str, np.ndarray]]:
        """Per-feature statistics of one episode: image stats from the sampled frames, vector stats from the table."""
        episode_stats: dict[str, dict[str, np.ndarray]] = {}
        for key, spec in self.features.items():
            if spec["dtype"] == "video":
                episode_stats[key] = feature_stats.image_stats(samples[key])
            else:
                values = table.column(key).combine_chunks()
                if pa.types.is_fixed_size_list(values.type):
                    array = values.flatten().to_numpy(zero_copy_only=False).reshape(length, -1)
                else:
                    array = values.to_numpy(zero_copy_only=False)
                episode_stats[key] = feature_stats.vector_stats(array)
        return episode_stats

    def _commit_staged_episode(self, temporary: Path, episode_index: int, meta: Mapping[str, Any]) -> None:
        """Write ``episode.json``, fsync the temporary folder and rename it into ``.staging/`` (then fsync that)."""
        atomic_write_bytes(temporary / "episode.json", json_bytes(meta), mode=DATASET_FILE_MODE)
        fsync_directory(temporary)
        os.rename(temporary, self._staging / _episode_dir_name(episode_index))
        fsync_directory(self._staging)

    def _episode_table(
        self, columns: Mapping[str, np.ndarray], length: int, episode_index: int, dataset_from: int, task_index: int
    ) -> pa.Table:
        arrays: list[pa.Array] = []
        for field_ in self._schema:
            key = field_.name
            if key in columns:
                values = columns[key]
                if pa.types.is_fixed_size_list(field_.type):
                    flat = pa.array(values.reshape(-1), type=field_.type.value_type)
                    arrays.append(pa.FixedSizeListArray.from_arrays(flat, values.shape[1]))
                else:
                    arrays.append(pa.array(values.reshape(-1), type=field_.type))
            elif key == "timestamp":
                arrays.append(pa.array((np.arange(length) / self.fps).astype(np.float32)))
            elif key == "frame_index":
                arrays.append(pa.array(np.arange(length, dtype=np.int64)))
            elif key == "episode_index":
                arrays.append(pa.array(np.full(length, episode_index, dtype=np.int64)))
            elif key == "index":
                arrays.append(pa.array(np.arange(dataset_from, dataset_from + length, dtype=np.int64)))
            elif key == "task_index":
                arrays.append(pa.array(np.full(length, task_index, dtype=np.int64)))
            else:  # pragma: no cover - the schema is built from the same features
                raise DatasetFormatError(f"no values for column {key!r}")
        return pa.Table.from_arrays(arrays, schema=self._schema)

    # -- finalizing --------------------------------------------------------------------------

    def finalize(
        self,
        export: Mapping[str, Any] | None = None,
        *,
        software: Mapping[str, Any] | None = None,
        license: str | None = "apache-2.0",
        title: str | None = None,
    ) -> DatasetSummary:
        """Join the staged episodes into the LeRobot layout, write provenance and the card, then ``info.json``.

        ``export``: free-form export context for ``meta/provenance.json`` (e.g. the data root,
        when consent was checked, episodes excluded with their reasons; pseudonyms only).
        ``software``: the exporting software (default: robot_brain's package version).
        Safe to call again after a crash inside it (see :func:`recover`).
        """
        self._check_open()
        if not self._episodes:
            raise DatasetFormatError(f"{self.root}: no episode was added; nothing to finalize")
        check_no_personal_data(dict(export or {}), "export")
        self._remove_finalized_output()
        folders = [self._staging / _episode_dir_name(e["episode_index"]) for e in self._episodes]
        rows: list[dict[str, Any]] = [
            {"episode_index": e["episode_index"], "tasks": [e["task"]], "length": e["length"]} for e in self._episodes
        ]
        data_files = self._write_data_files(folders, rows)
        video_files: dict[str, list[str]] = {}
        video_info: dict[str, dict[str, Any]] = {}
        for key in video_keys(self.features):
            video_files[key], video_info[key] = self._write_video_files(key, folders, rows)
        episode_stats = [feature_stats.from_json(e["stats"]) for e in self._episodes]
        _add_stats_columns(rows, episode_stats)
        self._write_episode_files(rows)
        self._write_table(TASKS_PATH, tasks_table(self._tasks))
        atomic_write_bytes(
            self.root / STATS_PATH, json_bytes(feature_stats.to_json(feature_stats.aggregate(episode_stats))),
            mode=DATASET_FILE_MODE,
        )

        info_content = json_bytes(self._info_document(video_info))
        document = write_provenance(
            self.root,
            self._episodes_provenance(),
            software=software,
            export=export,
            info_bytes=info_content,
            license=license,
            title=title,
        )
        atomic_write_bytes(self.root / INFO_PATH, info_content, mode=DATASET_FILE_MODE)
        (self.root / INCOMPLETE_MARKER).unlink(missing_ok=True)
        fsync_directory(self.root)
        shutil.rmtree(self._staging, ignore_errors=True)
        self._finalized = True
        size = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        return DatasetSummary(
            root=self.root,
            episodes=self.num_episodes,
            frames=self.num_frames,
            tasks=list(self._tasks),
            data_files=data_files,
            video_files=video_files,
            size_bytes=size,
            content_hash=document["content_hash"]["value"],
            video_frames={key: sum(e["video_frames"][key] for e in self._episodes) for key in video_files},
        )

    def _remove_finalized_output(self) -> None:
        """Remove what an earlier, interrupted finalize may have written: ``data``, ``videos``, ``meta``, the card."""
        for name in ("data", "videos", "meta"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        (self.root / "README.md").unlink(missing_ok=True)

    def _info_document(self, video_info: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """The ``meta/info.json`` document, with each video feature's info completed from its written files."""
        features = json.loads(json.dumps(self.features))
        for key, extra in video_info.items():
            features[key]["info"] = {**features[key].get("info", {}), **extra}
        return {
            "codebase_version": CODEBASE_VERSION,
            "fps": self.fps,
            "features": features,
            "total_episodes": self.num_episodes,
            "total_frames": self.num_frames,
            "total_tasks": len(self._tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.data_files_size_in_mb,
            "video_files_size_in_mb": self.video_files_size_in_mb,
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH,
            "robot_type": self.robot_type,
            "splits": {"train": f"0:{self.num_episodes}"},
        }

    def _episodes_provenance(self) -> list[dict[str, Any]]:
        """One provenance entry per staged episode (index, length, task, source) for ``meta/provenance.json``."""
        return [
            {"episode_index": e["episode_index"], "length": e["length"], "task": e["task"], "source": e["provenance"]}
            for e in self._episodes
        ]

    def _write_table(self, relative: str, table: pa.Table) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = temporary_sibling(target)
        pq.write_table(table, temporary, compression="snappy", use_dictionary=True)
        _seal(temporary)
        os.replace(temporary, target)
        fsync_directory(target.parent)

    def _write_data_files(self, folders: list[Path], rows: list[dict[str, Any]]) -> list[str]:
        """Group episodes into data files with LeRobot's rollover rule and copy their row groups."""
        groups: list[tuple[int, int, list[int]]] = []
        chunk, file, size, frames = 0, 0, 0.0, 0
        for position, folder in enumerate(folders):
            episode_size = (folder / "data.parquet").stat().st_size / MB
            length = self._episodes[position]["length"]
            if groups:
                per_frame = size / frames if frames else 0.0
                if size + per_frame * length >= self.data_files_size_in_mb:
                    chunk, file = next_chunk_file(chunk, file, self.chunks_size)
                    size, frames = 0.0, 0
            if not groups or groups[-1][:2] != (chunk, file):
                groups.append((chunk, file, []))
            groups[-1][2].append(position)
            size += episode_size
            frames += length
            rows[position]["data/chunk_index"] = chunk
            rows[position]["data/file_index"] = file
            rows[position]["dataset_from_index"] = self._episodes[position]["dataset_from_index"]
            rows[position]["dataset_to_index"] = self._episodes[position]["dataset_to_index"]
        written: list[str] = []
        for chunk, file, members in groups:
            relative = DATA_PATH.format(chunk_index=chunk, file_index=file)
            target = self.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = temporary_sibling(target)
            with pq.ParquetWriter(temporary, self._schema, compression="snappy", use_dictionary=True) as out:
                for position in members:
                    table = pq.read_table(folders[position] / "data.parquet")
                    if not table.schema.equals(self._schema, check_metadata=False):
                        raise DatasetFormatError(f"{folders[position]}: staged data does not match the features")
                    out.write_table(table.replace_schema_metadata(self._schema.metadata))
            _seal(temporary)
            os.replace(temporary, target)
            fsync_directory(target.parent)
            written.append(relative)
        return written

    def _write_video_files(
        self, key: str, folders: list[Path], rows: list[dict[str, Any]]
    ) -> tuple[list[str], dict[str, Any]]:
        """Group one camera's episodes into files with LeRobot's rollover rule and concatenate them."""
        groups: list[tuple[int, int, list[int]]] = []
        chunk, file, size = 0, 0, 0.0
        for position, folder in enumerate(folders):
            episode_size = (folder / f"{key}.mp4").stat().st_size / MB
            if groups and size + episode_size >= self.video_files_size_in_mb:
                chunk, file = next_chunk_file(chunk, file, self.chunks_size)
                size = 0.0
            if not groups or groups[-1][:2] != (chunk, file):
                groups.append((chunk, file, []))
            groups[-1][2].append(position)
            size += episode_size
        written: list[str] = []
        first_probe = None
        for chunk, file, members in groups:
            relative = VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            target = self.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = temporary_sibling(target, ".mp4")  # the muxer picks MP4 from the suffix
            try:
                starts = concatenate([folders[p] / f"{key}.mp4" for p in members], temporary, self.fps)
                _seal(temporary)
                os.replace(temporary, target)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
            fsync_directory(target.parent)
            written.append(relative)
            for position, start in zip(members, starts, strict=True):
                frames = self._episodes[position]["video_frames"][key]
                rows[position][f"videos/{key}/chunk_index"] = chunk
                rows[position][f"videos/{key}/file_index"] = file
                rows[position][f"videos/{key}/from_timestamp"] = start
                rows[position][f"videos/{key}/to_timestamp"] = start + frames / self.fps
            if first_probe is None:
                first_probe = probe(target)
        if first_probe is None:  # pragma: no cover - there is always one episode
            raise VideoError(f"{key}: no video written")
        return written, {**first_probe.info(), **self.encoding.info_fields(), "is_depth_map": False}

    def _write_episode_files(self, rows: list[dict[str, Any]]) -> None:
        """``meta/episodes`` files, rolled over at ``data_files_size_in_mb`` like LeRobot's metadata buffer."""
        chunk, file, size = 0, 0, 0
        groups: list[tuple[int, int, list[dict[str, Any]]]] = []
        for row in rows:
            row_size = len(json.dumps(row))
            if groups and size + row_size >= self.data_files_size_in_mb * MB:
                chunk, file = next_chunk_file(chunk, file, self.chunks_size)
                size = 0
            if not groups or groups[-1][:2] != (chunk, file):
                groups.append((chunk, file, []))
            row["meta/episodes/chunk_index"] = chunk
            row["meta/episodes/file_index"] = file
            groups[-1][2].append(row)
            size += row_size
        for chunk, file, members in groups:
            columns = {name: [member[name] for member in members] for name in members[0]}
            self._write_table(EPISODES_PATH.format(chunk_index=chunk, file_index=file), pa.Table.from_pydict(columns))


def create(
    root: str | os.PathLike[str],
    fps: int,
    features: Mapping[str, Mapping[str, Any]],
    robot_type: str | None = None,
    *,
    codec: str = "libsvtav1",
    crf: int | None = 30,
    preset: int | str | None = None,
    gop: int | None = 2,
    encoder_threads: int | None = None,
    chunks_size: int = DEFAULT_CHUNK_SIZE,
    data_files_size_in_mb: float = DEFAULT_DATA_FILE_SIZE_IN_MB,
    video_files_size_in_mb: float = DEFAULT_VIDEO_FILE_SIZE_IN_MB,
) -> LeRobotWriter:
    """Start a new dataset at ``root`` (which must not exist, or be an empty folder).

    ``features``: LeRobot feature dicts (see :func:`vector_feature`, :func:`video_feature`).
    ``codec``: ``libsvtav1`` (LeRobot's default) or ``h264``; ``crf``, ``preset`` (None: 12 for
    SVT-AV1, x264's own for h264) and ``gop`` as in LeRobot's ``VideoEncoderConfig``.
    """
    target = Path(root)
    if isinstance(fps, bool) or not isinstance(fps, int | np.integer) or fps <= 0:
        raise DatasetFormatError(f"expected fps as a positive integer (LeRobot's info.json), found {fps!r}")
    for label, value in (
        ("chunks_size", chunks_size),
        ("data_files_size_in_mb", data_files_size_in_mb),
        ("video_files_size_in_mb", video_files_size_in_mb),
    ):
        if value <= 0:
            raise DatasetFormatError(f"expected a positive {label}, found {value}")
    normalized = normalize_features(features)
    encoding = VideoEncoding(codec=codec, crf=crf, preset=preset, g=gop, threads=encoder_threads)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DatasetFormatError(f"{target}: expected a new dataset folder, found an existing non-empty one")
    config = {
        "format": EXPORT_FORMAT,
        "note": "an unfinished robot_brain export: robot_brain.datasets.lerobot.recover() finishes it",
        "created": format_time(utc_now()),
        "fps": int(fps),
        "robot_type": robot_type,
        "features": normalized,
        "video": _encoding_to_json(encoding),
        "chunks_size": int(chunks_size),
        "data_files_size_in_mb": data_files_size_in_mb,
        "video_files_size_in_mb": video_files_size_in_mb,
    }
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, DATASET_DIR_MODE)  # camera frames and motions of people: the owner only
    atomic_write_bytes(target / INCOMPLETE_MARKER, json_bytes(config), mode=DATASET_FILE_MODE)
    (target / STAGING_DIR).mkdir(exist_ok=True)
    return LeRobotWriter(target, config)


def resume(root: str | os.PathLike[str]) -> LeRobotWriter:
    """Reopen an unfinished export: the episodes staged before an interruption are kept, a half-staged one dropped."""
    target = Path(root)
    marker = target / INCOMPLETE_MARKER
    if not marker.is_file():
        if (target / INFO_PATH).is_file():
            raise DatasetFormatError(f"{target}: the dataset is already finalized")
        raise DatasetFormatError(
            f"{target}: expected an unfinished robot_brain export ({INCOMPLETE_MARKER}), found none"
        )
    config = read_json(marker)
    if config.get("format") != EXPORT_FORMAT:
        raise DatasetFormatError(f"{marker}: expected format {EXPORT_FORMAT}, found {config.get('format')!r}")
    writer = LeRobotWriter(target, config)
    (target / STAGING_DIR).mkdir(exist_ok=True)
    writer._load_staged()
    return writer


def recover(root: str | os.PathLike[str], export: Mapping[str, Any] | None = None) -> DatasetSummary:
    """Finish an interrupted export with the episodes it had completely staged."""
    return resume(root).finalize(export)
