"""Crash safety on real files: kill -9 mid-episode, files cut mid-chunk, a full disk (a file-size limit).

The child process is ``test/helpers/episodes_support.py``: a real recorder process, killed for real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.episodes_support import (
    IMAGES,
    JOINT_STATES,
    image_pixels,
    joint_positions,
    joint_state_cdr,
    provenance,
    write_joint_states,
)
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.rosbag2 import Reader

from robot_brain.episodes.manifest import MANIFEST_NAME, load_manifest, write_manifest
from robot_brain.episodes.mcap_recovery import McapSalvager, SalvagedMessage
from robot_brain.episodes.store import DAMAGED_SUFFIX, EpisodeStateError, EpisodeStore, EpisodeWriter

SUPPORT = Path(__file__).resolve().parents[1] / "helpers" / "episodes_support.py"


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SUPPORT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _joint_values(store: EpisodeStore, episode_id: str) -> list[list[float]]:
    with store.open_episode(episode_id) as episode:
        return [list(m.message.position) for m in episode.messages([JOINT_STATES.name])]


def test_kill_9_mid_episode_keeps_earlier_episodes_and_recovers_the_partial_one(tmp_path: Path) -> None:
    child = _child("crash", str(tmp_path))
    try:
        started = json.loads(child.stdout.readline())
        store = EpisodeStore(tmp_path)
        # While the recorder lives, nobody "recovers" its episode.
        assert store.recover() == []
        live = [entry for entry in store.list_episodes() if entry.episode_id == started["live"]]
        assert live[0].live and live[0].state == "recording"
        written = json.loads(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, child.stderr.read()

    for episode_id in started["finished"]:
        assert store.load_manifest(episode_id).state == "complete"
        assert _joint_values(store, episode_id)[199] == joint_positions(199).tolist()
    assert [entry.state for entry in store.list_episodes()] == ["complete", "complete", "unrecovered"]

    [result] = store.recover()
    assert (result.episode_id, result.outcome) == (started["live"], "recovered")
    manifest = store.load_manifest(started["live"])
    assert manifest.state == "recovered" and manifest.recovery is not None
    joints, images = manifest.topics[JOINT_STATES.name], manifest.topics[IMAGES.name]
    assert result.messages == joints.count + images.count == manifest.recovery.messages
    # The loss window: at most the 0.25 s flush interval (plus scheduling slack) of the newest messages.
    assert 0 < joints.count <= written["joint_states"]
    assert max(joints.last_ns, images.last_ns) >= written["last_ns"] - 600_000_000
    # What was recovered is exactly what was written, from the first message on.
    values = _joint_values(store, started["live"])
    assert values == [joint_positions(index).tolist() for index in range(joints.count)]
    with store.open_episode(started["live"]) as episode:
        frames = [m.message for m in episode.messages([IMAGES.name])]
    assert len(frames) == written["images"] == 12
    assert bytes(frames[-1].data) == image_pixels(len(frames) - 1, 480, 640).tobytes()
    # The rebuilt bag is a normal one for other readers too; the damaged original is kept beside it.
    path = store.episode_dir(started["live"])
    with Reader(path) as reader:
        assert reader.message_count == result.messages
    with open(path / manifest.bag_file, "rb") as stream:
        assert sum(1 for _ in make_reader(stream, decoder_factories=[DecoderFactory()]).iter_decoded_messages()) == (
            result.messages
        )
    assert (path / (manifest.bag_file + DAMAGED_SUFFIX)).exists()
    assert store.recover() == []  # done once, for good
    print(
        f"\nkill -9 loss: wrote {written['joint_states']} joint states / {written['images']} images, "
        f"recovered {joints.count} / {images.count}"
    )


def _abandoned_episode(store: EpisodeStore, flushes: int, per_flush: int) -> EpisodeWriter:
    """An episode whose recorder stopped without closing the bag (as after kill -9 right after a flush)."""
    writer = store.start_episode(provenance(), [JOINT_STATES], flush_interval_s=3600)
    for batch in range(flushes):
        for index in range(batch * per_flush, (batch + 1) * per_flush):
            stamp = 1_000_000_000 + index * 2_000_000
            writer.write(JOINT_STATES.name, stamp, joint_state_cdr(index, stamp))
        writer.flush()
    writer.abandon()
    return writer


def _chunk_offsets(path: Path) -> list[int]:
    """Offsets of the chunk records, from the file's own bytes."""
    data, offsets, position = path.read_bytes(), [], 8
    while position + 9 <= len(data):
        opcode, length = data[position], int.from_bytes(data[position + 1 : position + 9], "little")
        if opcode == 0x06:
            offsets.append(position)
        if position + 9 + length > len(data):
            break
        position += 9 + length
    return offsets


def test_a_file_cut_mid_chunk_is_salvaged_up_to_the_cut(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path)
    writer = _abandoned_episode(store, flushes=3, per_flush=100)
    third_chunk = _chunk_offsets(writer.bag_path)[2]
    with open(writer.bag_path, "r+b") as stream:
        stream.truncate(third_chunk + 9 + 40 + 15_000)  # inside the third chunk's messages
    [result] = store.recover()
    manifest = store.load_manifest(writer.episode_id)
    count = manifest.topics[JOINT_STATES.name].count
    assert result.outcome == "recovered" and 200 < count < 300, result
    assert f"chunk at offset {third_chunk} cut short" in manifest.recovery.damage
    assert _joint_values(store, writer.episode_id) == [joint_positions(i).tolist() for i in range(count)]


@pytest.mark.parametrize("keep_bytes", [0, 5, 30])
def test_a_file_with_nothing_readable_is_marked_incomplete(tmp_path: Path, keep_bytes: int) -> None:
    store = EpisodeStore(tmp_path)
    writer = _abandoned_episode(store, flushes=1, per_flush=50)
    with open(writer.bag_path, "r+b") as stream:
        stream.truncate(keep_bytes)
    [result] = store.recover()
    manifest = store.load_manifest(writer.episode_id)
    assert result.outcome == manifest.state == "incomplete" and result.messages == 0
    assert "nothing readable" in manifest.error and manifest.message_count == 0
    with pytest.raises(EpisodeStateError, match="incomplete"):
        store.open_episode(writer.episode_id)
    assert [entry.state for entry in store.list_episodes()] == ["incomplete"]


def test_garbage_inside_the_file_stops_the_salvage_at_the_damage(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path)
    writer = _abandoned_episode(store, flushes=3, per_flush=100)
    second_chunk = _chunk_offsets(writer.bag_path)[1]
    with open(writer.bag_path, "r+b") as stream:
        stream.seek(second_chunk)
        stream.write(b"\0" * 64)  # zeroed blocks, as a filesystem leaves them after a power cut
    [result] = store.recover()
    assert result.outcome == "recovered" and result.messages == 100
    assert (
        f"invalid record opcode 0x00 at offset {second_chunk}" in store.load_manifest(writer.episode_id).recovery.damage
    )


def test_recovery_interrupted_after_moving_the_original_resumes_from_it(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path)
    writer = _abandoned_episode(store, flushes=2, per_flush=50)
    writer.bag_path.rename(writer.bag_path.with_name(writer.bag_path.name + DAMAGED_SUFFIX))
    [result] = store.recover()
    assert result.outcome == "recovered" and result.messages == 100 and writer.bag_path.exists()


def test_a_recorder_that_died_after_closing_the_bag_is_complete(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path)
    with store.start_episode(provenance(), [JOINT_STATES]) as writer:
        write_joint_states(writer, 40)
    before = load_manifest(writer.path)
    before.state, before.end_time, before.end_time_ns = "recording", None, None
    write_manifest(writer.path, before)  # as if killed between closing the bag and the manifest rename
    [result] = store.recover()
    assert result.outcome == "complete" and store.load_manifest(writer.episode_id).topics[JOINT_STATES.name].count == 40


def test_a_folder_without_manifest_is_marked_incomplete_with_unknown_provenance(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path)
    orphan = store.episodes_dir / "20261201-000000-abcdef"
    orphan.mkdir(parents=True)
    (orphan / "20261201-000000-abcdef.mcap").write_bytes(b"\x89MCAP0\r\n")
    [result] = store.recover()
    manifest = store.load_manifest(orphan.name)
    assert result.outcome == manifest.state == "incomplete" and manifest.operator == "unknown"


def test_full_disk_ends_the_episode_with_a_clear_error_and_keeps_everything_recoverable(tmp_path: Path) -> None:
    limit = 2_000_000
    child = _child("disk-full", str(tmp_path), str(limit))
    output, errors = child.communicate(timeout=120)
    assert child.returncode == 0, errors
    report = json.loads(output)
    assert report["kind"] == "DiskFullError"
    store = EpisodeStore(tmp_path)
    bag = store.episode_dir(report["second"]) / f"{report['second']}.mcap"
    text = report["error"]
    assert "\n" not in text and str(bag) in text and "EFBIG" in text and "recording stopped" in text
    assert "EFBIG" in report["again"]  # the episode stays ended
    assert bag.stat().st_size <= limit
    # The earlier episode is intact; the interrupted one is recorded as such, then recovered.
    assert _joint_values(store, report["first"])[99] == joint_positions(99).tolist()
    interrupted = store.load_manifest(report["second"])
    assert interrupted.state == "recording" and "EFBIG" in interrupted.error
    [result] = store.recover()
    assert result.outcome == "recovered"
    recovered = store.load_manifest(report["second"])
    frames = recovered.topics[IMAGES.name].count
    assert 0 < frames <= report["written"]
    with store.open_episode(report["second"]) as episode:
        images = [m.message for m in episode.messages([IMAGES.name])]
    assert [bytes(image.data) for image in images] == [
        image_pixels(index, 120, 160).tobytes() for index in range(frames)
    ]
    salvaged = [r for r in McapSalvager(bag.with_name(bag.name + DAMAGED_SUFFIX)).records()]
    assert sum(isinstance(r, SalvagedMessage) for r in salvaged) == frames


def test_a_recovery_that_runs_out_of_disk_leaves_the_episode_as_it_was(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path)
    writer = _abandoned_episode(store, flushes=4, per_flush=500)  # about 650 kB of joint states
    original = writer.bag_path.read_bytes()
    child = _child("recover-limited", str(tmp_path), "100000")
    output, errors = child.communicate(timeout=120)
    assert child.returncode == 0, errors
    [result] = json.loads(output)
    assert result["outcome"] == "failed" and "EFBIG" in result["detail"] and "retried" in result["detail"]
    assert writer.bag_path.read_bytes() == original and load_manifest(writer.path).state == "recording"
    assert not (store.episodes_dir / ".recovering" / writer.episode_id).exists()
    [retry] = store.recover()
    assert retry.outcome == "recovered" and retry.messages == 2000


def test_the_manifest_on_disk_during_recording_says_recording(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path)
    writer = store.start_episode(provenance(), [JOINT_STATES])
    try:
        on_disk = json.loads((writer.path / MANIFEST_NAME).read_text())
        assert on_disk["state"] == "recording" and on_disk["topics"][JOINT_STATES.name]["count"] == 0
        assert store.is_live(writer.episode_id) and store.recover() == []
        assert os.stat(writer.bag_path).st_size > 0  # the MCAP header is on disk from the start
    finally:
        writer.finish()
    assert not store.is_live(writer.episode_id)
