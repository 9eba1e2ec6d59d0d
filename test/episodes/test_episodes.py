"""Episodes written by the store, read back by independent readers: PyPI mcap, rclpy, rosbags.

Real CDR in, real MCAP files on disk, three readers that share no code with the writer.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers.episodes_support import (
    ALL_TOPICS,
    CHUNKS,
    EVENTS,
    IMAGES,
    JOINT_NAMES,
    JOINT_STATES,
    OPERATOR,
    action_chunk_cdr,
    chunk_actions,
    event_cdr,
    image_cdr,
    image_pixels,
    joint_positions,
    joint_state_cdr,
    provenance,
    urdf_text,
    write_joint_states,
)
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag2 import Reader

from robot_brain.episodes.manifest import (
    MANIFEST_NAME,
    ROBOT_DESCRIPTION_NAME,
    EpisodeManifest,
    ManifestError,
    load_manifest,
    software_version,
)
from robot_brain.episodes.mcap_recovery import McapSalvager, SalvagedMessage
from robot_brain.episodes.message_types import episode_typestore, interface_msg_dir
from robot_brain.episodes.store import (
    CUSTOM_DATA_KEY,
    EpisodeProvenance,
    EpisodeReadError,
    EpisodeStateError,
    EpisodeStore,
    MissingTopicError,
    TopicSpec,
    UnknownEpisodeError,
    new_episode_id,
    read_bag_custom_data,
)
from robot_brain.errors import ConfigurationError, UserError

JOINTS, FRAMES, CHUNK_COUNT = 60, 4, 5
START_NS = 1_700_000_000_000_000_000


def _record_mixed_episode(store: EpisodeStore) -> EpisodeManifest:
    """Joint states at 500 Hz, two image sizes, action chunks and events, interleaved in time."""
    with store.start_episode(provenance(), list(ALL_TOPICS)) as writer:
        writer.write(EVENTS.name, START_NS, event_cdr("recording", START_NS, writer.episode_id))
        for index in range(JOINTS):
            stamp = START_NS + 1_000 + index * 2_000_000
            writer.write(JOINT_STATES.name, stamp, joint_state_cdr(index, stamp))
            if index % 15 == 0:
                frame = index // 15
                size = (480, 640) if frame == 0 else (48, 64)
                writer.write(IMAGES.name, stamp + 1, image_cdr(frame, stamp + 1, *size))
            if index % 12 == 0:
                writer.write(CHUNKS.name, stamp + 2, action_chunk_cdr(index // 12, stamp + 2))
        writer.set_label("success")
        episode_id = writer.episode_id
    return store.load_manifest(episode_id)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[EpisodeStore, EpisodeManifest]:
    store = EpisodeStore(tmp_path_factory.mktemp("data_root"))
    return store, _record_mixed_episode(store)


def _check_joint_state(index: int, names: list[str], position: object, velocity: object) -> None:
    assert list(names) == JOINT_NAMES
    np.testing.assert_array_equal(np.asarray(position), joint_positions(index))
    np.testing.assert_array_equal(np.asarray(velocity), np.full(7, -0.5 * index))


def test_pypi_mcap_reader_decodes_every_message(recorded: tuple[EpisodeStore, EpisodeManifest]) -> None:
    store, manifest = recorded
    bag = store.episode_dir(manifest.episode_id) / manifest.bag_file
    seen: dict[str, int] = {}
    with open(bag, "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        schemas = {
            channel.topic: reader.get_summary().schemas[channel.schema_id].name
            for channel in reader.get_summary().channels.values()
        }
        for _, channel, message, decoded in reader.iter_decoded_messages():
            index = seen.get(channel.topic, 0)
            seen[channel.topic] = index + 1
            stamp_ns = decoded.header.stamp.sec * 10**9 + decoded.header.stamp.nanosec
            assert message.log_time == stamp_ns, channel.topic
            if channel.topic == JOINT_STATES.name:
                _check_joint_state(index, decoded.name, decoded.position, decoded.velocity)
            elif channel.topic == IMAGES.name:
                height, width = (480, 640) if index == 0 else (48, 64)
                assert (decoded.height, decoded.width, decoded.encoding, decoded.step) == (
                    height,
                    width,
                    "rgb8",
                    width * 3,
                )
                assert bytes(decoded.data) == image_pixels(index, height, width).tobytes()
            elif channel.topic == CHUNKS.name:
                assert (decoded.step, decoded.action_space, decoded.horizon, decoded.dim) == (
                    index,
                    "joint_position",
                    3,
                    8,
                )
                assert decoded.has_gripper is True and decoded.header.frame_id == "panda_link0"
                np.testing.assert_array_equal(np.asarray(decoded.actions), chunk_actions(index))
            else:
                assert (decoded.event, decoded.episode_id, decoded.message) == (
                    "recording",
                    manifest.episode_id,
                    "héllo ✓",
                )
    assert seen == {JOINT_STATES.name: JOINTS, IMAGES.name: FRAMES, CHUNKS.name: CHUNK_COUNT, EVENTS.name: 1}
    assert schemas[CHUNKS.name] == "robot_brain_msgs/msg/ActionChunk"


def test_rclpy_deserializes_what_was_written(recorded: tuple[EpisodeStore, EpisodeManifest]) -> None:
    from rclpy.serialization import deserialize_message
    from robot_brain_msgs.msg import ActionChunk, EpisodeEvent
    from sensor_msgs.msg import Image, JointState

    store, manifest = recorded
    classes = {JOINT_STATES.name: JointState, IMAGES.name: Image, CHUNKS.name: ActionChunk, EVENTS.name: EpisodeEvent}
    counts = dict.fromkeys(classes, 0)
    with open(store.episode_dir(manifest.episode_id) / manifest.bag_file, "rb") as stream:
        for _, channel, message in make_reader(stream).iter_messages():
            decoded = deserialize_message(message.data, classes[channel.topic])
            index = counts[channel.topic]
            counts[channel.topic] += 1
            if channel.topic == JOINT_STATES.name:
                _check_joint_state(index, decoded.name, decoded.position, decoded.velocity)
            elif channel.topic == IMAGES.name:
                height, width = (480, 640) if index == 0 else (48, 64)
                assert bytes(decoded.data) == image_pixels(index, height, width).tobytes()
            elif channel.topic == CHUNKS.name:
                assert decoded.step == index and list(decoded.actions) == chunk_actions(index).tolist()
            else:
                assert decoded.message == "héllo ✓"
    assert counts == {JOINT_STATES.name: JOINTS, IMAGES.name: FRAMES, CHUNKS.name: CHUNK_COUNT, EVENTS.name: 1}


def test_metadata_yaml_is_valid_for_rosbags_with_qos_hashes_and_provenance(
    recorded: tuple[EpisodeStore, EpisodeManifest],
) -> None:
    store, manifest = recorded
    path = store.episode_dir(manifest.episode_id)
    with Reader(path) as reader:
        counts = {connection.topic: connection.msgcount for connection in reader.connections}
        qos = {connection.topic: connection.ext.offered_qos_profiles for connection in reader.connections}
        hashes = {connection.topic: connection.digest for connection in reader.connections}
        assert reader.message_count == JOINTS + FRAMES + CHUNK_COUNT + 1
    assert counts == {JOINT_STATES.name: JOINTS, IMAGES.name: FRAMES, CHUNKS.name: CHUNK_COUNT, EVENTS.name: 1}
    assert qos[IMAGES.name][0].reliability == QosReliability.BEST_EFFORT
    assert qos[EVENTS.name][0].durability == QosDurability.TRANSIENT_LOCAL
    assert qos[JOINT_STATES.name][0].depth == 100
    # The ActionChunk hash in the bag is the one rosidl generated for the installed interface.
    rosidl = json.loads((interface_msg_dir() / "ActionChunk.json").read_text())
    assert hashes[CHUNKS.name] in json.dumps(rosidl)
    custom = json.loads(read_bag_custom_data(path)[CUSTOM_DATA_KEY])
    assert custom == json.loads((path / MANIFEST_NAME).read_text())


def test_manifest_holds_provenance_counts_and_the_urdf_copy(recorded: tuple[EpisodeStore, EpisodeManifest]) -> None:
    store, manifest = recorded
    path = store.episode_dir(manifest.episode_id)
    assert (manifest.state, manifest.label, manifest.operator, manifest.operator_kind) == (
        "complete",
        "success",
        OPERATOR,
        "human",
    )
    assert manifest.consent.scopes == ["record", "train"] and manifest.cell_id == "cell-test"
    assert (manifest.robot.name, manifest.robot.base_link, manifest.robot.tip_link) == (
        "panda",
        "panda_link0",
        "panda_hand",
    )
    description = (path / ROBOT_DESCRIPTION_NAME).read_text()
    assert description == urdf_text()
    assert manifest.robot.urdf_sha256 == hashlib.sha256(description.encode()).hexdigest()
    topic = manifest.topics[JOINT_STATES.name]
    assert (topic.type, topic.count, topic.dropped, topic.late) == (JOINT_STATES.type, JOINTS, 0, 0)
    assert (topic.first_ns, topic.last_ns) == (START_NS + 1_000, START_NS + 1_000 + (JOINTS - 1) * 2_000_000)
    assert manifest.message_count == JOINTS + FRAMES + CHUNK_COUNT + 1
    assert manifest.duration_s == pytest.approx((JOINTS - 1) * 0.002 + 1e-6, abs=1e-6)
    assert manifest.end_time_ns >= manifest.start_time_ns and manifest.end_time.endswith("Z")
    assert manifest.software.package == "robot_brain" and manifest.software.version
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", manifest.episode_id)


def test_reader_yields_decoded_messages_in_time_order(recorded: tuple[EpisodeStore, EpisodeManifest]) -> None:
    store, manifest = recorded
    with store.open_episode(manifest.episode_id) as episode:
        assert episode.topics[CHUNKS.name] == CHUNKS.type
        assert episode.message_count(JOINT_STATES.name) == JOINTS
        assert episode.robot_description() == urdf_text()
        messages = list(episode.messages([JOINT_STATES.name, CHUNKS.name]))
        raw = list(episode.messages([IMAGES.name], decode=False))
    stamps = [message.timestamp_ns for message in messages]
    assert stamps == sorted(stamps) and len(messages) == JOINTS + CHUNK_COUNT
    joints = [m for m in messages if m.topic == JOINT_STATES.name]
    for index, message in enumerate(joints):
        _check_joint_state(index, message.message.name, message.message.position, message.message.velocity)
    chunks = [m.message for m in messages if m.topic == CHUNKS.name]
    assert [chunk.step for chunk in chunks] == list(range(CHUNK_COUNT))
    assert raw[1].message == image_cdr(1, raw[1].timestamp_ns, 48, 64)


def test_missing_topic_is_one_line_naming_the_episode(recorded: tuple[EpisodeStore, EpisodeManifest]) -> None:
    store, manifest = recorded
    with store.open_episode(manifest.episode_id) as episode, pytest.raises(MissingTopicError) as caught:
        list(episode.messages(["/camera/camera_info"]))
    text = str(caught.value)
    assert (
        "\n" not in text and "/camera/camera_info" in text and "metadata.yaml" in text and manifest.episode_id in text
    )


def test_reports_of_dropped_and_late_messages_reach_the_manifest_and_survive_a_flush(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path)
    writer = store.start_episode(provenance(), [JOINT_STATES, IMAGES])
    write_joint_states(writer, 10)
    reporters = [
        threading.Thread(target=lambda: [writer.report_dropped(IMAGES.name) for _ in range(500)]) for _ in range(4)
    ]
    for thread in reporters:
        thread.start()
    for thread in reporters:
        thread.join()
    writer.report_late(JOINT_STATES.name, 3)
    writer.flush()
    on_disk = load_manifest(writer.path)  # what a crash right now would leave
    assert (on_disk.topics[IMAGES.name].dropped, on_disk.topics[JOINT_STATES.name].late) == (2000, 3)
    final = writer.finish("failure")
    assert (final.topics[IMAGES.name].dropped, final.topics[JOINT_STATES.name].late, final.lost_count) == (
        2000,
        3,
        2003,
    )
    assert final.label == "failure" and load_manifest(writer.path).topics[JOINT_STATES.name].count == 10
    with pytest.raises(KeyError):
        writer.report_dropped("/not/declared")


def test_flush_puts_every_message_so_far_on_disk(tmp_path: Path) -> None:
    """The loss window after kill -9 is what was written since the last flush: after a flush, nothing."""
    store = EpisodeStore(tmp_path)
    writer = store.start_episode(provenance(), [JOINT_STATES], flush_interval_s=3600)
    write_joint_states(writer, 300)
    salvaged_before = sum(isinstance(r, SalvagedMessage) for r in McapSalvager(writer.bag_path).records())
    writer.flush()
    salvager = McapSalvager(writer.bag_path)
    salvaged_after = sum(isinstance(r, SalvagedMessage) for r in salvager.records())
    writer.abandon()
    # rosbags alone keeps up to 1 MiB in memory: 300 joint states (~100 kB) were not on disk before the flush.
    assert (salvaged_before, salvaged_after) == (0, 300)
    assert "without the MCAP summary" in salvager.damage


def test_start_refuses_names_missing_consent_and_unknown_types_before_writing(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path)
    named = EpisodeProvenance(**{**provenance().__dict__, "operator": "Jane Doe"})
    with pytest.raises(ConfigurationError) as caught:
        store.start_episode(named, [JOINT_STATES])
    assert "Jane" not in str(caught.value)
    no_consent = EpisodeProvenance(**{**provenance().__dict__, "consent_scopes": ("train",)})
    with pytest.raises(ConfigurationError, match="record"):
        store.start_episode(no_consent, [JOINT_STATES])
    with pytest.raises(ConfigurationError, match="sensor_msgs/msg/Nope"):
        store.start_episode(provenance(), [TopicSpec("/x", "sensor_msgs/msg/Nope")])
    with pytest.raises(ConfigurationError, match="twice"):
        store.start_episode(provenance(), [JOINT_STATES, JOINT_STATES])
    assert not (tmp_path / "episodes").exists()
    scripted = EpisodeProvenance(
        **{**provenance().__dict__, "operator": "scripted", "consent_id": None, "consent_scopes": ()}
    )
    with store.start_episode(scripted, [JOINT_STATES]) as writer:
        write_joint_states(writer, 1)
    assert writer.manifest.operator_kind == "scripted"


def test_discard_deletes_the_data_and_keeps_a_tombstone(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path)
    writer = store.start_episode(provenance(), [JOINT_STATES])
    write_joint_states(writer, 20)
    writer.discard()
    assert sorted(p.name for p in writer.path.iterdir()) == [MANIFEST_NAME]
    assert load_manifest(writer.path).state == "discarded"
    assert store.list_episodes() == [] and len(store.list_episodes(include_discarded=True)) == 1
    with pytest.raises(EpisodeStateError, match="discarded"):
        store.open_episode(writer.episode_id)
    with pytest.raises(EpisodeStateError):
        writer.write(JOINT_STATES.name, 1, joint_state_cdr(0, 1))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"format": "robot_brain.episode/1", "state": ', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"format": "robot_brain.episode/1"}', "'state' is missing"),
    ],
)
def test_corrupt_manifest_is_a_one_line_error_naming_the_file(tmp_path: Path, content: str, expected: str) -> None:
    store = EpisodeStore(tmp_path)
    with store.start_episode(provenance(), [JOINT_STATES]) as writer:
        write_joint_states(writer, 5)
    (writer.path / MANIFEST_NAME).write_text(content)
    with pytest.raises(ManifestError) as caught:
        store.open_episode(writer.episode_id)
    text = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in text
    assert expected in text and str(writer.path / MANIFEST_NAME) in text
    [entry] = store.list_episodes()
    assert entry.manifest is None and entry.state == "unreadable" and expected in entry.error
    assert store.recover() == []  # a bad manifest is reported, never "recovered" over


@pytest.mark.parametrize("field", ["bag_file", "description_file"])
def test_a_manifest_that_points_outside_its_episode_folder_is_refused(tmp_path: Path, field: str) -> None:
    """An edited manifest must not make a reader open (or an export copy) a file elsewhere on the host."""
    store = EpisodeStore(tmp_path)
    with store.start_episode(provenance(), [JOINT_STATES]) as writer:
        write_joint_states(writer, 5)
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("not the episode's", encoding="utf-8")
    path = writer.path / MANIFEST_NAME
    document = json.loads(path.read_text(encoding="utf-8"))
    (document["robot"] if field == "description_file" else document)[field] = "../../elsewhere.txt"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ManifestError, match="must name a file in the episode's folder"):
        store.open_episode(writer.episode_id)


def test_a_bag_truncated_after_it_was_complete_is_a_one_line_read_error(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path)
    with store.start_episode(provenance(), [JOINT_STATES]) as writer:
        write_joint_states(writer, 50)
    with open(writer.bag_path, "r+b") as stream:
        stream.truncate(writer.bag_path.stat().st_size - 100)
    with pytest.raises(EpisodeReadError) as caught:
        store.open_episode(writer.episode_id)
    text = str(caught.value)
    assert "\n" not in text and str(writer.bag_path) in text and "corrupt or truncated" in text
    with pytest.raises(UnknownEpisodeError):
        store.open_episode("../../etc")


def test_episode_ids_sort_by_time_and_do_not_collide() -> None:
    ids = {new_episode_id(1_796_108_233_000_000_000) for _ in range(200)}
    assert len(ids) == 200 and all(i.startswith("20261201-065713-") for i in ids)
    assert new_episode_id(1_796_108_233_000_000_000) < new_episode_id(1_796_108_234_000_000_000)


def test_typestore_hashes_equal_rosidl_and_no_rclpy_in_the_core() -> None:
    typestore = episode_typestore()
    for path in interface_msg_dir().glob("*.json"):
        description = json.loads(path.read_text())
        expected = next(
            h["hash_string"]
            for h in description["type_hashes"]
            if h["type_name"] == f"robot_brain_msgs/msg/{path.stem}"
        )
        assert typestore.hash_rihs01(f"robot_brain_msgs/msg/{path.stem}") == expected
    script = (
        "import sys, robot_brain.episodes.store, robot_brain.cli.data, robot_brain.episodes.mcap_recovery;"
        "print('rclpy' in sys.modules)"
    )
    result = subprocess.run([__import__("sys").executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_software_version_names_the_git_commit_of_this_checkout() -> None:
    version = software_version()
    head = subprocess.run(
        ["git", "-C", str(Path(__file__).resolve().parents[2]), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode == 0:
        assert version.git_commit == head.stdout.strip()
    else:
        assert version.git_commit is None
    assert version.version
