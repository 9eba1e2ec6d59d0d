"""``data export``: recorded episodes of a real arm → LeRobot v3.0, read back with pyarrow, PyAV and the reader.

Three Panda episodes (Ada, Bob with a camera dropout, a scripted expert), each a minimum-jerk
motion with rests, exported at the default 20 fps. Every expectation below is computed by
the tests' own rules from what was written into the bags (plain loops, an independent
Pinocchio model of the whole URDF), never by the exporter's code.
"""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path

import av
import numpy as np
import pinocchio as pin
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.export_support import (
    ADA,
    BOB,
    CAMERA_HZ,
    Recorded,
    camera_frame,
    latest_at_or_before,
    make_site,
    record_episode,
)
from robots import ARMS

from robot_brain.cli.main import main
from robot_brain.consent.audit import read_audit
from robot_brain.datasets import export as data_export
from robot_brain.datasets import stats as feature_stats
from robot_brain.datasets.dataset_provenance import verify_provenance
from robot_brain.datasets.lerobot_reader import open_dataset
from robot_brain.episodes.store import EpisodeStore

FPS = data_export.DEFAULT_FPS
MIN_FRAMES = math.ceil(data_export.MIN_SEGMENT_S * FPS)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("export") / "site"
    site = make_site(root)
    store = EpisodeStore(root)
    recordings = [
        record_episode(store, "panda", site.ada, site.ada_consent, seed=1, task="reach the red cube"),
        record_episode(
            store, "panda", site.bob, site.bob_consent, seed=2, offset_s=10, camera_gap=(1.0, 1.3), task="stack"
        ),
        record_episode(store, "panda", "scripted", None, (), seed=3, offset_s=20, task="reach the red cube"),
    ]
    out = root / "datasets" / "demo"
    code = main(["data", "export", *[r.episode_id for r in recordings], "--out", str(out), "--data-root", str(root)])
    assert code == 0
    return {"site": site, "recordings": recordings, "out": out}


def test_a_dataset_of_peoples_frames_is_readable_by_its_owner_only(exported: dict) -> None:
    """Every folder 0700 and every file 0600, whatever wrote it (pyarrow, PyAV, JSON) and whatever the umask."""
    out = exported["out"]
    folders = [out, *(path for path in out.rglob("*") if path.is_dir())]
    files = [path for path in out.rglob("*") if path.is_file()]
    assert any(path.suffix == ".mp4" for path in files) and any(path.suffix == ".parquet" for path in files)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    loose = [f"{path.relative_to(out)} {stat.S_IMODE(path.stat().st_mode):04o}" for path in files
             if stat.S_IMODE(path.stat().st_mode) & 0o077]
    assert not loose, f"files others can read: {loose}"
    assert len(folders) > 3


def _data(out: Path) -> dict[str, np.ndarray]:
    table = pa.concat_tables([pq.read_table(p) for p in sorted((out / "data").glob("chunk-*/file-*.parquet"))])
    result = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(column.type):
            result[name] = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)
        else:
            result[name] = column.to_numpy(zero_copy_only=False)
    return result


def _provenance(out: Path) -> dict:
    return json.loads((out / "meta/provenance.json").read_text())


def _expected_frames(recording: Recorded) -> list[list[float]]:
    """The kept frames' source times (s from the first joint state), as runs: the rules written out plainly."""
    origin = recording.joint_times[0]
    joints = [(t - origin) / 1e9 for t in recording.joint_times]
    commands = [(t - origin) / 1e9 for t in recording.command_times]
    camera = [(t - origin) / 1e9 for t in recording.camera_times]
    target = [(t - origin) / 1e9 for t in recording.target_times]
    # The latest image may be 0.1 s old, or 1.5 camera periods (the median gap) when that is longer.
    camera_tolerance = max(0.1, 1.5 * float(np.median(np.diff(camera))))
    runs: list[list[float]] = [[]]
    for k in range(int(joints[-1] * FPS + 1e-9) + 1):
        t = k / FPS
        before = latest_at_or_before(joints, t)
        joint_ok = before is not None and (
            joints[before] == t
            or (before + 1 < len(joints) and t - joints[before] <= 0.025 and joints[before + 1] - t <= 0.025)
        )
        cam = latest_at_or_before(camera, t)
        tgt = latest_at_or_before(target, t)
        ok = (
            joint_ok
            and latest_at_or_before(commands, t) is not None
            and cam is not None
            and t - camera[cam] <= camera_tolerance
            and tgt is not None  # the last perceived target is held, however old, as the policy node does
        )
        if ok:
            runs[-1].append(t)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if len(run) >= MIN_FRAMES]


def _segments(exported: dict) -> list[tuple[int, Recorded, dict]]:
    """(dataset episode index, its source recording, its segment provenance) in dataset order."""
    by_id = {r.episode_id: r for r in exported["recordings"]}
    return [
        (entry["episode_index"], by_id[entry["source"]["episode_id"]], entry["source"]["segment"])
        for entry in _provenance(exported["out"])["episodes"]
    ]


def test_info_json_declares_the_features_the_trainer_reads(exported):
    info = json.loads((exported["out"] / "meta/info.json").read_text())
    joints = [f"panda_joint{i}" for i in range(1, 8)]
    pose = ["x", "y", "z", "qx", "qy", "qz", "qw"]
    assert info["codebase_version"] == "v3.0" and info["fps"] == 20 and info["robot_type"] == "panda"
    features = info["features"]
    assert list(features)[:8] == [
        "observation.state",
        "observation.ee_pose",
        "observation.gripper",
        "observation.target_point",
        "observation.images.camera",
        "action",
        "action.ee_pose",
        "action.gripper",
    ]
    assert features["observation.state"] == {"dtype": "float32", "shape": [7], "names": joints}
    assert features["action"]["names"] == joints and features["action.ee_pose"]["names"] == pose
    assert features["observation.ee_pose"]["names"] == pose
    assert features["observation.gripper"]["shape"] == [1] and features["action.gripper"]["shape"] == [1]
    assert features["observation.images.camera"]["shape"] == [48, 64, 3]
    assert features["observation.images.camera"]["info"]["video.codec"] == "av1"
    assert data_export.DEFAULT_FRAME_DT_S == pytest.approx(0.05)


def test_frames_are_kept_by_the_recorded_timestamps_and_dropped_frames_split_episodes(exported):
    data = _data(exported["out"])
    segments = _segments(exported)
    by_source: dict[str, list] = {}
    for index, recording, segment in segments:
        by_source.setdefault(recording.episode_id, []).append((index, segment))
    for recording in exported["recordings"]:
        expected = _expected_frames(recording)
        found = by_source[recording.episode_id]
        assert [segment["frames"] for _, segment in found] == [len(run) for run in expected]
        for (index, segment), run in zip(found, expected, strict=True):
            assert segment["start_s"] == pytest.approx(run[0], abs=1e-9)
            rows = data["episode_index"] == index
            assert rows.sum() == len(run)
            stamps = data["timestamp"][rows].astype(np.float64)
            assert np.all(np.diff(stamps) > 0)
            assert np.allclose(stamps, np.arange(len(run)) / FPS, atol=1e-6)
            assert np.array_equal(data["frame_index"][rows], np.arange(len(run)))
    # The camera dropout cut Bob's episode in two; the clean ones stayed whole.
    assert [len(v) for v in by_source.values()] == [1, 2, 1]
    assert np.array_equal(data["index"], np.arange(len(data["index"])))


def test_state_action_and_gripper_are_the_recorded_signals_at_the_frame_times(exported):
    data = _data(exported["out"])
    for index, recording, segment in _segments(exported):
        rows = data["episode_index"] == index
        origin = recording.joint_times[0]
        commands = [(t - origin) / 1e9 for t in recording.command_times]
        grips = [(t - origin) / 1e9 for t in recording.gripper_command_times]
        for k, (state, action, gripper, action_gripper) in enumerate(
            zip(
                data["observation.state"][rows],
                data["action"][rows],
                data["observation.gripper"][rows],
                data["action.gripper"][rows],
                strict=True,
            )
        ):
            t = segment["start_s"] + k / FPS
            # The arm's true pose at t (linear interpolation of 500 Hz samples is within 1e-4 rad of it).
            assert np.allclose(state, recording.motion.q(t), atol=1e-4)
            held = latest_at_or_before(commands, t)
            assert np.allclose(action, recording.command_values[held], atol=1e-6)
            fingers = recording.motion.gripper(t, 0.04, 0.0)
            assert gripper == pytest.approx((0.04 - fingers) / 0.04, abs=1e-3)
            grip = latest_at_or_before(grips, t)
            expected = recording.gripper_command_values[grip] if grip is not None else gripper
            assert action_gripper == pytest.approx(expected, abs=1e-6)
        assert np.all(np.isfinite(data["observation.target_point"][rows]))


def _full_model_pose(model: pin.Model, q_by_name: dict[str, float], base: str, tip: str) -> np.ndarray:
    data = model.createData()
    q = pin.neutral(model)
    for name, value in q_by_name.items():
        q[model.joints[model.getJointId(name)].idx_q] = value
    pin.framesForwardKinematics(model, data, q)
    base_pose = data.oMf[model.getFrameId(base)]
    return (base_pose.inverse() * data.oMf[model.getFrameId(tip)]).homogeneous


def _rotation(quaternion: np.ndarray) -> np.ndarray:
    x, y, z, w = quaternion / np.linalg.norm(quaternion)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def test_ee_poses_are_forward_kinematics_of_state_and_action_by_an_independent_model(exported):
    data = _data(exported["out"])
    info = json.loads((exported["out"] / "meta/info.json").read_text())
    names = info["features"]["observation.state"]["names"]
    source = _provenance(exported["out"])["episodes"][0]["source"]
    model = pin.buildModelFromUrdf(str(ARMS["panda"]))  # the whole robot, fingers included
    rows = np.linspace(0, len(data["index"]) - 1, 25).astype(int)
    for column, pose_column in (("observation.state", "observation.ee_pose"), ("action", "action.ee_pose")):
        for row in rows:
            q = data[column][row].astype(np.float64)
            expected = _full_model_pose(model, dict(zip(names, q, strict=True)), *_links(source))
            pose = data[pose_column][row].astype(np.float64)
            assert np.allclose(pose[:3], expected[:3, 3], atol=2e-6)
            assert np.allclose(_rotation(pose[3:]), expected[:3, :3], atol=2e-6)
            assert pose[6] >= 0.0


def _links(source: dict) -> tuple[str, str]:
    return source["robot"]["base_link"], source["robot"]["tip_link"]


def _decode(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times, frames = [], []
        for frame in container.decode(stream):
            times.append(float(frame.pts * stream.time_base))
            frames.append(frame.to_ndarray(format="rgb24"))
    return np.asarray(times), frames


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def test_video_frames_are_the_latest_recorded_image_at_each_frame_within_codec_error(exported):
    out = exported["out"]
    episodes = pq.read_table(sorted((out / "meta/episodes").glob("*/*.parquet"))[0]).to_pydict()
    video = out / "videos/observation.images.camera/chunk-000/file-000.mp4"
    times, frames = _decode(video)
    assert len(frames) == sum(episodes["length"])
    for index, recording, segment in _segments(exported):
        origin = recording.joint_times[0]
        camera = [(t - origin) / 1e9 for t in recording.camera_times]
        start = episodes["videos/observation.images.camera/from_timestamp"][index]
        for k in range(segment["frames"]):
            position = int(np.argmin(np.abs(times - (start + k / FPS))))
            assert abs(times[position] - (start + k / FPS)) < 1e-4
            t = segment["start_s"] + k / FPS
            expected = recording.camera_indices[latest_at_or_before(camera, t)]
            decoded = frames[position]
            assert _psnr(decoded, camera_frame(expected)) >= 22.0
            # Closer to that image than to the camera's neighbouring frames: nothing shifted by one.
            for other in (expected - 1, expected + 1):
                assert _psnr(decoded, camera_frame(expected)) > _psnr(decoded, camera_frame(other))
    assert CAMERA_HZ == 30


def test_stats_json_matches_a_recomputation_from_the_data(exported):
    data = _data(exported["out"])
    stats = json.loads((exported["out"] / "meta/stats.json").read_text())
    for name in ("observation.state", "observation.ee_pose", "action", "action.ee_pose", "observation.target_point"):
        values = data[name].astype(np.float64)
        recorded = stats[name]
        assert np.allclose(recorded["mean"], values.mean(0), atol=1e-6)
        assert np.allclose(recorded["std"], values.std(0), atol=1e-6)
        assert np.allclose(recorded["min"], values.min(0)) and np.allclose(recorded["max"], values.max(0))
        assert recorded["count"] == [len(values)]
        for key in feature_stats.QUANTILE_KEYS:
            assert len(recorded[key]) == values.shape[1]
    gripper = data["observation.gripper"].astype(np.float64)
    assert stats["observation.gripper"]["mean"] == pytest.approx([gripper.mean()], abs=1e-6)
    image = stats["observation.images.camera"]
    assert np.array(image["mean"]).shape == (3, 1, 1) and 0.0 < np.array(image["mean"]).min() < 1.0


def test_the_landed_reader_validates_the_dataset_and_decodes_the_same_frames(exported):
    dataset = open_dataset(exported["out"])
    dataset.validate()
    assert dataset.num_episodes == 4 and dataset.fps == 20 and not dataset.stale
    frames = dataset.episode_frames(1)
    assert frames["observation.state"].shape[1] == 7 and frames["observation.target_point"].shape[1] == 3
    decoded = dataset.video_frames(1, "camera")
    assert decoded.shape == (len(frames["timestamp"]), 48, 64, 3)


def test_provenance_carries_each_episode_and_the_consent_decision_with_pseudonyms_only(exported):
    site, out = exported["site"], exported["out"]
    provenance = _provenance(out)
    sources = [entry["source"] for entry in provenance["episodes"]]
    assert [s["operator"] for s in sources] == [site.ada, site.bob, site.bob, "scripted"]
    assert sources[0]["consent"]["id"] == site.ada_consent
    assert sources[0]["consent_at_export"]["consent_id"] == site.ada_consent
    assert sources[0]["consent_at_export"]["consent_checked_scopes"] == ["train"]
    assert sources[3]["operator_kind"] == "scripted"
    assert "no consent needed" in sources[3]["consent_at_export"]["consent_reason"]
    assert [s["segment"]["index"] for s in sources] == [0, 0, 1, 0]
    export = provenance["export"]
    assert export["data_root"] == str(site.root) and export["leaves_data_root"] is False
    assert export["excluded"] == [] and export["options"]["fps"] == 20 and export["consent_checked_at"]
    assert export["resampling"]["dropped_by_reason"][data_export.COMMAND_NOT_YET] == 15
    assert verify_provenance(out).ok
    card = (out / "README.md").read_text()
    assert site.ada in card and "scripted" in card
    for path in out.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for name in (ADA, BOB, "Lovelace", "Ångström".encode()):
                assert (name.encode() if isinstance(name, str) else name) not in content, path
    entry = [e for e in read_audit(site.root) if e.kind == "dataset.exported"][-1]
    assert entry.details["operators"] == sorted([site.ada, site.bob, "scripted"])
    assert entry.details["episodes"] == [r.episode_id for r in exported["recordings"]]
    assert entry.details["content_hash"] == provenance["content_hash"]["value"]


def test_json_output_reports_episodes_drops_and_the_content_hash(exported, tmp_path, capsys):
    site = exported["site"]
    ids = [r.episode_id for r in exported["recordings"][:2]]
    out = site.root / "datasets" / "json"
    assert main(["data", "export", *ids, "--out", str(out), "--data-root", str(site.root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == str(out) and report["dataset_episodes"] == 3
    assert [e["episode_id"] for e in report["episodes"]] == ids
    assert report["frames"] == sum(len(run) for r in exported["recordings"][:2] for run in _expected_frames(r))
    assert report["dropped_by_reason"] == {
        data_export.COMMAND_NOT_YET: 10,
        data_export.CAMERA_MISSING: 5,
    }
    assert report["frames"] + report["dropped_frames"] == report["grid_frames"]
    assert report["content_hash"] == _provenance(out)["content_hash"]["value"]
    assert report["excluded"] == [] and report["source_bytes"] > report["size_bytes"] > 0


def test_a_10_hz_camera_with_arrival_jitter_loses_no_frame(tmp_path: Path) -> None:
    """The latest image is up to one camera period old by design: 10 Hz images arriving up to 80 ms late all count.

    With a fixed 0.1 s tolerance every frame just before the next image would be on the edge,
    and an image arriving over 50 ms late (a busy machine) would drop the frame before it, cutting
    the episode into pieces too short to keep (CI: a 10 Hz demonstration lost every frame).
    """
    root = tmp_path / "site"
    site = make_site(root)
    recording = record_episode(EpisodeStore(root), "panda", site.ada, site.ada_consent, seed=4,
                               camera_hz=10.0, camera_jitter_s=0.08)
    out = root / "datasets" / "ten_hz"
    assert main(["data", "export", recording.episode_id, "--out", str(out), "--data-root", str(root)]) == 0
    export = _provenance(out)["export"]
    dropped = export["resampling"]["dropped_by_reason"]
    assert not [reason for reason in dropped if reason.startswith("camera")], dropped
    assert export["timing"]["camera_tolerance_s"] == pytest.approx(0.15, abs=0.03), export["timing"]
    assert export["resampling"]["kept_frames"] == sum(len(run) for run in _expected_frames(recording))
    assert len(_segments({"out": out, "recordings": [recording]})) == 1  # one piece: nothing cut it
