"""Recording one episode: an ``EpisodeWriter`` appends serialized messages to a rosbag2/MCAP folder.

The recorder node subscribes with ``raw=True`` and hands CDR bytes to the writer from one
worker thread (``write``), reports what it had to drop or received late from any thread
(``report_dropped``, ``report_late``), and ends the episode with ``finish`` or ``discard``.
Nothing is deserialized while recording. Writers are made by ``EpisodeStore.start_episode``.

What a crash can lose, and why so little:

- rosbags keeps the current MCAP chunk in memory until it holds 1 MiB, which at 500 Hz of
  ``JointState`` alone is about 8 s of data (with a 640x480 camera, about one frame). The
  writer closes the chunk and hands it to the operating system every ``flush_interval_s``
  (0.5 s by default), so a ``kill -9`` loses at most that long a tail of the episode. A
  power cut can lose what the OS had not yet written back; the bag is fsynced at the end.
- The writing process holds an ``flock`` on the episode's lock file. The kernel drops it when
  the process dies, however it dies, so a recovery scan tells a live recording from a dead
  one without guessing from timestamps.
- A full disk (ENOSPC, EDQUOT, or EFBIG from a file-size limit) raises ``DiskFullError``
  naming the file: the episode ends, what reached the disk stays recoverable, and no other
  episode is open for writing, so none can be harmed.
"""

from __future__ import annotations

import copy
import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.typesys.store import Typestore

from robot_brain.consent.operators import ConsentError, is_pseudonym, non_human_kind
from robot_brain.episodes.errors import (
    DiskFullError,
    EpisodeError,
    EpisodeStateError,
    EpisodeStorageError,
)
from robot_brain.episodes.manifest import (
    CUSTOM_DATA_KEY,
    LABEL_NONE,
    LABELS,
    MANIFEST_NAME,
    METADATA_NAME,
    ROBOT_DESCRIPTION_NAME,
    STATE_COMPLETE,
    STATE_DISCARDED,
    STATE_RECORDING,
    ConsentRecord,
    EpisodeManifest,
    RobotRecord,
    TopicRecord,
    sealed_document,
    software_version,
    write_manifest,
)
from robot_brain.errors import ConfigurationError
from robot_brain.storage.files import DataFileError, atomic_write_bytes, fsync_directory, fsync_file
from robot_brain.storage.times import format_time_ns

DEFAULT_FLUSH_INTERVAL_S = 0.5
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@dataclass(frozen=True)
class TopicSpec:
    """A topic to record: its name, its full type name (``sensor_msgs/msg/JointState``) and offered QoS profiles.

    The QoS profiles are kept in the bag (``offered_qos_profiles``, rosbag2's format), so a
    replay offers what the publishers offered (e.g. transient-local ``/robot_description``).
    """

    name: str
    type: str
    qos: tuple[Qos, ...] = ()


def make_qos(*, reliable: bool = True, transient_local: bool = False, depth: int = 10, keep_all: bool = False) -> Qos:
    """A rosbags ``Qos`` from the four settings that matter for replay (others left at the system default)."""
    unset = QosTime(0, 0)
    return Qos(
        history=QosHistory.KEEP_ALL if keep_all else QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=unset,
        lifespan=unset,
        liveliness=QosLiveliness.SYSTEM_DEFAULT,
        liveliness_lease_duration=unset,
        avoid_ros_namespace_conventions=False,
    )


@dataclass(frozen=True)
class EpisodeProvenance:
    """Who, where and what an episode records, as known when it starts (checked before anything is written).

    ``operator`` is the consent registry's pseudonym (``op-<16 hex>``; ``policy:<sha prefix>``
    or ``scripted`` for machine-driven episodes), never a name: anything else is refused
    without being echoed, and a human operator needs a consent id with the ``record`` scope.
    ``consent_id``/``consent_scopes`` are the consent as it stood at the start (``None`` and
    ``()`` where none is needed). ``robot_description`` is the URDF text: its SHA-256 goes into
    the manifest and a copy into the episode folder. ``policy_model_sha256`` is set when a
    policy drove the arm. ``faces_blurred``: the recorder blurs faces in its camera frames
    before they are written (the manifest says so).
    """

    operator: str
    consent_id: str | None
    consent_scopes: tuple[str, ...]
    cell_id: str
    robot_name: str
    robot_description: str
    base_link: str
    tip_link: str
    task: str = ""
    policy_model_sha256: str | None = None
    faces_blurred: bool = False

    def operator_kind(self) -> str:
        """``human`` (an ``op-`` pseudonym), ``policy`` or ``scripted``; ``ConfigurationError`` for anything else."""
        try:
            kind = non_human_kind(self.operator)
        except ConsentError as error:
            raise ConfigurationError(str(error)) from None
        if kind is not None:
            return kind
        if not is_pseudonym(self.operator):
            raise ConfigurationError(
                "operator must be a pseudonym from the consent registry (op-<16 hex>), policy:<hex> or scripted; "
                "found something else (a name is never recorded)"
            )
        return "human"

    def check(self) -> None:
        """Raise ``ConfigurationError`` (one line) on a field that cannot be recorded."""
        kind = self.operator_kind()
        if kind == "human" and (self.consent_id is None or "record" not in self.consent_scopes):
            raise ConfigurationError(
                f"operator {self.operator} has no 'record' consent (consent id {self.consent_id}, scopes "
                f"{', '.join(self.consent_scopes) or 'none'}): nothing is recorded without it"
            )
        if not self.robot_description.strip():
            raise ConfigurationError("the robot description (URDF text) to record with the episode is empty")
        if self.policy_model_sha256 is not None and not SHA256_PATTERN.match(self.policy_model_sha256):
            raise ConfigurationError(
                f"policy_model_sha256 must be 64 lowercase hex digits, found {self.policy_model_sha256!r}"
            )
        if isinstance(self.consent_scopes, str) or not all(isinstance(s, str) for s in self.consent_scopes):
            raise ConfigurationError(f"consent_scopes must be a sequence of scope names, found {self.consent_scopes!r}")


def new_episode_id(time_ns: int | None = None) -> str:
    """``20261201-073015-3fa9c2``: UTC date and time (so ids sort by start), then 24 random bits."""
    seconds = (time.time_ns() if time_ns is None else time_ns) // 10**9
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return f"{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class EpisodeLock:
    """An ``flock`` on ``episodes/.locks/<id>.lock``, held by whoever writes the episode (recorder or recovery).

    The kernel releases it when the holder dies, ``kill -9`` included: a free lock on an
    episode in state ``recording`` means its recorder is gone.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Unlink the lock file (while still holding it) and let go; idempotent."""
        if self._fd is None:
            return
        with suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    @staticmethod
    def is_held(path: Path) -> bool:
        """Whether some process holds the lock (without creating the file)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


class _TopicSlot:
    __slots__ = ("connection", "record")

    def __init__(self, connection: Connection, record: TopicRecord) -> None:
        self.connection = connection
        self.record = record


class EpisodeWriter:
    """Writes one episode; made by ``EpisodeStore.start_episode``. Usable as a context manager.

    Threading: ``write``, ``flush``, ``flush_if_due``, ``finish`` and ``discard`` belong to
    one thread (the recorder's worker); ``report_dropped``, ``report_late``, ``set_label``,
    ``set_task`` and ``manifest`` may be called from any thread.

    Leaving the ``with`` block normally finishes the episode; leaving it by an exception
    flushes what it can and leaves the episode to the recovery scan (state ``recovered``),
    so an episode cut short is never marked complete.
    """

    def __init__(
        self,
        path: Path,
        lock: EpisodeLock,
        bag: Writer,
        slots: dict[str, _TopicSlot],
        manifest: EpisodeManifest,
        flush_interval_s: float,
    ) -> None:
        self.path = path
        self.episode_id = manifest.episode_id
        self.bag_path = path / manifest.bag_file
        self.flush_interval_s = flush_interval_s
        self._lock = lock
        self._bag = bag
        storage = bag.storage
        assert isinstance(storage, McapWriter)
        self._storage = storage
        self._slots = slots
        self._manifest = manifest
        self._report_lock = threading.Lock()
        self._reports_changed = False
        self._failure: EpisodeStorageError | None = None
        self._closed = False
        self._next_flush = time.monotonic() + flush_interval_s

    # -- the recording hot path (one worker thread) -------------------------------------------

    def write(self, topic: str, timestamp_ns: int, data: bytes | bytearray | memoryview) -> None:
        """Append one serialized (CDR) message received at ``timestamp_ns`` (UNIX ns) on a declared topic.

        Raises ``DiskFullError``/``EpisodeStorageError`` when the disk refuses (the episode is
        then over), ``EpisodeStateError`` after the episode ended, ``KeyError`` for a topic
        that was not declared at the start.
        """
        if self._closed:
            self._raise_closed()
        slot = self._slots.get(topic)
        if slot is None:
            raise KeyError(f"topic {topic!r} was not declared for episode {self.episode_id}")
        if not 0 <= timestamp_ns < 2**63:  # checked here: rosbags would index the message before failing on it
            raise ValueError(f"timestamp_ns must be UNIX nanoseconds in [0, 2**63), got {timestamp_ns}")
        try:
            self._bag.write(slot.connection, timestamp_ns, data)
        except OSError as error:
            self._fail(error, "writing")
        record = slot.record
        record.count += 1
        if record.first_ns is None or timestamp_ns < record.first_ns:
            record.first_ns = timestamp_ns
        if record.last_ns is None or timestamp_ns > record.last_ns:
            record.last_ns = timestamp_ns
        if time.monotonic() >= self._next_flush:
            self.flush()

    def flush_if_due(self) -> None:
        """Flush when ``flush_interval_s`` has passed; call it when the worker's queue is idle."""
        if not self._closed and time.monotonic() >= self._next_flush:
            self.flush()

    def flush(self) -> None:
        """Close the pending MCAP chunk and hand it to the OS: a ``kill -9`` after this loses nothing before it.

        rosbags' ``McapWriter`` only writes a chunk once it holds 1 MiB; ``close_chunk`` is its
        own method for that (checked to exist when the episode starts). When the recorder
        reported drops or late messages since the last flush, the manifest is rewritten too,
        so those counts survive a crash.
        """
        if self._closed:
            self._raise_closed()
        try:
            if self._storage.chunk.msgs:
                self._storage.close_chunk()
            self._storage.bio.flush()
            if self._reports_changed:
                self._reports_changed = False
                write_manifest(self.path, self.manifest)
        except (OSError, DataFileError) as error:
            self._fail(error, "flushing")
        self._next_flush = time.monotonic() + self.flush_interval_s

    # -- reports and labels (any thread) --------------------------------------------------------

    def report_dropped(self, topic: str, count: int = 1) -> None:
        """Count messages of ``topic`` the recorder received but could not write (e.g. its queue was full)."""
        self._report(topic, "dropped", count)

    def report_late(self, topic: str, count: int = 1) -> None:
        """Count messages of ``topic`` that arrived late (after the episode ended, or older than the recorder accepts).

        Whether a late message is still written is the recorder's choice; ``count`` counts
        what the bag holds, ``late`` what arrived late.
        """
        self._report(topic, "late", count)

    def _report(self, topic: str, kind: str, count: int) -> None:
        if count < 0:
            raise ValueError(f"a {kind} count cannot be negative, got {count}")
        slot = self._slots.get(topic)
        if slot is None:
            raise KeyError(f"topic {topic!r} was not declared for episode {self.episode_id}")
        with self._report_lock:
            setattr(slot.record, kind, getattr(slot.record, kind) + count)
            self._reports_changed = True

    def set_label(self, label: str) -> None:
        """``success``, ``failure`` or ``none``."""
        if label not in LABELS:
            raise ConfigurationError(f"episode label must be one of {', '.join(LABELS)}, found {label!r}")
        with self._report_lock:
            self._manifest.label = label

    def set_task(self, task: str) -> None:
        """Replace the task text (the last one given wins, as on ``/episode/events``)."""
        with self._report_lock:
            self._manifest.task = task

    @property
    def manifest(self) -> EpisodeManifest:
        """A copy of the manifest as it stands (counts so far)."""
        with self._report_lock:
            return copy.deepcopy(self._manifest)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- ending -----------------------------------------------------------------------------------

    def finish(self, label: str | None = None) -> EpisodeManifest:
        """End the episode: close the bag (index, metadata.yaml), fsync, manifest in state ``complete``.

        Returns the final manifest. On a disk error the episode is left for the recovery scan
        and ``DiskFullError``/``EpisodeStorageError`` is raised.
        """
        if self._closed:
            self._raise_closed()
        if label is not None:
            self.set_label(label)
        end_ns = time.time_ns()
        with self._report_lock:
            self._manifest.state = STATE_COMPLETE
            self._manifest.end_time_ns = end_ns
            self._manifest.end_time = format_time_ns(end_ns)
            final = copy.deepcopy(self._manifest)
        try:
            # Sealed like manifest.json: recovery promotes this copy only when its seal checks.
            sealed = json.dumps(sealed_document(self.path, final), separators=(",", ":"))
            self._bag.set_custom_data(CUSTOM_DATA_KEY, sealed)
            self._bag.close()
            fsync_file(self.bag_path)
            fsync_file(self.path / METADATA_NAME)
            fsync_directory(self.path)
            write_manifest(self.path, final)
        except (OSError, DataFileError) as error:
            with self._report_lock:
                self._manifest.state = STATE_RECORDING
                self._manifest.end_time_ns = self._manifest.end_time = None
            self._fail(error, "closing")
        self._closed = True
        self._lock.release()
        return final

    def discard(self) -> EpisodeManifest:
        """Throw the episode away: bag and URDF copy are deleted; the manifest stays as a ``discarded`` tombstone."""
        if self._closed:
            self._raise_closed()
        self._closed = True
        with suppress(Exception):
            self._bag.abort()
        end_ns = time.time_ns()
        with self._report_lock:
            self._manifest.state = STATE_DISCARDED
            self._manifest.end_time_ns = end_ns
            self._manifest.end_time = format_time_ns(end_ns)
            final = copy.deepcopy(self._manifest)
        try:
            for entry in self.path.iterdir():
                if entry.name != MANIFEST_NAME:
                    entry.unlink()
            write_manifest(self.path, final)
        except (OSError, DataFileError) as error:
            raise EpisodeStorageError(
                f"episode {self.episode_id}: discarding {self.path} failed ({error.strerror}); delete it by hand"
            ) from None
        finally:
            self._lock.release()
        return final

    def abandon(self) -> None:
        """Stop without finishing: flush what can be flushed and leave the episode to the recovery scan."""
        if self._closed:
            return
        with suppress(EpisodeError):
            self.flush()
        self._closed = True
        with suppress(Exception):
            self._bag.abort()
        self._lock.release()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.finish()
        else:
            self.abandon()

    def _raise_closed(self) -> NoReturn:
        if self._failure is not None:
            raise type(self._failure)(str(self._failure))
        raise EpisodeStateError(f"episode {self.episode_id} has ended; start a new one to record more")

    def _fail(self, error: OSError | DataFileError, action: str) -> NoReturn:
        """Turn an OS error into the episode's end: close the file as it is, note why, let go of the lock."""
        written = sum(slot.record.count for slot in self._slots.values())
        failure = storage_error(
            error,
            f"episode {self.episode_id}: {action}",
            self.bag_path,
            f"; recording stopped after {written} messages, and what reached the disk is recovered by the next "
            f"scan (robot-brain data ls)",
        )
        self._failure = failure
        self._closed = True
        with suppress(Exception):
            self._bag.abort()
        with self._report_lock:
            self._manifest.error = str(failure)
            snapshot = copy.deepcopy(self._manifest)
        with suppress(OSError, DataFileError):
            write_manifest(self.path, snapshot)
        self._lock.release()
        raise failure from None


def check_topics(topics: Sequence[TopicSpec], typestore: Typestore) -> None:
    """``ConfigurationError`` for an empty list, a relative or repeated name, or a type the typestore lacks."""
    if not topics:
        raise ConfigurationError("an episode needs at least one topic to record")
    seen: set[str] = set()
    for topic in topics:
        if not topic.name.startswith("/"):
            raise ConfigurationError(f"topic names must be absolute (start with '/'), found {topic.name!r}")
        if topic.name in seen:
            raise ConfigurationError(f"topic {topic.name} is declared twice")
        seen.add(topic.name)
        if topic.type not in typestore.fielddefs:
            raise ConfigurationError(
                f"topic {topic.name} has type {topic.type!r}, which is neither a ROS 2 Kilted type nor one of "
                f"robot_brain_msgs (expected e.g. sensor_msgs/msg/JointState)"
            )


def begin_episode(
    path: Path,
    lock: EpisodeLock,
    bag: Writer,
    episode_id: str,
    provenance: EpisodeProvenance,
    topics: Sequence[TopicSpec],
    flush_interval_s: float,
    start_ns: int,
    typestore: Typestore,
) -> EpisodeWriter:
    """Declare the topics in the freshly opened ``bag``, write the URDF copy and the first manifest."""
    storage = bag.storage
    if not (
        isinstance(storage, McapWriter)
        and callable(getattr(storage, "close_chunk", None))
        and hasattr(getattr(storage, "chunk", None), "msgs")
        and hasattr(storage, "bio")
    ):
        raise RuntimeError(
            "rosbags' McapWriter no longer has close_chunk/chunk.msgs/bio, which EpisodeWriter.flush relies on "
            "to bound what a crash loses; check robot_brain/episodes/store.py against the installed rosbags"
        )
    slots: dict[str, _TopicSlot] = {}
    for topic in topics:
        record = TopicRecord(type=topic.type, type_hash=typestore.hash_rihs01(topic.type))
        connection = bag.add_connection(
            topic.name, topic.type, typestore=typestore, offered_qos_profiles=list(topic.qos)
        )
        slots[topic.name] = _TopicSlot(connection, record)
    storage.bio.flush()  # the file header is on disk from the first moment
    description = provenance.robot_description.encode("utf-8")
    atomic_write_bytes(path / ROBOT_DESCRIPTION_NAME, description)
    manifest = EpisodeManifest(
        episode_id=episode_id,
        state=STATE_RECORDING,
        label=LABEL_NONE,
        operator=provenance.operator,
        operator_kind=provenance.operator_kind(),
        consent=ConsentRecord(id=provenance.consent_id, scopes=list(provenance.consent_scopes)),
        cell_id=provenance.cell_id,
        robot=RobotRecord(
            name=provenance.robot_name,
            urdf_sha256=hashlib.sha256(description).hexdigest(),
            base_link=provenance.base_link,
            tip_link=provenance.tip_link,
        ),
        software=software_version(),
        policy_model_sha256=provenance.policy_model_sha256,
        task=provenance.task,
        start_time=format_time_ns(start_ns),
        start_time_ns=start_ns,
        bag_file=Path(storage.path).name,
        topics={name: slot.record for name, slot in slots.items()},
        faces_blurred=provenance.faces_blurred,
    )
    write_manifest(path, manifest)
    return EpisodeWriter(path, lock, bag, slots, manifest, flush_interval_s)


def storage_error(
    error: OSError | DataFileError, action: str, default_path: Path | None = None, consequence: str = ""
) -> EpisodeStorageError:
    """``DiskFullError`` for ENOSPC/EDQUOT/EFBIG, else ``EpisodeStorageError``: one line, naming the file and why."""
    os_error = error if isinstance(error, OSError) else error.__cause__
    if not isinstance(os_error, OSError):
        return EpisodeStorageError(f"{action} failed: {error}{consequence}")
    path = os_error.filename or default_path or ""
    code = errno.errorcode.get(os_error.errno or 0, str(os_error.errno))
    kind = DiskFullError if os_error.errno in _DISK_FULL_ERRNOS else EpisodeStorageError
    return kind(f"{action} {path} failed ({code}: {os_error.strerror}){consequence}")
