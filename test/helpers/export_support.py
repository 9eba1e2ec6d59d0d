"""Shared pieces of the export and purge tests (no tests here): episodes recorded as the recorder would.

Each episode is a kinematically real motion of a real arm (Panda or UR5 from pip packages):
minimum-jerk moves between joint waypoints with rests in between. The recording has what the
brain publishes: ``/joint_states`` at 500 Hz with receive-time jitter (arm and gripper
joints, the Panda's mimic finger too), ``/forward_position_controller/commands`` at 500 Hz
while moving and silent at rest (the command leads the measured motion by 20 ms), gripper
commands during the grasp, ``/perception/target_point`` at 12 Hz, ``/camera/image_raw``
(rgb8, 30 Hz, 3 ms transport latency, frames identifiable by index) with ``camera_info``, and
``/episode/events``. Messages are real CDR from rosbags' typestore, written through the
episode store's own writer in receive-time order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from robots import ARMS

from robot_brain.consent.legal import MAX_RETENTION_DAYS
from robot_brain.consent.registry import ConsentRegistry
from robot_brain.embodiment import load_arm
from robot_brain.episodes.message_types import episode_typestore
from robot_brain.episodes.store import EpisodeProvenance, EpisodeStore, TopicSpec, make_qos

TYPESTORE = episode_typestore()
START_NS = 1_780_000_000_000_000_000
JOINT_PERIOD_NS = 2_000_000  # 500 Hz
COMMAND_LEAD_S = 0.02
CAMERA_HZ = 30
CAMERA_LATENCY_S = 0.003
TARGET_HZ = 12
HEIGHT, WIDTH = 48, 64
ADA, BOB = "Ada Lovelace", "Bob Ångström"
GRANTED = datetime(2026, 1, 1, tzinfo=timezone.utc)

JOINT_STATES = TopicSpec("/joint_states", "sensor_msgs/msg/JointState", (make_qos(depth=100),))
COMMANDS = TopicSpec("/forward_position_controller/commands", "std_msgs/msg/Float64MultiArray", (make_qos(),))
TRAJECTORY = TopicSpec(
    "/joint_trajectory_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory", (make_qos(),)
)
GRIPPER_COMMANDS = TopicSpec("/gripper_controller/commands", "std_msgs/msg/Float64MultiArray", (make_qos(),))
TARGET = TopicSpec("/perception/target_point", "geometry_msgs/msg/PointStamped", (make_qos(),))
IMAGES = TopicSpec("/camera/image_raw", "sensor_msgs/msg/Image", (make_qos(reliable=False, depth=5),))
CAMERA_INFO = TopicSpec("/camera/camera_info", "sensor_msgs/msg/CameraInfo", (make_qos(reliable=False),))
EVENTS = TopicSpec("/episode/events", "robot_brain_msgs/msg/EpisodeEvent", (make_qos(transient_local=True),))


def _types(name: str) -> type:
    return TYPESTORE.types[name]


def _header(stamp_ns: int, frame_id: str) -> object:
    time_type, header_type = _types("builtin_interfaces/msg/Time"), _types("std_msgs/msg/Header")
    return header_type(stamp=time_type(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)


def _cdr(message: object, spec: TopicSpec) -> bytes:
    return bytes(TYPESTORE.serialize_cdr(message, spec.type))


def camera_frame(index: int) -> np.ndarray:
    """rgb8 frame ``index``: a smooth gradient, a brightness ramp and a square jumping 7 px per frame.

    Neighbouring frames differ by more than the codec's error, so a decoded frame names its source.
    """
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.stack([40 + 100 * rows / HEIGHT, 50 + 90 * cols / WIDTH, np.full((HEIGHT, WIDTH), 90.0)], axis=-1)
    frame = base + 14.0 * (index % 6)
    left, top = (7 * index) % (WIDTH - 16), (5 * index) % (HEIGHT - 16)
    frame[top : top + 16, left : left + 16] = [235, 200, 30]
    return np.clip(frame, 0, 255).astype(np.uint8)


def min_jerk(a: np.ndarray, b: np.ndarray, tau: float) -> np.ndarray:
    s = min(max(tau, 0.0), 1.0)
    return a + (b - a) * (10 * s**3 - 15 * s**4 + 6 * s**5)


@dataclass
class Motion:
    """Joint waypoints of one arm and the windows in which it moves between them (seconds from the start)."""

    arm: str
    waypoints: list[np.ndarray]
    windows: list[tuple[float, float]]
    duration: float
    grasp_window: tuple[float, float] | None  # the gripper closes during this window

    def q(self, t: float) -> np.ndarray:
        q = self.waypoints[0]
        for (start, end), target in zip(self.windows, self.waypoints[1:], strict=True):
            if t >= start:
                q = min_jerk(q, target, (t - start) / (end - start))
        return q

    def moving(self, t: float) -> bool:
        return any(start <= t < end for start, end in self.windows)

    def gripper(self, t: float, open_position: float, closed_position: float) -> float:
        if self.grasp_window is None:
            return open_position
        start, end = self.grasp_window
        return float(min_jerk(np.array(open_position), np.array(closed_position), (t - start) / (end - start)))


def standard_motion(arm_name: str, seed: int = 0, duration: float = 3.0) -> Motion:
    """Home → two waypoints inside the joint limits, moving 0.2–1.2 s and 1.6–2.6 s, resting otherwise."""
    spec = load_arm(ARMS[arm_name]).spec
    rng = np.random.default_rng(seed)
    lower = np.where(np.isfinite(spec.lower), spec.lower, -np.pi)
    upper = np.where(np.isfinite(spec.upper), spec.upper, np.pi)
    home = 0.5 * (lower + upper)
    span = 0.25 * (upper - lower)
    first = home + rng.uniform(-0.5, 0.5, spec.dof) * span
    second = home + rng.uniform(-0.5, 0.5, spec.dof) * span
    grasp = (1.6, 2.6) if spec.driven_gripper_joints else None
    return Motion(arm_name, [home, first, second], [(0.2, 1.2), (1.6, 2.6)], duration, grasp)


@dataclass
class Recorded:
    """What was written to one episode, for the tests' own expectations (receive times in ns)."""

    episode_id: str
    arm: str
    motion: Motion
    operator: str
    joint_times: list[int] = field(default_factory=list)
    command_times: list[int] = field(default_factory=list)
    command_values: list[np.ndarray] = field(default_factory=list)
    gripper_command_times: list[int] = field(default_factory=list)
    gripper_command_values: list[float] = field(default_factory=list)
    camera_times: list[int] = field(default_factory=list)
    camera_indices: list[int] = field(default_factory=list)
    target_times: list[int] = field(default_factory=list)
    target_values: list[np.ndarray] = field(default_factory=list)
    task: str = ""


def provenance_for(
    arm_name: str, operator: str, consent_id: str | None, scopes: tuple[str, ...], task: str
) -> EpisodeProvenance:
    path = ARMS[arm_name]
    spec = load_arm(path).spec
    return EpisodeProvenance(
        operator=operator,
        consent_id=consent_id,
        consent_scopes=scopes,
        cell_id="cell-test",
        robot_name=arm_name,
        robot_description=path.read_text(encoding="utf-8"),
        base_link=spec.base_link,
        tip_link=spec.tip_link,
        task=task,
    )


def record_episode(
    store: EpisodeStore,
    arm_name: str,
    operator: str,
    consent_id: str | None = None,
    scopes: tuple[str, ...] = ("record", "train"),
    *,
    seed: int = 0,
    offset_s: float = 0.0,
    camera: bool = True,
    target: bool = True,
    camera_gap: tuple[float, float] | None = None,
    camera_hz: float = CAMERA_HZ,
    camera_jitter_s: float = 0.0,
    target_gap: tuple[float, float] | None = None,
    joint_states: bool = True,
    commands: str = "forward",
    command_order: list[int] | None = None,
    task: str = "reach the red cube",
) -> Recorded:
    """Record one episode of ``standard_motion`` through the episode store's writer.

    ``commands``: ``forward`` (``Float64MultiArray`` in ``command_order``, default the arm's order)
    or ``trajectory`` (one-point ``JointTrajectory`` naming the joints in ``command_order``).
    ``camera_jitter_s``: each image arrives up to this much later than its nominal latency (uniform).
    """
    motion = standard_motion(arm_name, seed)
    spec = load_arm(ARMS[arm_name]).spec
    rng = np.random.default_rng(100 + seed)
    origin = START_NS + round(offset_s * 1e9)
    recorded = Recorded("", arm_name, motion, operator, task=task)
    events: list[tuple[int, int, TopicSpec, bytes]] = []  # (receive ns, order, topic, cdr)

    def add(stamp: int, spec_: TopicSpec, data: bytes) -> None:
        events.append((stamp, len(events), spec_, data))

    open_closed = spec.gripper_open_closed() if spec.driven_gripper_joints else None
    joint_names = list(spec.joint_names) + list(spec.gripper_joints)
    count = round(motion.duration * 1e9 / JOINT_PERIOD_NS) + 1
    if joint_states:
        for k in range(count):
            stamp = origin + k * JOINT_PERIOD_NS + (int(rng.integers(-300_000, 300_000)) if 0 < k < count - 1 else 0)
            t = (stamp - origin) / 1e9
            positions = list(motion.q(t))
            if open_closed is not None:
                finger = motion.gripper(t, float(open_closed[0][0]), float(open_closed[1][0]))
                positions += [finger] * len(spec.gripper_joints)
            message = _types("sensor_msgs/msg/JointState")(
                header=_header(stamp, ""),
                name=joint_names,
                position=np.asarray(positions, dtype=np.float64),
                velocity=np.zeros(0),
                effort=np.zeros(0),
            )
            add(stamp, JOINT_STATES, _cdr(message, JOINT_STATES))
            recorded.joint_times.append(stamp)
    # Commands: 500 Hz while moving (from 0.5 ms after a window opens), nothing at rest.
    for start, end in motion.windows:
        t = start + 0.0005
        while t < end:
            stamp = origin + round(t * 1e9)
            command = motion.q(t + COMMAND_LEAD_S)
            order = command_order if command_order is not None else list(range(spec.dof))
            if commands == "forward":
                message = _types("std_msgs/msg/Float64MultiArray")(
                    layout=_types("std_msgs/msg/MultiArrayLayout")(dim=[], data_offset=0), data=command[order].copy()
                )
                add(stamp, COMMANDS, _cdr(message, COMMANDS))
            else:
                point = _types("trajectory_msgs/msg/JointTrajectoryPoint")(
                    positions=command[order].copy(),
                    velocities=np.zeros(spec.dof),
                    accelerations=np.zeros(0),
                    effort=np.zeros(0),
                    time_from_start=_types("builtin_interfaces/msg/Duration")(sec=0, nanosec=2_000_000),
                )
                message = _types("trajectory_msgs/msg/JointTrajectory")(
                    header=_header(0, ""), joint_names=[spec.joint_names[i] for i in order], points=[point]
                )
                add(stamp, TRAJECTORY, _cdr(message, TRAJECTORY))
            recorded.command_times.append(stamp)
            recorded.command_values.append(command)
            t += 0.002
    if open_closed is not None and motion.grasp_window is not None:
        start, end = motion.grasp_window
        for k in range(int((end - start) * 50) + 1):  # the gripper command at 50 Hz during the grasp
            t = start + 0.0007 + k * 0.02
            stamp = origin + round(t * 1e9)
            position = motion.gripper(t + COMMAND_LEAD_S, float(open_closed[0][0]), float(open_closed[1][0]))
            message = _types("std_msgs/msg/Float64MultiArray")(
                layout=_types("std_msgs/msg/MultiArrayLayout")(dim=[], data_offset=0),
                data=np.array([position], dtype=np.float64),
            )
            add(stamp, GRIPPER_COMMANDS, _cdr(message, GRIPPER_COMMANDS))
            recorded.gripper_command_times.append(stamp)
            closed_fraction = (position - float(open_closed[0][0])) / float(open_closed[1][0] - open_closed[0][0])
            recorded.gripper_command_values.append(closed_fraction)
    if camera:
        index = 0
        while index / camera_hz + CAMERA_LATENCY_S <= motion.duration:
            t = index / camera_hz
            if camera_gap is None or not camera_gap[0] <= t < camera_gap[1]:
                jitter = float(rng.uniform(0.0, camera_jitter_s)) if camera_jitter_s > 0.0 else 0.0
                stamp = origin + round((t + CAMERA_LATENCY_S + jitter) * 1e9)
                capture = origin + round(t * 1e9)
                pixels = camera_frame(index)
                image = _types("sensor_msgs/msg/Image")(
                    header=_header(capture, "camera_optical"),
                    height=HEIGHT,
                    width=WIDTH,
                    encoding="rgb8",
                    is_bigendian=0,
                    step=WIDTH * 3,
                    data=pixels.reshape(-1),
                )
                add(stamp, IMAGES, _cdr(image, IMAGES))
                recorded.camera_times.append(stamp)
                recorded.camera_indices.append(index)
                info = _camera_info(capture)
                add(stamp + 1000, CAMERA_INFO, _cdr(info, CAMERA_INFO))
            index += 1
    if target:
        index = 0
        while index / TARGET_HZ <= motion.duration:
            if target_gap is not None and target_gap[0] <= index / TARGET_HZ < target_gap[1]:
                index += 1  # occluded: perception publishes nothing
                continue
            stamp = origin + round((index / TARGET_HZ + 0.011) * 1e9)
            point = np.array([0.45, -0.1, 0.12]) + 0.001 * index
            message = _types("geometry_msgs/msg/PointStamped")(
                header=_header(stamp, spec.base_link),
                point=_types("geometry_msgs/msg/Point")(x=point[0], y=point[1], z=point[2]),
            )
            add(stamp, TARGET, _cdr(message, TARGET))
            recorded.target_times.append(stamp)
            recorded.target_values.append(point)
            index += 1
    topics = [JOINT_STATES, COMMANDS, TRAJECTORY, GRIPPER_COMMANDS, TARGET, IMAGES, CAMERA_INFO, EVENTS]
    provenance = provenance_for(arm_name, operator, consent_id, scopes, task)
    writer = store.start_episode(provenance, topics, time_ns=origin)
    with writer:
        writer.write(EVENTS.name, origin, _event("recording", origin, writer.episode_id))
        for stamp, _order, spec_, data in sorted(events, key=lambda item: (item[0], item[1])):
            writer.write(spec_.name, stamp, data)
        end = origin + round(motion.duration * 1e9) + 1_000_000
        writer.write(EVENTS.name, end, _event("saved", end, writer.episode_id))
        writer.set_label("success")
    recorded.episode_id = writer.episode_id
    return recorded


def _camera_info(stamp: int) -> object:
    return _types("sensor_msgs/msg/CameraInfo")(
        header=_header(stamp, "camera_optical"),
        height=HEIGHT,
        width=WIDTH,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=np.array([50.0, 0, WIDTH / 2, 0, 50.0, HEIGHT / 2, 0, 0, 1]),
        r=np.eye(3).reshape(-1),
        p=np.array([50.0, 0, WIDTH / 2, 0, 0, 50.0, HEIGHT / 2, 0, 0, 0, 1, 0]),
        binning_x=0,
        binning_y=0,
        roi=_types("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def _event(event: str, stamp: int, episode_id: str) -> bytes:
    message = _types("robot_brain_msgs/msg/EpisodeEvent")(
        header=_header(stamp, ""), event=event, episode_id=episode_id, task="", label="", message=""
    )
    return _cdr(message, EVENTS)


@dataclass
class Site:
    """A data root with two enrolled people and their pseudonyms and consent ids."""

    root: Path
    registry: ConsentRegistry
    ada: str
    ada_consent: str
    bob: str
    bob_consent: str


def make_site(root: Path) -> Site:
    """Ada consents to record, train and export; Bob to record and train only."""
    root.mkdir(parents=True, exist_ok=True)
    registry = ConsentRegistry(root)
    # The longest retention: the episodes are dated (START_NS, 2026-05-28), exports are checked at the present.
    ada = registry.enroll(ADA, "record,train,export", now=GRANTED, retention_days=MAX_RETENTION_DAYS)
    bob = registry.enroll(BOB, "record,train", now=GRANTED, retention_days=MAX_RETENTION_DAYS)
    return Site(
        root, registry, ada.operator.pseudonym, ada.consent.consent_id, bob.operator.pseudonym, bob.consent.consent_id
    )


def tree_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path (to prove nothing else changed)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def latest_at_or_before(times_s: list[float], t: float) -> int | None:
    """Index of the last time <= t (plain loop: the tests' own rule, not resample's code)."""
    found = None
    for index, value in enumerate(times_s):
        if value <= t:
            found = index
        else:
            break
    return found
