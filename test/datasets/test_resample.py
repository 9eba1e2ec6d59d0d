"""Resampling recorded streams onto a dataset's frame grid: rates, jitter, gaps, late starts, bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from robot_brain.datasets import lerobot
from robot_brain.datasets.resample import ResampleError, Stream, frames_at, join_values, resample
from robot_brain.errors import UserError

FPS = 30


def _joint_stream(
    start: float, stop: float, rate: float, jitter: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Joint samples at ``rate`` with uniform timing jitter; values linear in time, so interpolation is exact."""
    nominal = np.arange(start, stop, 1.0 / rate)
    stamps = nominal + np.random.default_rng(seed).uniform(-jitter, jitter, nominal.shape[0])
    return stamps, np.stack([2.0 * stamps + 1.0, -0.5 * stamps], axis=1)


def test_multi_rate_streams_all_land_on_the_grid():
    joints_t, joints_v = _joint_stream(0.0, 2.0, 500.0, jitter=2e-4, seed=1)
    camera_t = np.arange(0.0, 2.0, 1 / 30) + np.random.default_rng(2).uniform(-4e-3, 4e-3, 60)
    command_t = np.arange(0.0, 2.0, 1 / 500)
    points_t = np.arange(0.0, 2.0, 1 / 15) + 0.003
    result = resample(
        [
            Stream("joints", joints_t, joints_v, "linear", tolerance_s=0.004),
            Stream("camera", camera_t, None, "nearest", tolerance_s=0.5 / 30),
            Stream("command", command_t, np.arange(len(command_t), dtype=float), "previous", tolerance_s=0.004),
            Stream("target", points_t, np.tile([0.4, 0.0, 0.2], (len(points_t), 1)), "nearest", tolerance_s=1 / 15),
        ],
        FPS,
        start_s=0.0,
        end_s=59 / 30,
    )
    report = result.report
    assert report.grid_frames == 60 and report.kept_frames == 60 and report.dropped_frames == 0
    assert report.dropped_by_reason == {} and len(result.segments) == 1
    segment = result.segments[0]
    assert np.allclose(segment.timestamps, np.arange(60) / FPS) and segment.start_s == 0.0
    grid = np.arange(60) / FPS
    assert np.allclose(segment.values["joints"][1:], np.stack([2 * grid + 1, -0.5 * grid], axis=1)[1:], atol=1e-9)
    # Grid time 0 precedes the first (jittered) joint sample: that sample is held, never extrapolated.
    assert joints_t[0] > 0 and np.array_equal(segment.values["joints"][0], joints_v[0])
    # The camera frame chosen for each grid time is its nearest one: one-to-one here, despite jitter.
    assert np.array_equal(segment.indices["camera"], np.arange(60))
    # "previous" never takes a sample from after the grid time.
    assert np.all(command_t[segment.indices["command"]] <= grid + 1e-12)
    assert np.all(grid - command_t[segment.indices["command"]] < 1 / 500 + 1e-9)
    assert report.repeated_by_stream["target"] == 30  # a 15 Hz stream serves two frames each
    assert "60/60 frames kept" in report.summary()


def test_a_gap_drops_and_counts_frames_and_splits_the_episode():
    joints_t, joints_v = _joint_stream(0.0, 3.0, 250.0)
    camera_t = np.arange(0.0, 3.0, 1 / 30)
    gap = (camera_t > 1.0) & (camera_t < 1.5)  # the camera stalls for half a second
    camera_t = camera_t[~gap]
    result = resample(
        [Stream("joints", joints_t, joints_v, "linear", 0.005), Stream("camera", camera_t, None, "nearest", 0.5 / 30)],
        FPS,
    )
    report = result.report
    assert len(result.segments) == 2
    first, second = result.segments
    assert report.dropped_frames == report.grid_frames - len(first) - len(second) > 0
    assert report.dropped_by_reason == {"camera: no sample within 0.0166667 s (nearest)": report.dropped_frames}
    assert report.missing_by_stream == {"joints": 0, "camera": report.dropped_frames}
    for segment in result.segments:
        assert np.allclose(segment.timestamps, np.arange(len(segment)) / FPS)  # monotonic, from 0, no gap
        assert np.all(np.diff(segment.grid_indices) == 1)
    assert second.start_s == pytest.approx(second.grid_indices[0] / FPS)
    assert second.start_s > 1.45  # the second episode starts after the stall, on the original clock
    assert np.all(np.abs(camera_t[second.indices["camera"]] - (second.start_s + second.timestamps)) <= 0.5 / 30)


def test_a_stream_that_starts_late_drops_the_frames_before_it():
    joints_t, joints_v = _joint_stream(0.0, 1.0, 500.0)
    camera_t = np.arange(0.3, 1.0, 1 / 30)
    result = resample(
        [Stream("joints", joints_t, joints_v, "linear", 0.003), Stream("camera", camera_t, None, "nearest", 0.01)],
        FPS,
    )
    assert len(result.segments) == 1
    segment = result.segments[0]
    assert segment.start_s == pytest.approx(0.3, abs=1 / FPS)
    assert result.report.dropped_by_reason == {"camera: no sample within 0.01 s (nearest)": 9}
    assert segment.values["joints"][0] == pytest.approx([2 * segment.start_s + 1, -0.5 * segment.start_s])


def test_short_runs_are_dropped_with_their_own_reason():
    camera_t = np.concatenate([np.arange(0, 10) / 30, np.arange(15, 17) / 30, np.arange(25, 40) / 30])
    result = resample([Stream("camera", camera_t, None, "nearest", 0.01)], FPS, min_segment_frames=5)
    assert [len(s) for s in result.segments] == [10, 15]
    assert result.report.dropped_by_reason["segment shorter than min_segment_frames"] == 2
    assert result.report.dropped_by_reason["camera: no sample within 0.01 s (nearest)"] == 13


def test_linear_interpolation_needs_both_neighbours_within_tolerance():
    stamps = np.array([0.0, 0.1, 0.2, 0.6, 0.7])
    values = np.array([[0.0], [1.0], [2.0], [6.0], [7.0]])
    result = resample([Stream("q", stamps, values, "linear", 0.06)], 20, start_s=0.0, end_s=0.7)
    kept = np.concatenate([s.start_s + s.timestamps for s in result.segments])
    # 0.25 is 0.05 after 0.2 but 0.35 before 0.6: never interpolated across the hole.
    assert np.allclose(kept, [0.0, 0.05, 0.1, 0.15, 0.2, 0.6, 0.65, 0.7])
    assert result.report.dropped_by_reason == {"q: no sample within 0.06 s (linear)": 7}
    values_out = np.concatenate([s.values["q"][:, 0] for s in result.segments])
    assert np.allclose(values_out, np.round(kept * 10, 6))


def test_bad_streams_are_refused_with_the_stream_and_sample_named():
    assert issubclass(ResampleError, UserError)
    with pytest.raises(
        ResampleError,
        match=re.escape(
            "stream 'joints': expected strictly increasing timestamps, sample 2 at 0.050000 s follows 0.200000 s"
        ),
    ):
        resample([Stream("joints", [0.0, 0.2, 0.05], np.zeros((3, 2)), "linear", 0.01)], FPS)
    with pytest.raises(ResampleError, match=re.escape("sample 1 at 0.100000 s follows 0.100000 s")):
        resample([Stream("camera", [0.1, 0.1, 0.2], None, "nearest", 0.01)], FPS)
    with pytest.raises(ResampleError, match="use 'nearest' for images"):
        resample([Stream("camera", [0.0, 0.1], np.zeros((2, 4, 4, 3), np.uint8), "linear", 0.1)], FPS)
    with pytest.raises(ResampleError, match="at least one timestamp"):
        resample([Stream("camera", [], None, "nearest", 0.1)], FPS)
    with pytest.raises(ResampleError, match="no finite timestamp"):
        resample([Stream("camera", [0.0, np.nan], None, "nearest", 0.1)], FPS)
    with pytest.raises(ResampleError, match="one value per timestamp"):
        resample([Stream("q", [0.0, 0.1], np.zeros((3, 2)), "previous", 0.1)], FPS)
    with pytest.raises(ResampleError, match="method"):
        resample([Stream("q", [0.0, 0.1], np.zeros((2, 2)), "cubic", 0.1)], FPS)
    with pytest.raises(ResampleError, match="positive integer"):
        resample([Stream("q", [0.0, 0.1], None, "nearest", 0.1)], 29.97)


def test_frames_at_fetches_each_source_frame_once():
    fetched = []

    def fetch(index: int) -> int:
        fetched.append(index)
        return index * 10

    assert list(frames_at(fetch, [0, 0, 1, 1, 1, 3])) == [0, 0, 10, 10, 10, 30]
    assert fetched == [0, 1, 3]
    assert list(frames_at(["a", "b"], np.array([1, 0]))) == ["b", "a"]


def test_resampled_segments_export_and_read_back(tmp_path: Path):
    """Joints at 500 Hz, commands at 250 Hz, a stalling 15 Hz camera -> two episodes showing the right camera frames."""
    joints_t, joints_v = _joint_stream(0.0, 1.6, 500.0, jitter=1e-4, seed=3)
    command_t = np.arange(0.0, 1.6, 1 / 250)
    command_v = np.stack([2 * command_t + 1.05, -0.5 * command_t], axis=1)
    camera_t = np.arange(0.0, 1.6, 1 / 15)
    camera_t = camera_t[(camera_t < 0.6) | (camera_t > 0.9)]
    rng = np.random.default_rng(0)
    camera_frames = [np.full((32, 32, 3), 0, np.uint8) + rng.integers(0, 255, 3).astype(np.uint8) for _ in camera_t]
    result = resample(
        [
            Stream("q", joints_t, joints_v, "linear", 0.003),
            Stream("q_cmd", command_t, command_v, "previous", 0.005),
            Stream("camera", camera_t, None, "nearest", 1 / 15),
        ],
        FPS,
        min_segment_frames=3,
    )
    assert len(result.segments) == 2 and result.report.dropped_frames > 0
    root = tmp_path / "resampled"
    writer = lerobot.create(
        root,
        FPS,
        {
            "observation.state": lerobot.vector_feature(["j1", "j2"]),
            "action": lerobot.vector_feature(["j1", "j2"]),
            "observation.images.scene": lerobot.video_feature(32, 32),
        },
        codec="h264",
    )
    for segment in result.segments:
        columns = join_values(segment, {"observation.state": ["q"], "action": ["q_cmd"]})
        writer.add_episode(
            "reach",
            columns,
            images={"scene": frames_at(camera_frames, segment.indices["camera"])},
            timestamps=segment.timestamps,
            provenance={
                "operator": "scripted",
                "segment_start_s": segment.start_s,
                "resample": result.report.to_json(),
            },
        )
    writer.finalize()
    data = lerobot.open_dataset(root)
    data.validate()
    for episode, segment in enumerate(result.segments):
        decoded = data.video_frames(episode, "scene")
        expected = np.stack([camera_frames[i] for i in segment.indices["camera"]])
        assert np.abs(decoded.astype(int) - expected.astype(int)).mean() < 3  # flat colours survive the codec
        state = data.episode_frames(episode)["observation.state"]
        grid = segment.start_s + segment.timestamps
        assert np.allclose(state, np.stack([2 * grid + 1, -0.5 * grid], axis=1), atol=1e-5)
