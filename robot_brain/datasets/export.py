"""Recorded episodes → one LeRobot v3.0 dataset, with consent checked at export time and provenance kept.

``robot-brain data export`` and the factory call :func:`export_episodes`::

    from robot_brain.datasets.export import export_episodes

    report = export_episodes(data_root, ["20261201-073015-3fa9c2", ...], out, fps=20, codec="libsvtav1")
    report.content_hash, report.frames, report.excluded, report.dropped_by_reason

**Features** (the trainer reads these names; import them from here):

==============================  ==========================================================================
``observation.state``           arm joint positions, float32 ``[dof]``, names = joint names (base to tip)
``observation.ee_pose``         FK of the resampled joint positions: tool pose in the base frame
                                ``[x y z qx qy qz qw]`` (``qw >= 0``, as the policy node computes it)
``observation.gripper``         ``[1]``, 0 open … 1 closed; only when the arm has a driven gripper joint
``observation.target_point``    ``[3]``, ``/perception/target_point`` (base frame), when every episode has it
``observation.images.camera``   video of ``/camera/image_raw``, when every episode has it
``action``                      commanded joint positions ``[dof]`` (the controller's command in force)
``action.ee_pose``              FK of the commanded joint positions
``action.gripper``              ``[1]``, the gripper command in force, 0 open … 1 closed
==============================  ==========================================================================

**Time.** Every stream is put on the grid ``k / fps`` by its bag timestamps (receive time, the
one clock all topics share; header stamps may be sim time and commands have none), with
:mod:`robot_brain.datasets.resample`: joint states interpolated linearly (``JOINT_TOLERANCE_S``),
camera frames the latest at or before the frame, at most ``CAMERA_TOLERANCE_S`` or 1.5 camera periods old (what a
policy would have had then; the policy node skips a step whose image is stale), the perceived
target and the arm command the latest at or before the frame however old: perception publishes
nothing while it cannot see the target (the arm occludes it during a grasp) and the policy node
keeps the last one, and a position controller keeps its last command (the arm controller goes
quiet at rest). A frame missing an input is dropped and counted by reason; the rest of the
episode is cut into segments of consecutive frames, each one dataset episode. Frames before
the first arm command or the first target are dropped (counted under ``command``,
``target_point``); frames whose target is older than ``TARGET_FRESH_S`` are kept and counted
(``stale_target_frames``). A gripper that has not been
commanded yet holds where it is, so until the first gripper command ``action.gripper`` is the
measured gripper position (counted in the report as ``gripper_action_from_state``).

**Consent at export time.** An episode is exported only when its operator's consent covers
``train`` now, and also ``export`` when the output folder is outside the data root (the
dataset leaves the site). Non-human operators (``scripted``, ``policy:…``) need none and are
labelled as such. Incomplete, discarded and still-recording episodes are excluded too, with
the reason. An operator the registry does not know is an error (consent cannot be checked).

**Checks before anything is written.** Every selected bag is read completely (corrupt or
truncated data, a missing ``/joint_states``, unknown types, robots that differ, camera sizes
that differ) before the output folder is created, so bad input fails with one line and
writes nothing. A failure while writing (a full disk) leaves the output as an unfinished
LeRobot export (``INCOMPLETE.json``; ``robot_brain.datasets.lerobot.recover`` finishes it with
the episodes already staged), never as a dataset that looks whole.

Each dataset episode's provenance is its source manifest (pseudonyms only) plus the consent
decision at export, its segment and its resampling report; ``meta/provenance.json`` also
records the export itself (data root, when consent was checked, the excluded episodes, the
options, so ``data purge --rebuild`` can re-export it). The export is logged as
``dataset.exported`` in the audit log (pseudonyms only).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from robot_brain.consent.events import append_audit
from robot_brain.consent.registry import ConsentRegistry, Decision
from robot_brain.datasets import lerobot
from robot_brain.datasets.dataset_provenance import seal_dataset
from robot_brain.datasets.lerobot_format import DatasetFormatError
from robot_brain.datasets.resample import Segment, Stream, resample
from robot_brain.embodiment import Arm, load_arm
from robot_brain.episodes.errors import EpisodeReadError, MissingTopicError
from robot_brain.episodes.manifest import (
    METADATA_NAME,
    READABLE_STATES,
    STATE_DISCARDED,
    STATE_INCOMPLETE,
    STATE_RECORDING,
    EpisodeManifest,
)
from robot_brain.episodes.store import EpisodeReader, EpisodeStore
from robot_brain.errors import UserError
from robot_brain.perception.geometry import matrix_to_pose
from robot_brain.perception.image import ImageFormatError, buffer_to_array
from robot_brain.storage.paths import DataLayout
from robot_brain.storage.times import format_time, require_aware, utc_now

__all__ = [
    "ACTION",
    "ACTION_EE_POSE",
    "ACTION_GRIPPER",
    "CAMERA",
    "DEFAULT_CODEC",
    "DEFAULT_FPS",
    "DEFAULT_FRAME_DT_S",
    "EE_POSE",
    "EXPORT_FORMAT",
    "GRIPPER",
    "POSE_NAMES",
    "STATE",
    "TARGET_POINT",
    "EpisodeExport",
    "Exclusion",
    "ExportError",
    "ExportReport",
    "export_episodes",
    "exportable_episodes",
]

DEFAULT_FPS = 20
"""Frames per second of an exported dataset: one frame is one policy step."""
DEFAULT_FRAME_DT_S = 1.0 / DEFAULT_FPS
"""0.05 s: the ``dt`` of a policy's action chunk trained on a default export (one action per frame)."""
DEFAULT_CODEC = "libsvtav1"
CODECS = ("libsvtav1", "h264")

STATE = "observation.state"
EE_POSE = "observation.ee_pose"
GRIPPER = "observation.gripper"
TARGET_POINT = "observation.target_point"
CAMERA_NAME = "camera"
CAMERA = lerobot.camera_key(CAMERA_NAME)
ACTION = "action"
ACTION_EE_POSE = "action.ee_pose"
ACTION_GRIPPER = "action.gripper"
POSE_NAMES = ("x", "y", "z", "qx", "qy", "qz", "qw")
POINT_NAMES = ("x", "y", "z")
GRIPPER_NAMES = ("gripper",)

JOINT_STATES_TOPIC = "/joint_states"
FORWARD_COMMAND_TOPIC = "/forward_position_controller/commands"
TRAJECTORY_COMMAND_TOPIC = "/joint_trajectory_controller/joint_trajectory"
GRIPPER_COMMAND_TOPIC = "/gripper_controller/commands"
TARGET_POINT_TOPIC = "/perception/target_point"
CAMERA_TOPIC = "/camera/image_raw"
TOPIC_TYPES = {
    JOINT_STATES_TOPIC: "sensor_msgs/msg/JointState",
    FORWARD_COMMAND_TOPIC: "std_msgs/msg/Float64MultiArray",
    TRAJECTORY_COMMAND_TOPIC: "trajectory_msgs/msg/JointTrajectory",
    GRIPPER_COMMAND_TOPIC: "std_msgs/msg/Float64MultiArray",
    TARGET_POINT_TOPIC: "geometry_msgs/msg/PointStamped",
    CAMERA_TOPIC: "sensor_msgs/msg/Image",
}

JOINT_TOLERANCE_S = 0.025
"""Joint states (250-500 Hz) are interpolated only between samples at most this far from the frame."""
CAMERA_TOLERANCE_S = 0.1
"""A frame takes the latest camera image at most this old (3 frames at 30 Hz, 1.5 at 15 Hz) ..."""
CAMERA_TOLERANCE_PERIODS = 1.5
"""... or at most this many of the camera's own periods, when that is longer (a 10 Hz camera: 0.15 s)."""
TARGET_FRESH_S = 0.2
"""A target older than this (2-3 missed detections at 10-15 Hz) is still used, as at run time, but counted."""
MIN_SEGMENT_S = 0.5
"""Runs of kept frames shorter than this are dropped (too short to train a chunk on)."""

COMMAND_NOT_YET = "command: before the first arm command"
TARGET_NOT_YET = "target_point: before the first perceived target"
_HELD_REASONS = {"command": COMMAND_NOT_YET, "target_point": TARGET_NOT_YET}
"""The drop reason of frames before an episode's first command (commands are held, so only those can lack one)."""
CAMERA_MISSING = f"camera: no image within {CAMERA_TOLERANCE_S:g} s or {CAMERA_TOLERANCE_PERIODS:g} camera periods"
"""The drop reason of frames without a recent image: one key for every episode's own tolerance."""
GRIPPER_COMMAND_MODES = ("joint_position", "normalized")
EXPORT_FORMAT = "robot_brain.export/1"
_RGB_ENCODINGS = {"rgb8": None, "bgr8": [2, 1, 0], "rgba8": [0, 1, 2], "bgra8": [2, 1, 0], "mono8": [0, 0, 0]}


class ExportError(UserError):
    """An export that cannot be done as asked: mismatched robots, nothing left to export, a bad option."""


@dataclass(frozen=True)
class Exclusion:
    """An episode left out of the dataset: ``reason`` (short, groups in the card) and ``detail`` (one line)."""

    episode_id: str
    reason: str
    detail: str
    operator: str | None = None
    operator_kind: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "episode_id": self.episode_id,
            "operator": self.operator,
            "operator_kind": self.operator_kind,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass
class EpisodeExport:
    """What became of one exported source episode."""

    episode_id: str
    operator: str
    operator_kind: str
    consent: dict[str, Any]
    command_source: str
    dataset_episodes: list[int]
    frames: int
    grid_frames: int
    dropped_by_reason: dict[str, int]
    gripper_action_from_state: int
    stale_target_frames: int
    skipped_messages: dict[str, int]
    source_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "episode_id": self.episode_id,
            "operator": self.operator,
            "operator_kind": self.operator_kind,
            "consent_id": self.consent.get("consent_id"),
            "consent_scopes": self.consent.get("consent_scopes"),
            "command_source": self.command_source,
            "dataset_episodes": list(self.dataset_episodes),
            "frames": self.frames,
            "grid_frames": self.grid_frames,
            "dropped_by_reason": dict(self.dropped_by_reason),
            "gripper_action_from_state": self.gripper_action_from_state,
            "stale_target_frames": self.stale_target_frames,
            "skipped_messages": dict(self.skipped_messages),
            "source_bytes": self.source_bytes,
        }


@dataclass
class ExportReport:
    """The outcome of :func:`export_episodes`; ``to_json`` is what ``--json`` prints."""

    dataset: Path
    data_root: Path
    fps: int
    codec: str
    robot: str
    urdf_sha256: str
    features: list[str]
    omitted_features: dict[str, str]
    episodes: list[EpisodeExport]
    excluded: list[Exclusion]
    consent_checked_at: str
    required_scopes: list[str]
    leaves_data_root: bool
    dataset_episodes: int = 0
    frames: int = 0
    grid_frames: int = 0
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    content_hash: str = ""
    size_bytes: int = 0
    source_bytes: int = 0
    seconds: float = 0.0

    @property
    def dropped_frames(self) -> int:
        return self.grid_frames - self.frames

    @property
    def frames_per_second(self) -> float:
        """Export speed: dataset frames written per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": str(self.dataset),
            "data_root": str(self.data_root),
            "fps": self.fps,
            "codec": self.codec,
            "robot": self.robot,
            "urdf_sha256": self.urdf_sha256,
            "features": list(self.features),
            "omitted_features": dict(self.omitted_features),
            "episodes": [episode.to_json() for episode in self.episodes],
            "dataset_episodes": self.dataset_episodes,
            "frames": self.frames,
            "grid_frames": self.grid_frames,
            "dropped_frames": self.dropped_frames,
            "dropped_by_reason": dict(self.dropped_by_reason),
            "excluded": [exclusion.to_json() for exclusion in self.excluded],
            "consent_checked_at": self.consent_checked_at,
            "required_scopes": list(self.required_scopes),
            "leaves_data_root": self.leaves_data_root,
            "content_hash": self.content_hash,
            "size_bytes": self.size_bytes,
            "source_bytes": self.source_bytes,
            "seconds": round(self.seconds, 3),
            "frames_per_second": round(self.frames_per_second, 1),
        }


# -- selecting and checking episodes ----------------------------------------------------------


def path_inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is ``folder`` or below it, symbolic links resolved (where a dataset really goes)."""
    real_path, real_folder = os.path.realpath(path), os.path.realpath(folder)
    return real_path == real_folder or real_path.startswith(real_folder.rstrip(os.sep) + os.sep)


def exportable_episodes(data_root: str | os.PathLike[str] | DataLayout, robot: str | None = None) -> list[str]:
    """Ids of every episode ``--all`` considers (not discarded; of ``robot`` when given), in start order.

    States and consent are checked by :func:`export_episodes`, which lists the ones it leaves out.
    """
    layout = DataLayout.resolve(data_root)
    layout.require_root()
    store = EpisodeStore(layout)
    ids = []
    for entry in store.list_episodes():
        if entry.manifest is None:
            raise UserError(f"episode {entry.episode_id}: {entry.error}")
        if robot is None or entry.manifest.robot.name == robot:
            ids.append(entry.episode_id)
    if not ids:
        where = f" of robot {robot!r}" if robot is not None else ""
        robots = sorted({e.manifest.robot.name for e in store.list_episodes() if e.manifest is not None})
        hint = f" (robots recorded: {', '.join(robots)})" if robot is not None and robots else ""
        raise ExportError(f"no episodes{where} in {store.episodes_dir}{hint}")
    return ids


def _consent_exclusion(
    registry: ConsentRegistry, manifest: EpisodeManifest, scopes: Sequence[str], now: datetime
) -> tuple[Exclusion | None, dict[str, Any]]:
    """(None, the decision as provenance) when every scope is granted now; else the exclusion."""
    decisions: list[Decision] = [
        registry.check_episode(  # an episode past its retention period is refused like a withdrawn consent
            manifest.operator, scope, recorded_at=manifest.start_time, consent_id=manifest.consent.id, at=now
        )
        for scope in scopes
    ]
    for decision in decisions:
        if decision.operator is None:
            raise ExportError(
                f"episode {manifest.episode_id}: its operator {manifest.operator} is unknown to the consent registry "
                f"({decision.reason}; {registry.layout.registry_path}): consent cannot be checked"
            )
    for decision in decisions:
        if not decision.allowed:
            return (
                Exclusion(
                    manifest.episode_id,
                    "retention period over" if decision.retention_expired else f"no '{decision.scope}' consent now",
                    decision.reason,
                    manifest.operator,
                    manifest.operator_kind,
                ),
                {},
            )
    provenance = decisions[0].to_provenance()
    provenance["consent_checked_scopes"] = list(scopes)
    provenance.pop("consent_checked_scope", None)
    return None, provenance


def _state_exclusion(store: EpisodeStore, manifest: EpisodeManifest) -> Exclusion | None:
    if manifest.state in READABLE_STATES:
        return None
    detail = {
        STATE_DISCARDED: "the operator discarded it",
        STATE_INCOMPLETE: f"nothing in it was readable ({manifest.error or 'no detail'})",
        STATE_RECORDING: (
            "still being recorded"
            if store.is_live(manifest.episode_id)
            else "its recorder died: run `robot-brain data ls` to recover it"
        ),
    }.get(manifest.state, manifest.state)
    return Exclusion(
        manifest.episode_id, f"episode {manifest.state}", detail, manifest.operator, manifest.operator_kind
    )


# -- reading an episode's streams -------------------------------------------------------------


@dataclass
class _Series:
    """One recorded signal: receive times (ns, strictly increasing) and values ``(N, D)``."""

    times: np.ndarray
    values: np.ndarray

    @classmethod
    def build(cls, times: list[int], values: list[Any]) -> _Series:
        stamps = np.asarray(times, dtype=np.int64)
        array = np.asarray(values, dtype=np.float64).reshape(len(times), -1)
        # Equal receive times: the later message wins (the one a subscriber would have kept).
        keep = np.append(np.diff(stamps) != 0, True) if stamps.size else np.zeros(0, dtype=bool)
        return cls(stamps[keep], array[keep])


@dataclass
class _Camera:
    times: np.ndarray
    ordinals: np.ndarray
    height: int
    width: int


@dataclass
class _Recorded:
    """One episode read completely before anything is written."""

    manifest: EpisodeManifest
    path: Path
    consent: dict[str, Any]
    joints: _Series
    gripper: _Series | None
    command: _Series | None
    command_source: str
    gripper_command: _Series | None
    target: _Series | None
    camera: _Camera | None
    skipped: dict[str, int]
    source_bytes: int


class _JointIndexer:
    """Positions of given joints in ``JointState`` messages, with the name lookup cached per name list."""

    def __init__(self, joints: Sequence[str]) -> None:
        self.joints = list(joints)
        self._cache: dict[tuple[str, ...], np.ndarray | None] = {}

    def indices(self, names: Sequence[str]) -> np.ndarray | None:
        key = tuple(names)
        if key not in self._cache:
            where = {name: position for position, name in enumerate(key)}
            found = [where.get(joint) for joint in self.joints]
            self._cache[key] = None if any(i is None for i in found) else np.asarray(found, dtype=np.int64)
        return self._cache[key]


@dataclass(frozen=True)
class _Robot:
    """The one arm of an export: kinematics, gripper convention, the controller's joint order."""

    arm: Arm
    command_order: np.ndarray  # command value i is arm joint command_order[i]
    gripper_open: np.ndarray
    gripper_closed: np.ndarray
    gripper_mode: str

    @property
    def has_gripper(self) -> bool:
        return self.gripper_open.size > 0

    def normalize_gripper(self, positions: np.ndarray) -> np.ndarray:
        """Driven gripper joint positions ``(N, G)`` → ``(N, 1)``, 0 open … 1 closed (mean over the joints)."""
        span = self.gripper_closed - self.gripper_open
        span = np.where(np.abs(span) > 1e-12, span, 1.0)
        return np.clip(((positions - self.gripper_open) / span).mean(axis=1, keepdims=True), 0.0, 1.0)

    def poses(self, joints: np.ndarray) -> np.ndarray:
        """``[x y z qx qy qz qw]`` of the tool in the base frame for each row of joint positions."""
        fk = self.arm.kinematics.fk
        return np.asarray([matrix_to_pose(fk(row)) for row in np.asarray(joints, dtype=np.float64)])


def _robot(arm: Arm, command_joints: Sequence[str] | None, gripper_mode: str) -> _Robot:
    spec = arm.spec
    if command_joints is None:
        order = np.arange(spec.dof)
    else:
        names = list(command_joints)
        if sorted(names) != sorted(spec.joint_names):
            raise ExportError(
                f"command joints: expected an order of the arm's joints {', '.join(spec.joint_names)}, "
                f"found {', '.join(names)}"
            )
        order = np.asarray([spec.joint_names.index(name) for name in names], dtype=np.int64)
    if spec.driven_gripper_joints:
        open_positions, closed_positions = spec.gripper_open_closed()
    else:
        open_positions = closed_positions = np.zeros(0)
    return _Robot(arm, order, np.asarray(open_positions), np.asarray(closed_positions), gripper_mode)


def _decode(reader: EpisodeReader, topic: str, msgtype: str, timestamp: int, raw: bytes) -> Any:
    try:
        return reader.typestore.deserialize_cdr(raw, msgtype)
    except Exception as error:  # rosbags raises assorted types on damaged CDR
        text = " ".join(str(error).split())[:160] or type(error).__name__
        raise EpisodeReadError(
            f"episode {reader.manifest.episode_id}: {reader.bag_path}: message on {topic} at {timestamp} ns "
            f"does not decode as {msgtype} ({text})"
        ) from None


def image_to_rgb(message: Any, where: str) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB array of a ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8)."""
    encoding = str(message.encoding)
    if encoding not in _RGB_ENCODINGS:
        raise ExportError(
            f"{where}: image encoding {encoding!r} cannot be exported; expected {', '.join(_RGB_ENCODINGS)}"
        )
    try:
        view = buffer_to_array(message.data, int(message.height), int(message.width), encoding, int(message.step))
    except ImageFormatError as error:
        raise ExportError(f"{where}: {error}") from None
    order = _RGB_ENCODINGS[encoding]
    if view.ndim == 2:
        view = view[:, :, None]
    return np.ascontiguousarray(view if order is None else view[:, :, order])


def _present_topics(reader: EpisodeReader, episode_id: str, metadata: Path) -> list[str]:
    """The export's topics that have messages in the bag, after checking their types and that joint states exist."""
    topics = reader.topics
    for topic, expected in TOPIC_TYPES.items():
        if topic in topics and topics[topic] != expected:
            raise ExportError(
                f"episode {episode_id} ({metadata}): {topic} has type {topics[topic]}, expected {expected}"
            )
    present = [topic for topic in TOPIC_TYPES if topic in topics and reader.message_count(topic) > 0]
    if JOINT_STATES_TOPIC not in present:
        raise MissingTopicError(
            f"episode {episode_id} ({metadata}) has no {JOINT_STATES_TOPIC} messages; "
            f"it has {', '.join(sorted(t for t in topics if reader.message_count(t) > 0)) or 'none'}"
        )
    return present


class _StreamCollector:
    """The buffers of :func:`_read_episode`'s one pass over a bag, and how each topic's messages fill them."""

    def __init__(self, reader: EpisodeReader, episode_id: str, robot: _Robot, present: Sequence[str]) -> None:
        spec = robot.arm.spec
        self.reader = reader
        self.episode_id = episode_id
        self.robot = robot
        self.spec = spec
        self.arm_indexer = _JointIndexer(spec.joint_names)
        self.gripper_indexer = _JointIndexer(spec.driven_gripper_joints)
        self.trajectory_indexer = _JointIndexer(spec.joint_names)
        self.collected: dict[str, tuple[list[int], list[Any]]] = {name: ([], []) for name in present}
        self.gripper_times: list[int] = []
        self.gripper_values: list[Any] = []
        self.camera_times: list[int] = []
        self.camera_ordinals: list[int] = []
        self.camera_size: tuple[int, int] | None = None
        self.skipped: dict[str, int] = {}
        self.camera_count = 0

    def add(self, topic: str, stamp: int, decoded: Any) -> None:
        """File one decoded message under its topic."""
        times, values = self.collected[topic]
        if topic == JOINT_STATES_TOPIC:
            self._add_joint_state(topic, stamp, decoded, times, values)
        elif topic == FORWARD_COMMAND_TOPIC:
            self._add_forward_command(topic, stamp, decoded, times, values)
        elif topic == TRAJECTORY_COMMAND_TOPIC:
            self._add_trajectory_command(topic, stamp, decoded, times, values)
        elif topic == GRIPPER_COMMAND_TOPIC:
            self._add_gripper_command(topic, stamp, decoded, times, values)
        elif topic == TARGET_POINT_TOPIC:
            point = decoded.point
            times.append(stamp)
            values.append([point.x, point.y, point.z])
        elif topic == CAMERA_TOPIC:
            self._add_camera_image(stamp, decoded)

    def _skip(self, topic: str) -> None:
        """Count one message of ``topic`` that holds nothing the export can use."""
        self.skipped[topic] = self.skipped.get(topic, 0) + 1

    def _add_joint_state(self, topic: str, stamp: int, decoded: Any, times: list[int], values: list[Any]) -> None:
        """Arm joint positions, and the driven gripper's from the same message; counted as skipped if it has neither."""
        robot = self.robot
        positions = np.asarray(decoded.position, dtype=np.float64)
        names = list(decoded.name)
        if len(positions) != len(names):
            self._skip(topic)
            return
        arm_index = self.arm_indexer.indices(names)
        if arm_index is not None:
            times.append(stamp)
            values.append(positions[arm_index])
        if robot.has_gripper:
            grip_index = self.gripper_indexer.indices(names)
            if grip_index is not None:
                self.gripper_times.append(stamp)
                self.gripper_values.append(positions[grip_index])  # normalised once, in _recorded_from
        if arm_index is None and (not robot.has_gripper or self.gripper_indexer.indices(names) is None):
            self._skip(topic)

    def _add_forward_command(self, topic: str, stamp: int, decoded: Any, times: list[int], values: list[Any]) -> None:
        """A ``Float64MultiArray`` arm command, put into the arm's joint order."""
        spec = self.spec
        data = np.asarray(decoded.data, dtype=np.float64)
        if data.shape[0] != spec.dof:
            raise ExportError(
                f"episode {self.episode_id}: {topic} at {stamp} ns has {data.shape[0]} values, expected "
                f"{spec.dof} (the arm's joints; give the controller's joint order with --command-joints)"
            )
        command = np.empty(spec.dof)
        command[self.robot.command_order] = data
        times.append(stamp)
        values.append(command)

    def _add_trajectory_command(
        self, topic: str, stamp: int, decoded: Any, times: list[int], values: list[Any]
    ) -> None:
        """The first point of a ``JointTrajectory`` command; counted as skipped if it lacks an arm joint."""
        index = self.trajectory_indexer.indices(list(decoded.joint_names))
        if index is None or not decoded.points:
            self._skip(topic)
            return
        positions = np.asarray(decoded.points[0].positions, dtype=np.float64)
        if positions.shape[0] != len(decoded.joint_names):
            self._skip(topic)
            return
        times.append(stamp)
        values.append(positions[index])

    def _add_gripper_command(self, topic: str, stamp: int, decoded: Any, times: list[int], values: list[Any]) -> None:
        """A gripper command in the ``--gripper-command`` convention (ignored when the arm has no gripper to drive)."""
        robot = self.robot
        if not robot.has_gripper and robot.gripper_mode != "normalized":
            return
        data = np.asarray(decoded.data, dtype=np.float64)
        expected = 1 if robot.gripper_mode == "normalized" else robot.gripper_open.size
        if data.shape[0] != expected:
            raise ExportError(
                f"episode {self.episode_id}: {topic} at {stamp} ns has {data.shape[0]} values, expected {expected} "
                f"({'a normalized command' if expected == 1 else 'the driven gripper joints'}; see "
                "--gripper-command)"
            )
        times.append(stamp)
        values.append(data)  # normalised once, in _recorded_from

    def _add_camera_image(self, stamp: int, decoded: Any) -> None:
        """A camera image's time and ordinal, after checking it converts to RGB at the episode's one size."""
        where = f"episode {self.episode_id}: {self.reader.bag_path} image at {stamp} ns"
        image = image_to_rgb(decoded, where)
        size = (image.shape[0], image.shape[1])
        if self.camera_size is None:
            self.camera_size = size
        elif size != self.camera_size:
            camera_size = self.camera_size
            raise ExportError(
                f"{where} is {size[1]}x{size[0]}, the episode's first was {camera_size[1]}x{camera_size[0]}"
            )
        self.camera_times.append(stamp)
        self.camera_ordinals.append(self.camera_count)
        self.camera_count += 1


def _read_episode(store: EpisodeStore, manifest: EpisodeManifest, consent: dict[str, Any], robot: _Robot) -> _Recorded:
    """Read every stream the export needs, checking the whole bag (one pass over it)."""
    episode_id = manifest.episode_id
    with store.open_episode(episode_id) as reader:
        metadata = reader.path / METADATA_NAME
        present = _present_topics(reader, episode_id, metadata)
        streams = _StreamCollector(reader, episode_id, robot, present)
        for message in reader.messages(present, decode=False):
            topic, stamp = message.topic, message.timestamp_ns
            decoded = _decode(reader, topic, message.msgtype, stamp, message.message)  # type: ignore[arg-type]
            streams.add(topic, stamp, decoded)
    return _recorded_from(manifest, consent, robot, streams, metadata, reader.path)


def _recorded_from(
    manifest: EpisodeManifest,
    consent: dict[str, Any],
    robot: _Robot,
    streams: _StreamCollector,
    metadata: Path,
    path: Path,
) -> _Recorded:
    """The episode's series built from the collected messages, once the bag is closed."""
    episode_id = manifest.episode_id
    spec = robot.arm.spec
    collected = streams.collected
    joint_times, joint_values = collected[JOINT_STATES_TOPIC]
    if not joint_times:
        raise MissingTopicError(
            f"episode {episode_id} ({metadata}): no {JOINT_STATES_TOPIC} message holds every arm joint "
            f"({', '.join(spec.joint_names)})"
        )
    command, source = None, ""
    for topic in (FORWARD_COMMAND_TOPIC, TRAJECTORY_COMMAND_TOPIC):
        if topic in collected and collected[topic][0]:
            command, source = _Series.build(*collected[topic]), topic
            break
    camera = None
    if streams.camera_times and streams.camera_size is not None:
        stamps = np.asarray(streams.camera_times, dtype=np.int64)
        keep = np.append(np.diff(stamps) != 0, True)
        camera = _Camera(stamps[keep], np.asarray(streams.camera_ordinals, dtype=np.int64)[keep], *streams.camera_size)
    source_bytes = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    gripper_times, gripper_values = streams.gripper_times, streams.gripper_values
    return _Recorded(
        manifest=manifest,
        path=path,
        consent=consent,
        joints=_Series.build(joint_times, joint_values),
        gripper=_normalized(robot, _Series.build(gripper_times, gripper_values)) if gripper_times else None,
        command=command,
        command_source=source,
        gripper_command=(
            _gripper_commands(robot, _Series.build(*collected[GRIPPER_COMMAND_TOPIC]))
            if GRIPPER_COMMAND_TOPIC in collected and collected[GRIPPER_COMMAND_TOPIC][0]
            else None
        ),
        target=(
            _Series.build(*collected[TARGET_POINT_TOPIC])
            if TARGET_POINT_TOPIC in collected and collected[TARGET_POINT_TOPIC][0]
            else None
        ),
        camera=camera,
        skipped=streams.skipped,
        source_bytes=source_bytes,
    )


def _normalized(robot: _Robot, series: _Series) -> _Series:
    """Driven gripper joint positions → 0 open … 1 closed."""
    return _Series(series.times, robot.normalize_gripper(series.values))


def _gripper_commands(robot: _Robot, series: _Series) -> _Series:
    """Gripper commands as 0 open … 1 closed (``normalized`` ones are clipped to that range)."""
    if robot.gripper_mode == "normalized":
        return _Series(series.times, np.clip(series.values[:, :1], 0.0, 1.0))
    return _normalized(robot, series)


class _ImageSource:
    """Camera frames of one episode by sample index, read in one forward pass over the bag (one frame held)."""

    def __init__(self, reader: EpisodeReader, ordinals: np.ndarray) -> None:
        self._reader = reader
        self._ordinals = ordinals
        self._messages = reader.messages([CAMERA_TOPIC], decode=False)
        self._position = -1

    def __call__(self, index: int) -> np.ndarray:
        target = int(self._ordinals[index])
        if target < self._position:  # pragma: no cover - resample's indices never go back
            raise RuntimeError("camera frames must be fetched in time order")
        message = None
        while self._position < target:
            message = next(self._messages)
            self._position += 1
        assert message is not None
        decoded = _decode(self._reader, CAMERA_TOPIC, message.msgtype, message.timestamp_ns, message.message)  # type: ignore[arg-type]
        return image_to_rgb(decoded, f"episode {self._reader.manifest.episode_id}: image at {message.timestamp_ns} ns")


# -- the export -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    features: dict[str, dict[str, Any]]
    gripper: bool
    target: bool
    camera: tuple[int, int] | None
    omitted: dict[str, str]


def _plan_features(robot: _Robot, episodes: Sequence[_Recorded]) -> _Plan:
    spec = robot.arm.spec
    omitted: dict[str, str] = {}

    def everywhere(attribute: str, feature: str, what: str) -> bool:
        lacking = [e.manifest.episode_id for e in episodes if getattr(e, attribute) is None]
        if lacking:
            omitted[feature] = f"{len(lacking)} of {len(episodes)} episodes have no {what} (e.g. {lacking[0]})"
        return not lacking

    gripper = robot.has_gripper and everywhere("gripper", GRIPPER, "gripper joint states")
    if robot.has_gripper and not gripper:
        omitted[ACTION_GRIPPER] = omitted[GRIPPER]
    target = everywhere("target", TARGET_POINT, f"{TARGET_POINT_TOPIC} messages")
    camera = None
    if everywhere("camera", CAMERA, f"{CAMERA_TOPIC} messages"):
        sizes = {(e.camera.height, e.camera.width): e.manifest.episode_id for e in episodes if e.camera is not None}
        if len(sizes) > 1:
            (first, a), (second, b) = list(sizes.items())[:2]
            raise ExportError(
                f"episodes {a} and {b} have different camera sizes ({first[1]}x{first[0]} and "
                f"{second[1]}x{second[0]}): a dataset has one image size per camera; export them separately"
            )
        camera = next(iter(sizes))
    joint_names = list(spec.joint_names)
    features: dict[str, dict[str, Any]] = {
        STATE: lerobot.vector_feature(joint_names),
        EE_POSE: lerobot.vector_feature(POSE_NAMES),
    }
    if gripper:
        features[GRIPPER] = lerobot.vector_feature(GRIPPER_NAMES)
    if target:
        features[TARGET_POINT] = lerobot.vector_feature(POINT_NAMES)
    if camera is not None:
        features[CAMERA] = lerobot.video_feature(*camera)
    features[ACTION] = lerobot.vector_feature(joint_names)
    features[ACTION_EE_POSE] = lerobot.vector_feature(POSE_NAMES)
    if gripper:
        features[ACTION_GRIPPER] = lerobot.vector_feature(GRIPPER_NAMES)
    return _Plan(features, gripper, target, camera, omitted)


def _drop_reason(reason: str) -> str:
    """The report's key for a resampling drop reason (the camera's names the episode's tolerance: one key)."""
    stream = reason.split(":", 1)[0]
    if stream == "camera":
        return CAMERA_MISSING
    return _HELD_REASONS.get(stream, reason)


def camera_tolerance_s(times_ns: np.ndarray) -> float:
    """How old the latest camera image may be at a frame: ``CAMERA_TOLERANCE_S``, or 1.5 of the camera's periods.

    The latest image at or before a frame is up to one camera period old by design; with a fixed
    0.1 s a 10 Hz camera's every image would be on the edge, and a few milliseconds of receive
    jitter would drop frames and cut the episode into pieces. The period is the median interval
    between the episode's images, so a gap in the camera does not widen the tolerance.
    """
    if len(times_ns) < 2:
        return CAMERA_TOLERANCE_S
    period_s = float(np.median(np.diff(np.asarray(times_ns, dtype=np.int64)))) / 1e9
    return max(CAMERA_TOLERANCE_S, CAMERA_TOLERANCE_PERIODS * period_s)


def _resample_episode(recorded: _Recorded, plan: _Plan, fps: int, min_segment_frames: int) -> Any:
    origin = int(recorded.joints.times[0])

    def seconds(times: np.ndarray) -> np.ndarray:
        return (times - origin).astype(np.float64) / 1e9

    end_s = float(seconds(recorded.joints.times[-1:])[0])
    assert recorded.command is not None
    firsts = [float(seconds(recorded.command.times[:1])[0])]
    if plan.target and recorded.target is not None:
        firsts.append(float(seconds(recorded.target.times[:1])[0]))
    hold_s = end_s - min(0.0, *firsts) + 1.0  # held streams: any sample of the episode is recent enough
    streams = [
        Stream("joint_states", seconds(recorded.joints.times), recorded.joints.values, "linear", JOINT_TOLERANCE_S)
    ]
    if plan.gripper:
        assert recorded.gripper is not None
        streams.append(
            Stream("gripper", seconds(recorded.gripper.times), recorded.gripper.values, "linear", JOINT_TOLERANCE_S)
        )
    streams.append(Stream("command", seconds(recorded.command.times), recorded.command.values, "previous", hold_s))
    if plan.camera is not None:
        assert recorded.camera is not None
        tolerance = camera_tolerance_s(recorded.camera.times)
        streams.append(Stream("camera", seconds(recorded.camera.times), None, "previous", tolerance))
    if plan.target:
        assert recorded.target is not None
        target_times = seconds(recorded.target.times)
        streams.append(Stream("target_point", target_times, recorded.target.values, "previous", hold_s))
    return resample(streams, fps, start_s=0.0, end_s=end_s, min_segment_frames=min_segment_frames), seconds


def _gripper_action(
    recorded: _Recorded,
    segment: Segment,
    measured: np.ndarray,
    seconds: Callable[[np.ndarray], np.ndarray],
    fps: int,
) -> tuple[np.ndarray, int]:
    """The gripper command in force at each frame (at or before it); the measured gripper before the first one."""
    if recorded.gripper_command is None:
        return measured.copy(), len(segment)
    frame_times = segment.grid_indices / fps  # the grid exactly as resample built it (start 0)
    command_times = seconds(recorded.gripper_command.times)
    index = np.searchsorted(command_times, frame_times, side="right") - 1
    commanded = recorded.gripper_command.values[np.clip(index, 0, None)]
    before = index < 0
    return np.where(before[:, None], measured, commanded), int(before.sum())


def _segment_columns(
    robot: _Robot,
    plan: _Plan,
    recorded: _Recorded,
    segment: Segment,
    seconds: Callable[[np.ndarray], np.ndarray],
    fps: int,
) -> tuple[dict[str, np.ndarray], int]:
    joints = segment.values["joint_states"]
    command = segment.values["command"]
    columns = {STATE: joints, EE_POSE: robot.poses(joints)}
    from_state = 0
    if plan.gripper:
        columns[GRIPPER] = segment.values["gripper"]
    if plan.target:
        columns[TARGET_POINT] = segment.values["target_point"]
    columns[ACTION] = command
    columns[ACTION_EE_POSE] = robot.poses(command)
    if plan.gripper:
        columns[ACTION_GRIPPER], from_state = _gripper_action(
            recorded, segment, segment.values["gripper"], seconds, fps
        )
    return columns, from_state


def _load_robot(
    store: EpisodeStore, manifest: EpisodeManifest, command_joints: Sequence[str] | None, mode: str
) -> _Robot:
    path = store.episode_dir(manifest.episode_id) / manifest.robot.description_file
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise EpisodeReadError(f"episode {manifest.episode_id}: cannot read {path} ({error})") from None
    if "<xacro:" in text:
        # Expanding xacro evaluates expressions written in the file: nothing read from an episode is executed.
        raise ExportError(
            f"episode {manifest.episode_id}: {path} is unexpanded xacro; expected the URDF it was run with"
        )
    try:
        # By path, not as a string: a URDF that merely declares the xacro namespace is read as the URDF it is.
        arm = load_arm(path, base_link=manifest.robot.base_link or None, tip_link=manifest.robot.tip_link or None)
    except UserError as error:
        raise ExportError(f"episode {manifest.episode_id}: {path}: {error}") from None
    return _robot(arm, command_joints, mode)


def _check_description(store: EpisodeStore, manifest: EpisodeManifest) -> None:
    path = store.episode_dir(manifest.episode_id) / manifest.robot.description_file
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise EpisodeReadError(f"episode {manifest.episode_id}: cannot read {path} ({error.strerror})") from None
    if digest != manifest.robot.urdf_sha256:
        raise EpisodeReadError(
            f"episode {manifest.episode_id}: {path} has SHA-256 {digest[:16]}…, its manifest says "
            f"{manifest.robot.urdf_sha256[:16]}… (the robot description was changed after recording)"
        )


def _robot_key(manifest: EpisodeManifest) -> tuple[str, str, str]:
    return (manifest.robot.urdf_sha256, manifest.robot.base_link, manifest.robot.tip_link)


def _describe_robot(manifest: EpisodeManifest) -> str:
    robot = manifest.robot
    return f"{robot.name or 'unnamed'} (URDF {robot.urdf_sha256[:12]}, {robot.base_link}→{robot.tip_link})"


def _summary_line(exclusions: Sequence[Exclusion], limit: int = 3) -> str:
    shown = "; ".join(f"{e.episode_id}: {e.reason} ({e.detail})" for e in exclusions[:limit])
    more = f"; and {len(exclusions) - limit} more" if len(exclusions) > limit else ""
    return shown + more


def _check_options(
    fps: int, codec: str, gripper_command: str, min_segment_s: float, episode_ids: Sequence[str]
) -> None:
    """Refuse bad options of :func:`export_episodes` before anything is read."""
    if isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0:
        raise ExportError(f"fps: expected a positive whole number of frames per second, found {fps!r}")
    if codec not in CODECS:
        raise ExportError(f"codec: expected one of {', '.join(CODECS)}, found {codec!r}")
    if gripper_command not in GRIPPER_COMMAND_MODES:
        raise ExportError(
            f"gripper command: expected one of {', '.join(GRIPPER_COMMAND_MODES)}, found {gripper_command!r}"
        )
    if not math.isfinite(min_segment_s) or min_segment_s < 0:
        raise ExportError(f"minimum segment length: expected seconds >= 0, found {min_segment_s}")
    if not episode_ids:
        raise ExportError("no episodes to export: name episode ids (see `robot-brain data ls`) or use --all")


def _output_folder(layout: DataLayout, out: str | os.PathLike[str]) -> Path:
    """The absolute output folder, refused when it is inside the episodes or consent folders or not empty."""
    target = Path(os.path.abspath(os.fspath(out)))
    for folder, what in ((layout.episodes_dir, "episodes"), (layout.consent_dir, "consent registry")):
        if path_inside(target, folder):
            raise ExportError(f"--out {target} is inside the data root's {what} folder {folder}: choose another folder")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ExportError(f"--out {target}: expected a new or empty folder, found an existing one with files in it")
    return target


def _choose_episodes(
    store: EpisodeStore,
    registry: ConsentRegistry,
    episode_ids: Sequence[str],
    scopes: list[str],
    moment: datetime,
) -> tuple[list[Exclusion], list[tuple[EpisodeManifest, dict[str, Any]]]]:
    """(the exclusions, the manifests with their consent) by state and consent now; raises when none is left."""
    excluded: list[Exclusion] = []
    chosen: list[tuple[EpisodeManifest, dict[str, Any]]] = []
    for episode_id in dict.fromkeys(episode_ids):
        manifest = store.load_manifest(episode_id)
        exclusion = _state_exclusion(store, manifest)
        consent: dict[str, Any] = {}
        if exclusion is None:
            exclusion, consent = _consent_exclusion(registry, manifest, scopes, moment)
        if exclusion is not None:
            excluded.append(exclusion)
        else:
            chosen.append((manifest, consent))
    if not chosen:
        raise ExportError(f"nothing to export: every episode was excluded ({_summary_line(excluded)})")
    return excluded, chosen


def _require_one_robot(
    store: EpisodeStore, chosen: Sequence[tuple[EpisodeManifest, dict[str, Any]]]
) -> EpisodeManifest:
    """The first chosen manifest, after checking that all were recorded on its robot, description unchanged."""
    first = chosen[0][0]
    for manifest, _ in chosen[1:]:
        if _robot_key(manifest) != _robot_key(first):
            raise ExportError(
                f"episodes {first.episode_id} and {manifest.episode_id} were recorded on different robots: "
                f"{_describe_robot(first)} and {_describe_robot(manifest)}; a LeRobot dataset holds one robot: "
                "export each robot separately (--all --robot NAME)"
            )
    for manifest, _ in chosen:
        _check_description(store, manifest)
    return first


def _read_chosen(
    store: EpisodeStore,
    chosen: Sequence[tuple[EpisodeManifest, dict[str, Any]]],
    robot: _Robot,
    excluded: list[Exclusion],
    progress: Callable[[str], None] | None,
) -> list[_Recorded]:
    """Every chosen bag read completely; those without arm commands go to ``excluded``; raises when none is left."""
    recorded: list[_Recorded] = []
    for manifest, consent in chosen:
        if progress is not None:
            progress(f"reading {manifest.episode_id}")
        episode = _read_episode(store, manifest, consent, robot)
        if episode.command is None:
            excluded.append(
                Exclusion(
                    manifest.episode_id,
                    "no arm commands",
                    f"neither {FORWARD_COMMAND_TOPIC} nor {TRAJECTORY_COMMAND_TOPIC} has a message: "
                    "no action to export",
                    manifest.operator,
                    manifest.operator_kind,
                )
            )
            continue
        recorded.append(episode)
    if not recorded:
        raise ExportError(f"nothing to export: every episode was excluded ({_summary_line(excluded)})")
    return recorded


def _resample_recorded(
    recorded: Sequence[_Recorded], plan: _Plan, fps: int, min_frames: int, excluded: list[Exclusion]
) -> list[tuple[_Recorded, Any, Callable[[np.ndarray], np.ndarray]]]:
    """Each episode on the frame grid, drops keyed as in the report; empty ones to ``excluded``, raises if none left."""
    resampled = []
    for episode in recorded:
        result, seconds = _resample_episode(episode, plan, fps, min_frames)
        dropped: dict[str, int] = {}
        for reason, count in result.report.dropped_by_reason.items():
            key = _drop_reason(reason)
            dropped[key] = dropped.get(key, 0) + count
        result.report.dropped_by_reason = dropped
        if not result.segments:
            excluded.append(
                Exclusion(
                    episode.manifest.episode_id,
                    "no frame kept",
                    result.report.summary(),
                    episode.manifest.operator,
                    episode.manifest.operator_kind,
                )
            )
            continue
        resampled.append((episode, result, seconds))
    if not resampled:
        raise ExportError(f"nothing to export: every episode was excluded ({_summary_line(excluded)})")
    return resampled


def _export_options(
    fps: int, codec: str, command_joints: Sequence[str] | None, gripper_command: str, min_segment_s: float
) -> dict[str, Any]:
    """The options the export was run with, as recorded so ``data purge --rebuild`` can run it again."""
    return {
        "fps": fps,
        "codec": codec,
        "command_joints": list(command_joints) if command_joints is not None else None,
        "gripper_command": gripper_command,
        "min_segment_s": min_segment_s,
    }


def _export_record(
    layout: DataLayout,
    report: ExportReport,
    scopes: list[str],
    leaves: bool,
    excluded: Sequence[Exclusion],
    options: dict[str, Any],
    resampled: Sequence[tuple[_Recorded, Any, Callable[[np.ndarray], np.ndarray]]],
    plan: _Plan,
    min_frames: int,
) -> dict[str, Any]:
    """The export's own record in ``meta/provenance.json``, built once every episode is written (it sums them)."""
    return {
        "format": EXPORT_FORMAT,
        "data_root": str(layout.root),
        "consent_checked_at": report.consent_checked_at,
        "consent_scopes_required": scopes,
        "leaves_data_root": leaves,
        "source_episodes": [e.episode_id for e in report.episodes],
        "excluded": [exclusion.to_json() for exclusion in excluded],
        "options": options,
        "timing": {
            "clock": "bag receive time (ns), every topic on one clock",
            "joint_tolerance_s": JOINT_TOLERANCE_S,
            "camera_tolerance_s": max(
                (camera_tolerance_s(e.camera.times) for e, _, _ in resampled if e.camera is not None),
                default=CAMERA_TOLERANCE_S,
            ),
            "camera_tolerance": f"{CAMERA_TOLERANCE_S} s or {CAMERA_TOLERANCE_PERIODS} camera periods, "
            "whichever is longer (the largest of the episodes above)",
            "target": f"previous value held (counted when older than {TARGET_FRESH_S} s)",
            "command": "previous value held",
            "min_segment_frames": min_frames,
        },
        "omitted_features": dict(plan.omitted),
        "resampling": {
            "grid_frames": report.grid_frames,
            "kept_frames": report.frames,
            "dropped_by_reason": dict(report.dropped_by_reason),
        },
    }


def export_episodes(
    data_root: str | os.PathLike[str] | DataLayout | None,
    episode_ids: Sequence[str],
    out: str | os.PathLike[str],
    *,
    fps: int = DEFAULT_FPS,
    codec: str = DEFAULT_CODEC,
    command_joints: Sequence[str] | None = None,
    gripper_command: str = "joint_position",
    min_segment_s: float = MIN_SEGMENT_S,
    title: str | None = None,
    now: datetime | None = None,
    audit: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ExportReport:
    """Export ``episode_ids`` of the data root into a new LeRobot v3.0 dataset at ``out``.

    ``command_joints``: the arm controller's joint order in its ``Float64MultiArray`` commands
    (default: the arm's base-to-tip order, the controller's default). ``gripper_command``:
    ``joint_position`` (driven gripper joint positions, the controller's default) or
    ``normalized`` (0 open … 1 closed). ``now``: the instant consent is checked at (default:
    the present). ``audit``: append ``dataset.exported`` to the audit log. ``progress``
    receives one line per episode.

    Raises a ``UserError`` (one line) for an unknown episode, an unreadable manifest, one whose
    seal is missing or does not match (``ManifestSealError``: edited, or recorded unsealed), a
    corrupt or truncated bag, a missing ``/joint_states``, an operator the registry does not
    know, episodes of different robots, or when no episode is left to export; nothing is
    written then.
    """
    started = time.perf_counter()
    layout = DataLayout.resolve(data_root)
    layout.require_root()
    _check_options(fps, codec, gripper_command, min_segment_s, episode_ids)
    target = _output_folder(layout, out)
    leaves = not path_inside(target, layout.root)
    scopes = ["train", "export"] if leaves else ["train"]
    moment = require_aware(now, "now") if now is not None else utc_now()
    store = EpisodeStore(layout)
    registry = ConsentRegistry(layout)

    # 1. Manifests, states and consent: who may be exported, and why the others are not.
    excluded, chosen = _choose_episodes(store, registry, episode_ids, scopes, moment)

    # 2. One robot per dataset.
    first = _require_one_robot(store, chosen)
    robot = _load_robot(store, first, command_joints, gripper_command)

    # 3. Every bag read completely before anything is written.
    recorded = _read_chosen(store, chosen, robot, excluded, progress)
    plan = _plan_features(robot, recorded)
    min_frames = max(1, math.ceil(min_segment_s * fps - 1e-9))
    resampled = _resample_recorded(recorded, plan, fps, min_frames, excluded)

    # 4. Write: each segment one dataset episode, staged completely by the LeRobot writer.
    report = ExportReport(
        dataset=target,
        data_root=layout.root,
        fps=fps,
        codec=codec,
        robot=first.robot.name,
        urdf_sha256=first.robot.urdf_sha256,
        features=list(plan.features),
        omitted_features=dict(plan.omitted),
        episodes=[],
        excluded=excluded,
        consent_checked_at=format_time(moment),
        required_scopes=scopes,
        leaves_data_root=leaves,
    )
    options = _export_options(fps, codec, command_joints, gripper_command, min_segment_s)
    writer = lerobot.create(target, fps, plan.features, robot_type=first.robot.name or None, codec=codec)
    try:
        for episode, result, seconds in resampled:
            _write_episode(writer, robot, plan, store, episode, result, seconds, report, progress)
        export_record = _export_record(layout, report, scopes, leaves, excluded, options, resampled, plan, min_frames)
        summary = writer.finalize(export=export_record, title=title)
    except UserError as error:
        raise ExportError(
            f"{error} (the unfinished export in {target} holds INCOMPLETE.json: finish it with "
            "robot_brain.datasets.lerobot.recover or delete it)"
        ) from None
    seal_dataset(layout, target)  # training refuses provenance this site did not seal, or that was edited
    report.dataset_episodes = summary.episodes
    report.content_hash = summary.content_hash
    report.size_bytes = summary.size_bytes
    report.seconds = time.perf_counter() - started
    if audit:
        try:
            _audit_export(layout, report)
        except UserError as error:
            raise ExportError(
                f"the dataset {target} was written (content hash {report.content_hash}) but its audit entry was not: "
                f"{error}"
            ) from None
    return report


def _write_episode(
    writer: lerobot.LeRobotWriter,
    robot: _Robot,
    plan: _Plan,
    store: EpisodeStore,
    episode: _Recorded,
    result: Any,
    seconds: Callable[[np.ndarray], np.ndarray],
    report: ExportReport,
    progress: Callable[[str], None] | None,
) -> None:
    manifest = episode.manifest
    task = manifest.task.strip() or "unspecified task"
    base_provenance = manifest.to_dict()
    base_provenance["consent_at_export"] = episode.consent
    base_provenance["resampling"] = result.report.to_json()
    base_provenance["command_source"] = episode.command_source
    origin_ns = int(episode.joints.times[0])
    indices: list[int] = []
    frames = from_state = stale_targets = 0
    target_times = seconds(episode.target.times) if plan.target and episode.target is not None else None
    with store.open_episode(manifest.episode_id) as reader:
        images = _ImageSource(reader, episode.camera.ordinals) if plan.camera is not None and episode.camera else None
        for position, segment in enumerate(result.segments):
            columns, gripper_from_state = _segment_columns(robot, plan, episode, segment, seconds, writer.fps)
            provenance = dict(base_provenance)
            provenance["segment"] = {
                "index": position,
                "of": len(result.segments),
                "start_s": round(segment.start_s, 9),
                "start_ns": origin_ns + round(segment.start_s * 1e9),
                "frames": len(segment),
            }
            frame_images: Mapping[str, Iterator[np.ndarray]] | None = None
            if images is not None:
                frame_images = {CAMERA_NAME: _frames(images, segment.indices["camera"])}
            try:
                summary = writer.add_episode(
                    task, columns, images=frame_images, timestamps=segment.timestamps, provenance=provenance
                )
            except DatasetFormatError as error:
                raise ExportError(f"episode {manifest.episode_id} segment {position}: {error}") from None
            indices.append(summary.episode_index)
            frames += summary.length
            from_state += gripper_from_state
            if target_times is not None:
                ages = segment.grid_indices / writer.fps - target_times[segment.indices["target_point"]]
                stale_targets += int(np.sum(ages > TARGET_FRESH_S))
    if progress is not None:
        progress(f"wrote {manifest.episode_id}: {result.report.summary()}")
    report.episodes.append(
        EpisodeExport(
            episode_id=manifest.episode_id,
            operator=manifest.operator,
            operator_kind=manifest.operator_kind,
            consent=episode.consent,
            command_source=episode.command_source,
            dataset_episodes=indices,
            frames=frames,
            grid_frames=result.report.grid_frames,
            dropped_by_reason=dict(result.report.dropped_by_reason),
            gripper_action_from_state=from_state,
            stale_target_frames=stale_targets,
            skipped_messages=dict(episode.skipped),
            source_bytes=episode.source_bytes,
        )
    )
    report.frames += frames
    report.grid_frames += result.report.grid_frames
    report.source_bytes += episode.source_bytes
    for reason, count in result.report.dropped_by_reason.items():
        report.dropped_by_reason[reason] = report.dropped_by_reason.get(reason, 0) + count


def _frames(source: _ImageSource, indices: np.ndarray) -> Iterator[np.ndarray]:
    """Frames at the chosen sample indices, each fetched once however often it repeats."""
    previous_index: int | None = None
    frame: np.ndarray | None = None
    for index in indices.tolist():
        if index != previous_index:
            frame = source(index)
            previous_index = index
        assert frame is not None
        yield frame


def _audit_export(layout: DataLayout, report: ExportReport) -> None:
    details: dict[str, Any] = {
        "dataset": str(report.dataset),
        "content_hash": report.content_hash,
        "episodes": [episode.episode_id for episode in report.episodes],
        "operators": sorted({episode.operator for episode in report.episodes}),
        "frames": report.frames,
        "robot": report.robot,
        "leaves_data_root": report.leaves_data_root,
        "consent_checked_at": report.consent_checked_at,
        "excluded": [{"episode_id": e.episode_id, "operator": e.operator, "reason": e.reason} for e in report.excluded],
    }
    try:
        append_audit(layout, "dataset.exported", details)
    except ValueError:
        # The output path contains text the audit log refuses (an enrolled person's name): log it without the path.
        details["dataset"] = "(path withheld: it contains an operator's name)"
        details["dataset_path_sha256"] = hashlib.sha256(str(report.dataset).encode("utf-8")).hexdigest()
        append_audit(layout, "dataset.exported", details)


def format_report(report: ExportReport) -> str:
    """The human-readable report ``robot-brain data export`` prints."""
    lines = [
        f"exported {len(report.episodes)} episodes ({report.dataset_episodes} dataset episodes, {report.frames} frames "
        f"at {report.fps} fps, {report.codec}) of robot {report.robot} to {report.dataset}",
        f"consent checked at {report.consent_checked_at} for {', '.join(report.required_scopes)}"
        + (" (the dataset leaves the data root)" if report.leaves_data_root else " (inside the data root)"),
    ]
    header = ("EPISODE", "OPERATOR", "KIND", "SEGMENTS", "FRAMES", "DROPPED")
    rows = [
        (
            e.episode_id,
            e.operator,
            e.operator_kind,
            str(len(e.dataset_episodes)),
            str(e.frames),
            str(e.grid_frames - e.frames),
        )
        for e in report.episodes
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    lines.append(
        f"resampling: kept {report.frames} of {report.grid_frames} frames, dropped {report.dropped_frames}"
        + (":" if report.dropped_by_reason else "")
    )
    for reason, count in sorted(report.dropped_by_reason.items(), key=lambda item: -item[1]):
        lines.append(f"  {count:6d}  {reason}")
    from_state = sum(e.gripper_action_from_state for e in report.episodes)
    if from_state:
        lines.append(f"gripper: {from_state} frames before the first gripper command take the measured gripper")
    stale = sum(e.stale_target_frames for e in report.episodes)
    if stale:
        lines.append(f"target: {stale} frames use a target older than {TARGET_FRESH_S} s (the last one perceived)")
    for feature, why in report.omitted_features.items():
        lines.append(f"feature {feature} omitted: {why}")
    if report.excluded:
        lines.append(f"excluded {len(report.excluded)} episodes:")
        for exclusion in report.excluded:
            lines.append(
                f"  {exclusion.episode_id}  {exclusion.operator or '-'}  {exclusion.reason}: {exclusion.detail}"
            )
    size_mb, source_mb = report.size_bytes / 1e6, report.source_bytes / 1e6
    ratio = (
        f" ({100 * report.size_bytes / report.source_bytes:.1f} % of the raw bags, {source_mb:.1f} MB)"
        if (report.source_bytes)
        else ""
    )
    lines.append(f"size: {size_mb:.1f} MB{ratio}; {report.seconds:.1f} s, {report.frames_per_second:.0f} frames/s")
    lines.append(f"content hash: {report.content_hash}")
    return "\n".join(lines)
