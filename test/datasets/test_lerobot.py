"""LeRobot v3.0 export: the files are read back with pyarrow and PyAV directly, not only through our reader.

Video fidelity bound (tiny 64x48 synthetic frames, crf 30, a keyframe every 2 frames): every
decoded frame has a PSNR of at least 22 dB and a mean absolute error of at most 10 (of 255)
against the frame that was written, and is closer to it than to any other frame of its
episode (no frame shifted, dropped or duplicated).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.lerobot_support import CAMERAS, FPS, HEIGHT, JOINTS, WIDTH, episode_inputs, features, write_dataset

from robot_brain.datasets import lerobot
from robot_brain.datasets import stats as feature_stats
from robot_brain.errors import UserError

LENGTHS = (12, 17, 9)
MIN_PSNR_DB = 22.0
MAX_MAE = 10.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, lerobot.DatasetSummary, list]:
    root = tmp_path_factory.mktemp("lerobot") / "demo"
    summary, inputs = write_dataset(root, LENGTHS)
    return root, summary, inputs


def _episodes_table(root: Path) -> pa.Table:
    files = sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files])


def _decode_all(path: Path) -> tuple[np.ndarray, list[np.ndarray], av.video.stream.VideoStream]:
    """Every frame of a video with its time in seconds, by plain PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times, frames = [], []
        for frame in container.decode(stream):
            times.append(float(frame.pts * stream.time_base))
            frames.append(frame.to_ndarray(format="rgb24"))
        return np.asarray(times), frames, stream


def _psnr(decoded: np.ndarray, source: np.ndarray) -> float:
    mse = np.mean((decoded.astype(np.float64) - source.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def test_layout_and_info_json_follow_lerobot_v30(dataset):
    root, summary, _ = dataset
    for relative in [
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "data/chunk-000/file-000.parquet",
        "meta/provenance.json",
        "README.md",
    ]:
        assert (root / relative).is_file(), relative
    for camera in CAMERAS:
        assert (root / f"videos/observation.images.{camera}/chunk-000/file-000.mp4").is_file()
    assert not (root / "INCOMPLETE.json").exists() and not (root / ".staging").exists()

    info = json.loads((root / "meta/info.json").read_text())
    assert list(info) == [
        "codebase_version",
        "fps",
        "features",
        "total_episodes",
        "total_frames",
        "total_tasks",
        "chunks_size",
        "data_files_size_in_mb",
        "video_files_size_in_mb",
        "data_path",
        "video_path",
        "robot_type",
        "splits",
    ]
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS and isinstance(info["fps"], int)
    assert info["total_episodes"] == 3 and info["total_frames"] == sum(LENGTHS) and info["total_tasks"] == 2
    assert (info["chunks_size"], info["data_files_size_in_mb"], info["video_files_size_in_mb"]) == (1000, 100, 200)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert info["robot_type"] == "panda" and info["splits"] == {"train": "0:3"}

    feats = info["features"]
    assert list(feats)[-5:] == ["timestamp", "frame_index", "episode_index", "index", "task_index"]
    assert feats["timestamp"] == {"dtype": "float32", "shape": [1], "names": None}
    assert all(
        feats[k] == {"dtype": "int64", "shape": [1], "names": None}
        for k in ("frame_index", "episode_index", "index", "task_index")
    )
    assert feats["observation.state"] == {"dtype": "float32", "shape": [3], "names": JOINTS}
    video = feats["observation.images.scene"]
    assert video["dtype"] == "video" and video["shape"] == [HEIGHT, WIDTH, 3]
    assert video["names"] == ["height", "width", "channels"]
    assert video["info"] == {
        "is_depth_map": False,
        "video.height": HEIGHT,
        "video.width": WIDTH,
        "video.codec": "av1",
        "video.pix_fmt": "yuv420p",
        "video.fps": FPS,
        "video.channels": 3,
        "has_audio": False,
        "video.g": 2,
        "video.crf": 30,
        "video.preset": 12,
        "video.fast_decode": 0,
        "video.video_backend": "pyav",
        "video.extra_options": {},
    }
    assert summary.episodes == 3 and summary.frames == sum(LENGTHS)
    assert summary.video_frames == {f"observation.images.{c}": sum(LENGTHS) for c in CAMERAS}


def test_data_parquet_read_with_pyarrow(dataset):
    root, _, inputs = dataset
    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    schema = table.schema
    assert schema.names == [
        "observation.state",
        "action",
        "observation.ee_pose",
        "next.success",
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
    ]
    assert schema.field("observation.state").type == pa.list_(pa.float32(), 3)
    assert schema.field("observation.ee_pose").type == pa.list_(pa.float32(), 7)
    assert schema.field("next.success").type == pa.bool_()
    assert schema.field("timestamp").type == pa.float32()
    for name in ("frame_index", "episode_index", "index", "task_index"):
        assert schema.field(name).type == pa.int64()
    hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert hf["observation.state"] == {"feature": {"dtype": "float32", "_type": "Value"}, "length": 3, "_type": "List"}
    assert hf["timestamp"] == {"dtype": "float32", "_type": "Value"}
    assert pq.ParquetFile(path).metadata.num_row_groups == len(LENGTHS)  # one row group per episode

    episodes = _episodes_table(root).to_pydict()
    stamps = table.column("timestamp").to_numpy()
    frame_index = table.column("frame_index").to_numpy()
    episode_index = table.column("episode_index").to_numpy()
    assert np.array_equal(table.column("index").to_numpy(), np.arange(sum(LENGTHS)))
    for episode, (columns, _) in enumerate(inputs):
        lo, hi = episodes["dataset_from_index"][episode], episodes["dataset_to_index"][episode]
        assert hi - lo == episodes["length"][episode] == LENGTHS[episode]
        assert np.all(episode_index[lo:hi] == episode)
        assert np.array_equal(frame_index[lo:hi], np.arange(hi - lo))
        assert np.all(np.diff(stamps[lo:hi]) > 0)  # monotonic per episode
        assert np.allclose(stamps[lo:hi], np.arange(hi - lo) / FPS, atol=1e-6)
        state = np.stack(table.column("observation.state").to_pylist()[lo:hi])
        assert np.array_equal(state, columns["observation.state"].astype(np.float32))
        assert table.column("next.success").to_pylist()[lo:hi] == columns["next.success"].tolist()
    assert table.column("task_index").to_pylist()[LENGTHS[0] : sum(LENGTHS[:2])] == [1] * LENGTHS[1]


def test_episodes_and_tasks_parquet_read_with_pyarrow(dataset):
    root, _, _ = dataset
    table = _episodes_table(root)
    names = table.column_names
    head = [
        "episode_index",
        "tasks",
        "length",
        "data/chunk_index",
        "data/file_index",
        "dataset_from_index",
        "dataset_to_index",
    ]
    assert names[: len(head)] == head
    video_columns = [
        f"videos/observation.images.{c}/{n}"
        for c in CAMERAS
        for n in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
    ]
    assert names[len(head) : len(head) + len(video_columns)] == video_columns
    assert names[-2:] == ["meta/episodes/chunk_index", "meta/episodes/file_index"]
    stat_columns = [n for n in names if n.startswith("stats/")]
    all_feats = json.loads((root / "meta/info.json").read_text())["features"]
    assert stat_columns == [f"stats/{f}/{s}" for f in all_feats for s in feature_stats.STAT_KEYS]
    rows = table.to_pydict()
    assert rows["tasks"] == [["pick the red cube"], ["place the cube"], ["pick the red cube"]]
    assert table.schema.field("tasks").type == pa.list_(pa.string())
    assert table.schema.field("stats/observation.images.scene/mean").type == pa.list_(pa.list_(pa.list_(pa.float64())))
    assert table.schema.field("stats/observation.state/count").type == pa.list_(pa.int64())
    assert np.array(rows["stats/observation.images.scene/mean"][0]).shape == (3, 1, 1)
    assert rows["stats/timestamp/min"][0] == [0.0]

    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks.column_names == ["task_index", "task"]
    assert tasks.to_pydict() == {"task_index": [0, 1], "task": ["pick the red cube", "place the cube"]}
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]


def test_videos_decoded_independently_with_pyav(dataset):
    root, _, inputs = dataset
    episodes = _episodes_table(root).to_pydict()
    for camera in CAMERAS:
        key = f"observation.images.{camera}"
        times, frames, stream = _decode_all(root / f"videos/{key}/chunk-000/file-000.mp4")
        assert stream.codec_context.name in ("libdav1d", "av1", "libaom-av1")
        assert stream.codec.canonical_name == "av1" and stream.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (WIDTH, HEIGHT)
        assert len(frames) == sum(LENGTHS)  # no frame dropped in encoding or concatenation
        assert np.all(np.diff(times) > 0)
        for episode, (_, images) in enumerate(inputs):
            start = episodes[f"videos/{key}/from_timestamp"][episode]
            stop = episodes[f"videos/{key}/to_timestamp"][episode]
            assert stop - start == pytest.approx(LENGTHS[episode] / FPS, abs=1e-9)
            inside = np.flatnonzero((times >= start - 1e-4) & (times < stop - 1e-4))
            assert len(inside) == LENGTHS[episode]  # frame count matches the episode's timestamps
            assert np.allclose(times[inside] - start, np.arange(LENGTHS[episode]) / FPS, atol=1e-4)
            source = images[camera]
            for k, position in enumerate(inside):
                decoded = frames[position]
                assert _psnr(decoded, source[k]) >= MIN_PSNR_DB
                assert np.abs(decoded.astype(float) - source[k]).mean() <= MAX_MAE
                errors = [np.abs(decoded.astype(float) - other).mean() for other in source]
                assert int(np.argmin(errors)) == k


def test_stats_json_matches_a_numpy_recomputation(dataset):
    root, _, inputs = dataset
    stats = json.loads((root / "meta/stats.json").read_text())
    table = pq.read_table(root / "data/chunk-000/file-000.parquet")
    episodes = _episodes_table(root).to_pydict()

    state = np.stack(table.column("observation.state").to_pylist()).astype(np.float64)
    recorded = stats["observation.state"]
    assert recorded["count"] == [sum(LENGTHS)]
    assert np.allclose(recorded["min"], state.min(0)) and np.allclose(recorded["max"], state.max(0))
    assert np.allclose(recorded["mean"], state.mean(0), atol=1e-9)
    assert np.allclose(recorded["std"], state.std(0), atol=1e-9)
    # Quantiles: per-episode 5000-bin histogram estimates, aggregated as LeRobot's envelope.
    per_episode = []
    for episode in range(len(LENGTHS)):
        lo, hi = episodes["dataset_from_index"][episode], episodes["dataset_to_index"][episode]
        values = state[lo:hi]
        bin_width = (values.max(0) - values.min(0)) / feature_stats.HISTOGRAM_BINS
        quantiles = {}
        for key, q in zip(feature_stats.QUANTILE_KEYS, feature_stats.QUANTILES, strict=True):
            stored = np.array(episodes[f"stats/observation.state/{key}"][episode])
            # The histogram estimate lies in the bin of the ceil(q * n)-th smallest value.
            order_statistic = np.sort(values, axis=0)[int(np.ceil(q * (hi - lo))) - 1]
            assert np.all(np.abs(stored - order_statistic) <= bin_width + 1e-9)
            quantiles[key] = stored
        per_episode.append(quantiles)
    for key in feature_stats.QUANTILE_KEYS:
        stacked = np.stack([p[key] for p in per_episode])
        envelope = stacked.min(0) if int(key[1:]) <= 50 else stacked.max(0)
        assert np.allclose(recorded[key], envelope)

    assert stats["timestamp"]["max"] == pytest.approx([(max(LENGTHS) - 1) / FPS], rel=1e-6)
    assert stats["index"]["min"] == [0] and stats["index"]["max"] == [sum(LENGTHS) - 1]
    assert stats["next.success"]["mean"] == pytest.approx([len(LENGTHS) / sum(LENGTHS)])

    # Images: LeRobot samples every frame of short episodes, keeps (3, 1, 1) per-channel stats in [0, 1].
    image = stats["observation.images.wrist"]
    assert np.array(image["mean"]).shape == (3, 1, 1) and image["count"] == [sum(LENGTHS)]
    pixels = np.concatenate([images["wrist"].reshape(-1, 3) for _, images in inputs]).astype(np.float64) / 255
    assert np.allclose(np.array(image["min"]).ravel(), pixels.min(0))
    assert np.allclose(np.array(image["max"]).ravel(), pixels.max(0))
    assert np.allclose(np.array(image["mean"]).ravel(), pixels.mean(0), atol=1e-9)
    assert np.allclose(np.array(image["std"]).ravel(), pixels.std(0), atol=1e-9)


def test_image_stats_sample_and_downsample_like_lerobot():
    assert feature_stats.image_sample_indices(12).tolist() == list(range(12))
    sampled = feature_stats.image_sample_indices(1000)
    assert len(sampled) == 177 and sampled[0] == 0 and sampled[-1] == 999  # LeRobot's 1000 -> 177 samples
    assert feature_stats.downsample_for_stats(np.zeros((480, 640, 3), np.uint8)).shape == (3, 120, 160)
    assert feature_stats.downsample_for_stats(np.zeros((48, 64, 3), np.uint8)).shape == (3, 48, 64)


def test_reader_agrees_with_the_files(dataset):
    root, _, inputs = dataset
    data = lerobot.open_dataset(root)
    data.validate()
    assert data.tasks == ["pick the red cube", "place the cube"] and data.fps == FPS
    assert data.video_keys == [f"observation.images.{c}" for c in CAMERAS]
    frames = data.frames()
    assert frames["observation.state"].shape == (sum(LENGTHS), 3) and frames["observation.state"].dtype == np.float32
    assert frames["next.success"].shape == (sum(LENGTHS), 1) and frames["timestamp"].shape == (sum(LENGTHS),)
    one = data.episode_frames(1)
    assert np.array_equal(one["observation.state"], inputs[1][0]["observation.state"].astype(np.float32))
    assert np.array_equal(data.episodes["length"], LENGTHS)
    assert data.stats["observation.images.scene"]["mean"].shape == (3, 1, 1)

    decoded = data.video_frames(2, "wrist")
    assert decoded.shape == (LENGTHS[2], HEIGHT, WIDTH, 3)
    some = data.video_frames(1, "observation.images.scene", timestamps=[0.0, 5 / FPS, 16 / FPS])
    full = data.video_frames(1, "scene")
    assert np.array_equal(some, full[[0, 5, 16]])
    streamed = list(data.iter_video_frames(1, "scene"))
    assert len(streamed) == LENGTHS[1] and np.array_equal(np.stack([f for _, f in streamed]), full)
    with pytest.raises(lerobot.VideoError, match=re.escape("within 0.0001 s")):
        data.video_frames(1, "scene", timestamps=[0.5 / FPS])  # between two frames


def test_a_path_template_that_leaves_the_dataset_is_refused(dataset, tmp_path: Path):
    """meta/info.json's data_path is a template the reader formats: an edited one must not reach other files."""
    copy = tmp_path / "copy"
    shutil.copytree(dataset[0], copy)
    info_path = copy / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["data_path"] = "../../{chunk_index}/x.parquet"
    info_path.write_text(json.dumps(info))
    with pytest.raises(lerobot.DatasetFormatError, match="outside the dataset's folder"):
        lerobot.open_dataset(copy).data_path(0)


def test_h264_option(tmp_path: Path):
    _, inputs = write_dataset(tmp_path / "h264", (8, 6), cameras=("scene",), codec="h264")
    info = json.loads((tmp_path / "h264/meta/info.json").read_text())
    video = info["features"]["observation.images.scene"]["info"]
    assert video["video.codec"] == "h264" and video["video.preset"] is None and video["video.g"] == 2
    times, frames, _ = _decode_all(tmp_path / "h264/videos/observation.images.scene/chunk-000/file-000.mp4")
    assert len(frames) == 14 and np.allclose(times, np.arange(14) / FPS, atol=1e-4)
    source = np.concatenate([images["scene"] for _, images in inputs])
    assert min(_psnr(f, s) for f, s in zip(frames, source, strict=True)) >= MIN_PSNR_DB
    lerobot.open_dataset(tmp_path / "h264").validate()


def test_files_roll_over_by_size_and_chunk(tmp_path: Path):
    root = tmp_path / "rolled"
    summary, inputs = write_dataset(
        root,
        (10, 10, 10, 10),
        cameras=("scene",),
        data_files_size_in_mb=0.006,
        video_files_size_in_mb=0.004,
        chunks_size=2,
    )
    assert len(summary.data_files) > 1 and len(summary.video_files["observation.images.scene"]) > 1
    assert any(path.startswith("data/chunk-001/") for path in summary.data_files)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["chunks_size"] == 2 and info["data_files_size_in_mb"] == 0.006
    episodes = _episodes_table(root).to_pydict()
    key = "observation.images.scene"
    for episode in range(4):
        data_file = root / info["data_path"].format(
            chunk_index=episodes["data/chunk_index"][episode], file_index=episodes["data/file_index"][episode]
        )
        rows = pq.read_table(data_file).column("episode_index").to_numpy()
        assert np.sum(rows == episode) == 10
        video_file = root / info["video_path"].format(
            video_key=key,
            chunk_index=episodes[f"videos/{key}/chunk_index"][episode],
            file_index=episodes[f"videos/{key}/file_index"][episode],
        )
        times, frames, _ = _decode_all(video_file)
        start = episodes[f"videos/{key}/from_timestamp"][episode]
        inside = np.flatnonzero((times >= start - 1e-4) & (times < start + 10 / FPS - 1e-4))
        assert len(inside) == 10
        assert min(_psnr(frames[p], inputs[episode][1]["scene"][k]) for k, p in enumerate(inside)) >= MIN_PSNR_DB
    # A file that starts with an episode starts that episode at 0 s.
    firsts = {}
    for episode in range(4):
        firsts.setdefault(
            (episodes[f"videos/{key}/chunk_index"][episode], episodes[f"videos/{key}/file_index"][episode]), episode
        )
    assert all(episodes[f"videos/{key}/from_timestamp"][e] == 0.0 for e in firsts.values())
    data = lerobot.open_dataset(root)
    data.validate()
    assert np.array_equal(data.video_frames(3, "scene"), data.video_frames(3, "scene", np.arange(10) / FPS))


def test_failed_episode_leaves_the_staged_ones_and_no_debris(tmp_path: Path):
    root = tmp_path / "partial"
    writer = lerobot.create(root, FPS, features(("scene",)), robot_type="panda")
    columns, images = episode_inputs(8, seed=1, cameras=("scene",))
    writer.add_episode("pick", columns, images=images)

    def broken():
        yield from images["scene"][:3]
        raise OSError("camera bag truncated")

    with pytest.raises(OSError, match="truncated"):
        writer.add_episode("pick", columns, images={"scene": broken()})
    with pytest.raises(lerobot.VideoError, match="expected 8 frames, the source yielded 5"):
        writer.add_episode("pick", columns, images={"scene": iter(images["scene"][:5])})
    with pytest.raises(lerobot.VideoError, match="yields more"):
        writer.add_episode("pick", columns, images={"scene": iter(np.concatenate([images["scene"]] * 2))})
    assert writer.num_episodes == 1
    assert sorted(p.name for p in (root / ".staging").iterdir()) == ["episode-000000"]
    assert not (root / "meta/info.json").exists()
    with pytest.raises(lerobot.DatasetFormatError, match="unfinished export"):
        lerobot.open_dataset(root)
    writer.add_episode("place", columns, images=images)
    summary = writer.finalize()
    assert summary.episodes == 2 and summary.frames == 16
    lerobot.open_dataset(root).validate()
    with pytest.raises(lerobot.DatasetFormatError, match="finalized"):
        writer.add_episode("pick", columns, images=images)


KILLED_EXPORT = """
import os, signal, sys
import numpy as np
sys.path.insert(0, {support!r})
from helpers.lerobot_support import FPS, episode_inputs, episode_provenance, features
from robot_brain.datasets import lerobot
writer = lerobot.create({root!r}, FPS, features(("scene",)), robot_type="panda")
for index in range(2):
    columns, images = episode_inputs(10, seed=index, cameras=("scene",))
    writer.add_episode("pick", columns, images=images, provenance=episode_provenance(index))
columns, images = episode_inputs(10, seed=5, cameras=("scene",))
def frames():
    for k, frame in enumerate(images["scene"]):
        if k == 6:
            os.kill(os.getpid(), signal.SIGKILL)
        yield frame
writer.add_episode("pick", columns, images={{"scene": frames()}})
"""


def test_kill_9_mid_export_leaves_an_unfinished_folder_that_recovers(tmp_path: Path):
    import subprocess
    import sys

    root = tmp_path / "killed"
    script = KILLED_EXPORT.format(support=str(Path(__file__).resolve().parents[1]), root=str(root))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    assert (root / "INCOMPLETE.json").is_file() and not (root / "meta/info.json").exists()
    assert any(p.name.startswith(".tmp-") for p in (root / ".staging").iterdir())  # the half-written episode
    with pytest.raises(lerobot.DatasetFormatError, match="unfinished"):
        lerobot.open_dataset(root)
    summary = lerobot.recover(root, export={"note": "recovered after a crash"})
    assert summary.episodes == 2 and summary.frames == 20
    data = lerobot.open_dataset(root)
    data.validate()
    assert len(data.video_frames(1, "scene")) == 10
    with pytest.raises(lerobot.DatasetFormatError, match="already finalized"):
        lerobot.resume(root)


def test_reader_names_missing_and_inconsistent_files(tmp_path: Path):
    root = tmp_path / "broken"
    write_dataset(root, (6, 5), cameras=("scene",))
    assert issubclass(lerobot.DatasetFormatError, UserError)
    video = root / "videos/observation.images.scene/chunk-000/file-000.mp4"
    video.rename(video.with_suffix(".bak"))
    with pytest.raises(lerobot.DatasetFormatError, match=re.escape("file-000.mp4: video of episode 0")):
        lerobot.open_dataset(root)
    video.with_suffix(".bak").rename(video)

    info_path = root / "meta/info.json"
    original = info_path.read_text()
    info = json.loads(original)
    info["total_frames"] = 12
    info_path.write_text(json.dumps(info))
    with pytest.raises(lerobot.DatasetFormatError, match=re.escape("info.json says 12")):
        lerobot.open_dataset(root)
    info["total_frames"], info["codebase_version"] = 11, "v2.1"
    info_path.write_text(json.dumps(info))
    with pytest.raises(lerobot.DatasetFormatError, match=re.escape("expected codebase_version v3.0")):
        lerobot.open_dataset(root)
    info_path.write_text(original)

    data_file = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data_file)
    pq.write_table(table.slice(0, 8), data_file)
    with pytest.raises(lerobot.DatasetFormatError, match="expected 11 frames"):
        lerobot.open_dataset(root).validate()
    info_path.unlink()
    with pytest.raises(lerobot.DatasetFormatError, match=re.escape("info.json: expected a JSON file")):
        lerobot.open_dataset(root)


def test_writer_refuses_bad_input_before_writing_anything(tmp_path: Path):
    root = tmp_path / "strict"
    with pytest.raises(lerobot.DatasetFormatError, match="positive integer"):
        lerobot.create(root, 29.97, features(("scene",)))
    with pytest.raises(lerobot.DatasetFormatError, match="without '/'"):
        lerobot.create(root, FPS, {"observation/state": lerobot.vector_feature(["a"])})
    with pytest.raises(lerobot.DatasetFormatError, match="even height"):
        lerobot.create(root, FPS, {"observation.images.x": lerobot.video_feature(47, 64)})
    with pytest.raises(lerobot.VideoError, match="codec"):
        lerobot.create(root, FPS, features(("scene",)), codec="libaom-av1")
    assert not root.exists()

    writer = lerobot.create(root, FPS, features(("scene",)))
    columns, images = episode_inputs(6, seed=1, cameras=("scene",))
    gap = np.array([0, 1, 2, 4, 5, 6]) / FPS
    with pytest.raises(lerobot.DatasetFormatError, match=re.escape("frame 3 is at 0.133333 s, not 0.100000 s")):
        writer.add_episode("pick", columns, images=images, timestamps=gap)
    bad = dict(columns, action=np.where(np.arange(6)[:, None] == 4, np.nan, columns["action"]))
    with pytest.raises(lerobot.DatasetFormatError, match="frame 4 has NaN"):
        writer.add_episode("pick", bad, images=images)
    with pytest.raises(lerobot.DatasetFormatError, match=re.escape("missing ['next.success']")):
        writer.add_episode("pick", {k: v for k, v in columns.items() if k != "next.success"}, images=images)
    with pytest.raises(lerobot.DatasetFormatError, match=re.escape("expected shape (T, 3)")):
        writer.add_episode("pick", dict(columns, action=columns["action"][:, :2]), images=images)
    with pytest.raises(lerobot.DatasetFormatError, match="expected images for"):
        writer.add_episode("pick", columns, images={"wrist": images["scene"]})
    with pytest.raises(lerobot.DatasetFormatError, match=re.escape("expected (6, 48, 64, 3) uint8")):
        writer.add_episode("pick", columns, images={"scene": images["scene"][:, :, :32]})
    with pytest.raises(lerobot.DatasetFormatError, match="pseudonym"):
        writer.add_episode("pick", columns, images=images, provenance={"operator": "Jane Doe"})
    assert writer.num_episodes == 0 and list((root / ".staging").iterdir()) == []
    with pytest.raises(lerobot.DatasetFormatError, match="nothing to finalize"):
        writer.finalize()
    with pytest.raises(lerobot.DatasetFormatError, match="non-empty"):
        lerobot.create(root, FPS, features(("scene",)))
