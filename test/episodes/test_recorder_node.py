"""The recorder node over real DDS: consent before anything is written, episodes on events and services,
bags an independent MCAP reader decodes, and a kill -9 that loses only the episode it interrupted.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from helpers.domains import next_domain
from helpers.waiting import wait_for
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from robot_brain_msgs.msg import EpisodeEvent
from robot_brain_msgs.srv import StartEpisode, StopEpisode
from sensor_msgs.msg import Image, JointState

from robot_brain.consent.registry import ConsentRegistry
from robot_brain.embodiment.catalog import bundled_arm_path
from robot_brain.episodes.store import EpisodeStore
from robot_brain.erasure.purge import purge_operator
from robot_brain.nodes.recorder import RecorderNode

pytestmark = pytest.mark.dds
PANDA = bundled_arm_path("panda")
JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
TOPICS = ["/joint_states:sensor_msgs/msg/JointState", "/camera/image_raw:sensor_msgs/msg/Image",
          "/episode/events:robot_brain_msgs/msg/EpisodeEvent"]


class Cell(Node):
    """Publishes what a cell publishes, asks for episodes, and keeps the recorder's answers."""

    def __init__(self, context: Context) -> None:
        super().__init__("recorder_probe", context=context)
        self.joints = self.create_publisher(JointState, "/joint_states", 10)
        self.images = self.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        self.events = self.create_publisher(EpisodeEvent, "/episode/events", QoSProfile(depth=50))
        self.answers: list[EpisodeEvent] = []
        self.statuses: list[DiagnosticStatus] = []
        self.create_subscription(EpisodeEvent, "/episode/events", self._on_event, QoSProfile(depth=50))
        self.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.statuses.extend(m.status), 10)
        self.start_client = self.create_client(StartEpisode, "/recorder/start_episode")
        self.stop_client = self.create_client(StopEpisode, "/recorder/stop_episode")
        self.sent_joints = 0

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.event not in ("start", "stop", "success", "failure", "discard"):
            self.answers.append(msg)

    def publish_motion(self, count: int, period: float = 0.004) -> None:
        for i in range(count):
            msg = JointState(name=JOINTS, position=[0.01 * i + j for j in range(7)], velocity=[0.0] * 7)
            msg.header.stamp = self.get_clock().now().to_msg()
            self.joints.publish(msg)
            self.sent_joints += 1
            if i % 25 == 0:
                image = Image(height=4, width=6, encoding="rgb8", step=18, data=bytes([i % 256]) * 72)
                image.header.stamp = msg.header.stamp
                self.images.publish(image)
            time.sleep(period)

    def request(self, event: str, task: str = "", label: str = "") -> None:
        self.events.publish(EpisodeEvent(event=event, task=task, label=label))

    def call(self, client: object, request: object) -> object:
        assert client.wait_for_service(timeout_sec=15.0)  # type: ignore[attr-defined]
        future = client.call_async(request)  # type: ignore[attr-defined]
        wait_for(future.done, 20.0, "the service answer")
        return future.result()

    def answer(self, kind: str, after: int = 0) -> EpisodeEvent:
        wait_for(lambda: any(a.event == kind for a in self.answers[after:]), 15.0, f"a '{kind}' answer")
        return next(a for a in self.answers[after:] if a.event == kind)


@dataclass
class Bench:
    recorder: RecorderNode
    cell: Cell
    root: Path

    def store(self) -> EpisodeStore:
        return EpisodeStore(self.root)


@contextmanager
def bench(root: Path, operator: str, **parameters: object) -> Iterator[Bench]:
    context = Context()
    rclpy.init(context=context, domain_id=next_domain())
    values = {"urdf_path": str(PANDA), "data_root": str(root), "operator": operator, "topics": TOPICS,
              "diagnostics_period_s": 0.2, "cell_id": "cell-test", **parameters}
    recorder = RecorderNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    cell = Cell(context)
    executors = [MultiThreadedExecutor(num_threads=3, context=context), SingleThreadedExecutor(context=context)]
    executors[0].add_node(recorder)
    executors[1].add_node(cell)
    threads = [threading.Thread(target=e.spin, daemon=True) for e in executors]
    for thread in threads:
        thread.start()
    try:
        yield Bench(recorder, cell, root)
    finally:
        for executor in executors:
            executor.shutdown(timeout_sec=2.0)
        for thread in threads:
            thread.join(timeout=5.0)
        recorder.destroy_node()
        cell.destroy_node()
        context.try_shutdown()


def _activate(b: Bench) -> None:
    assert b.recorder.trigger_configure() == TransitionCallbackReturn.SUCCESS, b.recorder.startup_error
    b.recorder.trigger_activate()
    assert b.recorder.active, b.recorder.status
    wait_for(lambda: {"/joint_states", "/camera/image_raw"} <= set(b.recorder._recorded_topics), 15.0,
             "the recorder to discover the cell's topics")


def _enrolled(root: Path, scopes: str = "record,train") -> str:
    return ConsentRegistry(root).enroll("Grace Hopper", scopes).operator.pseudonym


def test_no_consent_no_recording(tmp_path: Path) -> None:
    unknown = "op-0123456789abcdef"
    with bench(tmp_path, unknown) as b:
        _activate(b)
        b.cell.request("start", task="reach")
        refused = b.cell.answer("refused")
        assert "recording refused" in refused.message and "Grace" not in refused.message
        b.cell.publish_motion(50)
        wait_for(lambda: any(s.name.startswith("recorder") and s.level == b"\x02" for s in b.cell.statuses), 5.0,
                 "a diagnostics ERROR")
        assert b.store().list_episodes(include_discarded=True) == []


def test_an_episode_on_events_holds_every_message_and_an_independent_reader_decodes_it(tmp_path: Path) -> None:
    operator = _enrolled(tmp_path)
    with bench(tmp_path, operator) as b:
        _activate(b)
        wait_for(lambda: b.cell.joints.get_subscription_count() > 0, 15.0, "the recorder's subscription")
        b.cell.request("start", task="reach the red cube")
        started = b.cell.answer("recording")
        b.cell.publish_motion(200)
        time.sleep(0.3)
        count = len(b.cell.answers)
        b.cell.request("success")
        saved = b.cell.answer("saved", after=count)
        assert saved.episode_id == started.episode_id and saved.label == "success"
        manifest = b.store().load_manifest(saved.episode_id)
    assert manifest.state == "complete" and manifest.label == "success" and manifest.operator == operator
    assert manifest.consent is not None and "record" in manifest.consent.scopes
    assert manifest.task == "reach the red cube" and manifest.cell_id == "cell-test"
    assert manifest.topics["/joint_states"].count == 200
    assert manifest.topics["/joint_states"].dropped == 0 and manifest.topics["/camera/image_raw"].count == 8
    bag = next((tmp_path / "episodes" / saved.episode_id).glob("*.mcap"))
    with bag.open("rb") as handle:
        decoded = list(make_reader(handle, decoder_factories=[DecoderFactory()]).iter_decoded_messages())
    positions = [m.position for _, c, _, m in decoded if c.topic == "/joint_states"]
    assert len(positions) == 200
    np.testing.assert_allclose(positions[17], [0.17 + j for j in range(7)])
    events = [m.event for _, c, _, m in decoded if c.topic == "/episode/events"]
    assert "recording" in events  # the answers are in the bag too: the episode documents itself
    text = "".join(p.read_text(errors="ignore") for p in (tmp_path / "episodes").rglob("*") if p.is_file())
    assert "Grace" not in text and "Hopper" not in text


def test_services_start_stop_and_discard_the_last_episode(tmp_path: Path) -> None:
    with bench(tmp_path, "scripted") as b:  # machine-driven episodes need no consent, and say so
        _activate(b)
        started = b.cell.call(b.cell.start_client, StartEpisode.Request(task="scripted reach"))
        assert started.success, started.message
        b.cell.publish_motion(30)
        again = b.cell.call(b.cell.start_client, StartEpisode.Request())
        assert not again.success and "already recording" in again.message
        stopped = b.cell.call(b.cell.stop_client, StopEpisode.Request(label="failure"))
        assert stopped.success and stopped.episode_id == started.episode_id
        manifest = b.store().load_manifest(started.episode_id)
        assert manifest.label == "failure" and manifest.operator_kind == "scripted"
        discarded = b.cell.call(b.cell.stop_client, StopEpisode.Request(discard=True))
        assert discarded.success and discarded.episode_id == started.episode_id
        assert b.store().list_episodes() == []
        assert b.store().load_manifest(started.episode_id).state == "discarded"


def test_who_is_recorded_cannot_be_changed_at_runtime_by_anyone_on_the_domain(tmp_path: Path) -> None:
    """``ros2 param set /recorder operator ...`` (here: the node's own set_parameters service, over DDS) is refused."""
    pseudonym = _enrolled(tmp_path)
    with bench(tmp_path, pseudonym) as b:
        _activate(b)
        client = b.cell.create_client(SetParameters, "/recorder/set_parameters")
        for name, forged in (("operator", "scripted"), ("data_root", str(tmp_path / "elsewhere")),
                             ("policy_model_path", "/tmp/model.onnx"), ("cell_id", "another-cell")):
            request = SetParameters.Request(parameters=[Parameter(name, value=forged).to_parameter_msg()])
            (result,) = b.cell.call(client, request).results
            assert not result.successful and "read-only" in result.reason, (name, result.reason)
        assert b.recorder.get_parameter("operator").value == pseudonym
        b.cell.request("start", task="reach")
        b.cell.answer("recording")
        b.cell.publish_motion(20)
        b.cell.request("success")
        saved = b.cell.answer("saved")
        assert b.store().load_manifest(saved.episode_id).operator == pseudonym


def test_a_name_or_a_foreign_policy_id_as_operator_fails_configure_without_repeating_it(tmp_path: Path) -> None:
    """A parameter is public on /parameter_events: only pseudonyms and non-human ids may be handed to the node."""
    ConsentRegistry(tmp_path).enroll("Grace Hopper", "record")
    with bench(tmp_path, "Grace Hopper") as b:
        assert b.recorder.trigger_configure() != TransitionCallbackReturn.SUCCESS
        assert "expected a pseudonym" in b.recorder.startup_error and "Grace" not in b.recorder.startup_error
    model = tmp_path / "policy.onnx"
    model.write_bytes(b"not really a model, only its hash counts here")
    with bench(tmp_path, "policy:" + "0" * 16, policy_model_path=str(model)) as b:
        assert b.recorder.trigger_configure() != TransitionCallbackReturn.SUCCESS
        assert "SHA-256 of policy_model_path" in b.recorder.startup_error
    with bench(tmp_path, "policy:" + hashlib.sha256(model.read_bytes()).hexdigest()[:16],
               policy_model_path=str(model)) as b:
        assert b.recorder.trigger_configure() == TransitionCallbackReturn.SUCCESS, b.recorder.startup_error


@pytest.mark.parametrize("withdrawal", ["revoke", "object"])
def test_a_revocation_during_an_episode_discards_it_and_says_so(tmp_path: Path, withdrawal: str) -> None:
    """Consent is checked again while recording, not only at the start: nothing recorded after withdrawal stays.

    An objection (``consent object``) is honoured by the same check as a revocation.
    """
    pseudonym = _enrolled(tmp_path)
    with bench(tmp_path, pseudonym, consent_check_period_s=0.2) as b:
        _activate(b)
        b.cell.request("start", task="reach")
        started = b.cell.answer("recording")
        b.cell.publish_motion(50)
        if withdrawal == "revoke":
            ConsentRegistry(tmp_path).revoke(pseudonym, "record")
        else:
            ConsentRegistry(tmp_path).object(pseudonym)
        discarded = b.cell.answer("discarded")
        assert discarded.episode_id == started.episode_id and "consent withdrawn" in discarded.message
        assert "Grace" not in discarded.message
        b.cell.publish_motion(20)
        manifest = b.store().load_manifest(started.episode_id)
        assert manifest.state == "discarded"
        folder = tmp_path / "episodes" / started.episode_id
        assert not list(folder.glob("*.mcap")), "the bag of a withdrawn episode is deleted"
        assert b.store().list_episodes() == []
        wait_for(lambda: any(s.name.startswith("recorder") and s.level == b"\x02" for s in b.cell.statuses), 5.0,
                 "a diagnostics ERROR")


def test_a_purge_during_an_episode_revokes_first_and_erases_the_episode_too(tmp_path: Path) -> None:
    """The purge race: revoke, then list. The recorder discards the live episode, and the purge removes it."""
    pseudonym = _enrolled(tmp_path)
    with bench(tmp_path, pseudonym, consent_check_period_s=0.2) as b:
        _activate(b)
        b.cell.request("start", task="reach")
        started = b.cell.answer("recording")
        b.cell.publish_motion(30)
        report = purge_operator(tmp_path, pseudonym)
        assert started.episode_id in report.episodes_removed and report.consent == "forgotten"
        assert "consent withdrawn" in b.cell.answer("discarded").message
        assert not (tmp_path / "episodes" / started.episode_id).exists()
        b.cell.request("start", task="reach again")
        assert "recording refused" in b.cell.answer("refused").message


def _recorder_process(root: Path, operator: str, domain: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "robot_brain.nodes.recorder", "--ros-args", "-p", "autostart:=true",
         "-p", f"urdf_path:={PANDA}", "-p", f"data_root:={root}", "-p", f"operator:={operator}",
         "-p", "topics:=[" + ",".join(f'"{t}"' for t in TOPICS) + "]", "-p", "flush_interval_s:=0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "ROS_DOMAIN_ID": str(domain), "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.slow
def test_kill_9_mid_episode_keeps_earlier_episodes_and_the_next_recorder_recovers_it(tmp_path: Path) -> None:
    operator = _enrolled(tmp_path)
    domain = next_domain()
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    cell = Cell(context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(cell)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    process = _recorder_process(tmp_path, operator, domain)
    try:
        wait_for(lambda: cell.joints.get_subscription_count() > 0, 60.0, "the recorder process")
        time.sleep(1.0)  # the recorder's event subscription and services come up with it
        saved_ids = []
        for n in range(2):
            count = len(cell.answers)
            cell.request("start", task=f"episode {n}")
            cell.answer("recording", after=count)
            cell.publish_motion(100)
            count = len(cell.answers)
            cell.request("success")
            saved_ids.append(cell.answer("saved", after=count).episode_id)
        count = len(cell.answers)
        cell.request("start", task="interrupted")
        interrupted = cell.answer("recording", after=count).episode_id
        cell.publish_motion(300)
        time.sleep(0.5)  # past a flush
        process.kill()
        process.wait(timeout=10)
        store = EpisodeStore(tmp_path)
        assert store.load_manifest(interrupted).state == "recording"
        second = _recorder_process(tmp_path, operator, domain)  # its configure runs the recovery scan
        try:
            wait_for(lambda: store.load_manifest(interrupted).state in ("recovered", "incomplete"), 60.0,
                     "the next recorder to recover the interrupted episode")
        finally:
            second.send_signal(signal.SIGINT)
            output, _ = second.communicate(timeout=20)
        assert second.returncode == 0 and "Traceback" not in output, output
    finally:
        if process.poll() is None:
            process.kill()
        executor.shutdown(timeout_sec=2.0)
        thread.join(timeout=5.0)
        cell.destroy_node()
        context.try_shutdown()
    for episode_id in saved_ids:
        manifest = store.load_manifest(episode_id)
        assert manifest.state == "complete" and manifest.topics["/joint_states"].count == 100
        with store.open_episode(episode_id) as reader:
            assert sum(1 for _ in reader.messages(["/joint_states"])) == 100
    recovered = store.load_manifest(interrupted)
    assert recovered.state == "recovered", recovered.error
    assert 0 < recovered.topics["/joint_states"].count <= 300


def test_deactivating_with_a_dead_writer_does_not_wait_for_an_answer_that_never_comes(tmp_path: Path) -> None:
    """A stop request handed to a worker that is gone was waited on for 10 s; the episode stays recoverable."""
    with bench(tmp_path, "scripted") as b:
        _activate(b)
        b.cell.request("start", task="reach")
        started = b.cell.answer("recording")
        b.cell.publish_motion(20)
        worker = b.recorder.worker("writer")
        assert worker is not None and worker.stop(timeout=5.0)  # the writer thread ends, the episode open
        assert not b.recorder.worker_alive("writer")
        began = time.monotonic()
        b.recorder.trigger_deactivate()
        assert time.monotonic() - began < 3.0
        b.recorder.trigger_cleanup()  # teardown leaves the open episode to the recovery scan
        (result,) = EpisodeStore(tmp_path).recover()
        assert result.episode_id == started.episode_id
