"""The episode store: one rosbag2 folder (MCAP storage) per recorded episode, written and read without ROS.

Layout under a data root::

    <data_root>/episodes/<episode_id>/        a rosbag2 folder (``ros2 bag play`` takes it as is)
        <episode_id>.mcap                     the messages, as CDR, with their definitions and QoS
        metadata.yaml                         written when the episode ends (or rebuilt by recovery)
        manifest.json                         provenance and per-topic counts (``manifest.py``)
        robot_description.urdf                the URDF the episode was recorded with (for FK at export)
        <episode_id>.mcap.damaged             after a recovery: the original file, kept as it was
    <data_root>/episodes/.locks/<id>.lock     held (flock) by the process writing the episode
    <data_root>/episodes/.recovering/<id>/    scratch space of a recovery in progress

This module is the entry point: ``EpisodeStore`` starts episodes (``EpisodeWriter``, in
``episode_writer.py``), lists them, recovers dead recordings and opens episodes for reading
(``EpisodeReader``, in ``episode_reader.py``); the public names of those modules are
re-exported here.

``EpisodeStore.recover`` (run by the recorder at start-up and by ``robot-brain data ls``)
salvages every recording whose recorder died (``mcap_recovery.py``): state ``recovered``
with the counts really read back, or ``incomplete`` when nothing was readable. A damaged
episode is never listed as complete.

Every manifest is sealed (``manifest.py``). ``load_manifest`` and ``open_episode`` refuse an
unsealed or edited one; ``list_episodes`` still lists it, as ``unverified`` with the reason,
because erasure must find it; recovery never rewrites (and so never reseals) a manifest whose
seal does not check, and promotes the bag's copy of the final manifest only when its own seal
checks.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import re
import shutil
import struct
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.errors import ReaderError, WriterError
from rosbags.typesys.store import Typestore

from robot_brain.episodes.errors import (
    DiskFullError,
    EpisodeError,
    EpisodeReadError,
    EpisodeStateError,
    EpisodeStorageError,
    ManifestError,
    ManifestSealError,
    MissingTopicError,
    UnknownEpisodeError,
)
from robot_brain.episodes.manifest import (
    CUSTOM_DATA_KEY,
    DAMAGED_SUFFIX,
    LABEL_NONE,
    MANIFEST_NAME,
    METADATA_NAME,
    READABLE_STATES,
    STATE_COMPLETE,
    STATE_DISCARDED,
    STATE_INCOMPLETE,
    STATE_RECORDING,
    STATE_RECOVERED,
    ConsentRecord,
    EpisodeManifest,
    RecoveryRecord,
    RobotRecord,
    load_manifest,
    manifest_from_document,
    read_manifest,
    sealed_document,
    software_version,
    write_manifest,
)
from robot_brain.episodes.mcap_recovery import RebuildReport, rebuild_bag
from robot_brain.episodes.message_types import episode_typestore
from robot_brain.episodes.reader import EpisodeMessage, EpisodeReader, read_bag_custom_data
from robot_brain.episodes.writer import (
    DEFAULT_FLUSH_INTERVAL_S,
    EpisodeLock,
    EpisodeProvenance,
    EpisodeWriter,
    TopicSpec,
    begin_episode,
    check_topics,
    make_qos,
    new_episode_id,
    storage_error,
)
from robot_brain.errors import ConfigurationError
from robot_brain.storage.files import DataFileError, fsync_directory, fsync_file
from robot_brain.storage.paths import DataLayout
from robot_brain.storage.times import format_time_ns

__all__ = [
    "CUSTOM_DATA_KEY",
    "DAMAGED_SUFFIX",
    "DEFAULT_FLUSH_INTERVAL_S",
    "DiskFullError",
    "EpisodeEntry",
    "EpisodeError",
    "EpisodeManifest",
    "EpisodeMessage",
    "EpisodeProvenance",
    "EpisodeReadError",
    "EpisodeReader",
    "EpisodeStateError",
    "EpisodeStorageError",
    "EpisodeStore",
    "EpisodeWriter",
    "ManifestError",
    "ManifestSealError",
    "MissingTopicError",
    "RecoveryResult",
    "TopicSpec",
    "UnknownEpisodeError",
    "make_qos",
    "new_episode_id",
    "read_bag_custom_data",
]

LOCKS_DIR = ".locks"
RECOVERY_DIR = ".recovering"
EPISODE_ID_PATTERN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$")
_NEW_ID_ATTEMPTS = 5


class EpisodeEntry(NamedTuple):
    """One episode folder as listed: its manifest (None with ``error`` when unreadable) and whether it is live.

    ``seal_error`` says why the manifest cannot be believed (unsealed, edited, another site's
    seal): it is listed so that a purge finds it, never exported. ``sealed_copy`` is then the
    copy of the final manifest in the bag's ``metadata.yaml`` when that copy's seal checks
    (an edit of ``manifest.json`` alone does not hide whose episode it is).
    """

    episode_id: str
    path: Path
    manifest: EpisodeManifest | None
    live: bool
    error: str | None
    seal_error: str | None = None
    sealed_copy: EpisodeManifest | None = None

    @property
    def state(self) -> str:
        """The manifest's state, except ``unrecovered`` for a dead recording, ``unreadable`` for a bad manifest
        and ``unverified`` for one whose seal does not check."""
        if self.manifest is None:
            return "unreadable"
        if self.seal_error is not None:
            return "unverified"
        if self.manifest.state == STATE_RECORDING and not self.live:
            return "unrecovered"
        return self.manifest.state


@dataclass(frozen=True)
class RecoveryResult:
    """What a recovery scan did to one dead recording.

    ``outcome``: ``recovered`` (salvaged, ``messages`` read back), ``incomplete`` (nothing
    readable), ``complete`` (the recorder had closed the bag, only the manifest was behind),
    or ``failed`` (the recovery itself could not be written, e.g. no disk space; retried at
    the next scan, the episode untouched).
    """

    episode_id: str
    outcome: str
    messages: int
    detail: str

    def __str__(self) -> str:
        return f"{self.episode_id}: {self.outcome}, {self.messages} messages ({self.detail})"


class EpisodeStore:
    """The episodes under one data root: start, list, recover, read.

    ``data_root`` is the data factory's root (a path, or a ``DataLayout`` from
    ``robot_brain.storage.paths``); episodes live in its ``episodes/`` folder. Nothing is
    created until an episode starts or a recovery has something to write.
    """

    def __init__(self, data_root: Path | str | DataLayout, typestore: Typestore | None = None) -> None:
        layout = data_root if isinstance(data_root, DataLayout) else DataLayout(Path(data_root))
        self.data_root = layout.root
        self.episodes_dir = layout.episodes_dir
        self._typestore = typestore

    @property
    def typestore(self) -> Typestore:
        if self._typestore is None:
            self._typestore = episode_typestore()
        return self._typestore

    def episode_dir(self, episode_id: str) -> Path:
        """The folder of ``episode_id`` (the id is checked: no path tricks)."""
        if not EPISODE_ID_PATTERN.match(episode_id):
            raise UnknownEpisodeError(f"{episode_id!r} is not an episode id (like 20261201-073015-3fa9c2)")
        return self.episodes_dir / episode_id

    def episode_ids(self) -> list[str]:
        """Ids of every episode folder, oldest first (ids sort by start time)."""
        if not self.episodes_dir.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.episodes_dir.iterdir()
            if entry.is_dir() and not entry.name.startswith(".") and EPISODE_ID_PATTERN.match(entry.name)
        )

    def _lock_path(self, episode_id: str) -> Path:
        return self.episodes_dir / LOCKS_DIR / f"{episode_id}.lock"

    def is_live(self, episode_id: str) -> bool:
        """Whether a process is writing (recording or recovering) that episode right now."""
        return EpisodeLock.is_held(self._lock_path(episode_id))

    # -- recording --------------------------------------------------------------------------------

    def start_episode(
        self,
        provenance: EpisodeProvenance,
        topics: Sequence[TopicSpec],
        *,
        episode_id: str | None = None,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        time_ns: int | None = None,
    ) -> EpisodeWriter:
        """Create the episode folder, declare ``topics``, write the URDF copy and the manifest (state ``recording``).

        Everything is checked before anything is written: a bad pseudonym, an unknown type, a
        repeated topic raise ``ConfigurationError`` with nothing on disk. ``time_ns`` (UNIX
        ns) is the start time (default: now).
        """
        provenance.check()
        check_topics(topics, self.typestore)
        if flush_interval_s <= 0:
            raise ConfigurationError(f"flush_interval_s must be > 0, found {flush_interval_s}")
        start_ns = time.time_ns() if time_ns is None else time_ns
        try:
            self.episodes_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as error:
            raise storage_error(error, "creating", self.episodes_dir) from None
        for _ in range(1 if episode_id is not None else _NEW_ID_ATTEMPTS):
            candidate = episode_id if episode_id is not None else new_episode_id(start_ns)
            path = self.episode_dir(candidate)
            lock = EpisodeLock(self._lock_path(candidate))
            try:
                if path.exists() or not lock.try_acquire():
                    continue
            except OSError as error:
                raise storage_error(error, "creating the lock file", lock.path) from None
            try:
                bag = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
                bag.open()
            except WriterError:  # another process took the id between our check and the mkdir
                lock.release()
                continue
            except OSError as error:
                lock.release()
                raise storage_error(error, "creating", path) from None
            try:
                return begin_episode(
                    path, lock, bag, candidate, provenance, topics, flush_interval_s, start_ns, self.typestore
                )
            except BaseException as error:
                # Nothing worth keeping was written yet: leave no half-made folder behind.
                with suppress(Exception):
                    bag.abort()
                shutil.rmtree(path, ignore_errors=True)
                lock.release()
                if isinstance(error, (OSError, DataFileError)):
                    raise storage_error(error, f"starting episode {candidate}: writing", path) from None
                raise
        raise EpisodeError(
            f"episode {episode_id} already exists in {self.episodes_dir}"
            if episode_id is not None
            else f"could not find a free episode id in {self.episodes_dir} after {_NEW_ID_ATTEMPTS} tries"
        )

    # -- listing and reading ----------------------------------------------------------------------

    def load_manifest(self, episode_id: str) -> EpisodeManifest:
        """The manifest of ``episode_id``, its seal checked (``UnknownEpisodeError``, ``ManifestError``,
        ``ManifestSealError``)."""
        path = self.episode_dir(episode_id)
        if not path.is_dir():
            raise UnknownEpisodeError(f"no episode {episode_id} in {self.episodes_dir}")
        return load_manifest(path / MANIFEST_NAME)

    def list_episodes(self, *, include_discarded: bool = False) -> list[EpisodeEntry]:
        """Every episode in start order; an unreadable manifest gives an entry with ``error`` instead of failing all.

        Ids sort by start second; within one second the manifests' start times order them. A
        manifest whose seal does not check is listed with ``seal_error`` (see ``EpisodeEntry``).
        """
        entries = []
        for episode_id in self.episode_ids():
            path = self.episodes_dir / episode_id
            manifest, error, live = None, None, self.is_live(episode_id)
            seal_problem: ManifestSealError | None = None
            try:
                manifest, seal_problem = read_manifest(path / MANIFEST_NAME)
            except ManifestError as problem:
                if live:
                    continue  # being created this very moment: its manifest is a few writes away
                error = str(problem)
            if manifest is not None and manifest.state == STATE_DISCARDED and not include_discarded:
                continue
            seal_error = str(seal_problem) if seal_problem is not None else None
            sealed_copy = self._sealed_bag_manifest(path) if seal_problem is not None else None
            entries.append(EpisodeEntry(episode_id, path, manifest, live, error, seal_error, sealed_copy))
        return sorted(entries, key=lambda e: (e.episode_id[:15], e.manifest.start_time_ns if e.manifest else 0))

    def open_episode(self, episode_id: str) -> EpisodeReader:
        """A reader for a ``complete`` or ``recovered`` episode (``EpisodeStateError`` for the others)."""
        manifest = self.load_manifest(episode_id)
        if manifest.state not in READABLE_STATES:
            hint = {
                STATE_RECORDING: "still recording, or its recorder died: run `robot-brain data ls` to recover it",
                STATE_INCOMPLETE: f"nothing in it was readable ({manifest.error or 'no detail'})",
                STATE_DISCARDED: "the operator discarded it",
            }.get(manifest.state, "")
            raise EpisodeStateError(f"episode {episode_id} is {manifest.state}: {hint}")
        return EpisodeReader(self.episode_dir(episode_id), manifest, self.typestore)

    def discard_episode(self, episode_id: str) -> EpisodeManifest:
        """Throw away a finished episode (the operator's re-record button): bag and URDF copy deleted.

        The manifest stays as a ``discarded`` tombstone, as for an episode discarded while
        recording. Refused while another process writes it (``EpisodeStateError``), and for a
        manifest whose seal does not check (``ManifestSealError``: the tombstone would be sealed,
        certifying the edit; a purge erases such an episode).
        """
        manifest = self.load_manifest(episode_id)
        if manifest.state == STATE_DISCARDED:
            return manifest
        path = self.episode_dir(episode_id)
        lock = EpisodeLock(self._lock_path(episode_id))
        if not lock.try_acquire():
            raise EpisodeStateError(f"episode {episode_id} is being written by another process")
        try:
            for entry in path.iterdir():
                if entry.name != MANIFEST_NAME:
                    entry.unlink()
            manifest.state = STATE_DISCARDED
            write_manifest(path, manifest)
        except (OSError, DataFileError) as error:
            raise storage_error(error, f"discarding episode {episode_id} in", path) from None
        finally:
            lock.release()
        return manifest

    # -- recovery ---------------------------------------------------------------------------------

    def recover(self) -> list[RecoveryResult]:
        """Find every dead recording and recover it (or mark it incomplete); returns what was done.

        Live recordings (lock held) are left alone; so are episodes with a corrupt manifest
        (``list_episodes`` reports those). Safe to run from several processes at once.
        """
        results = []
        for episode_id in self.episode_ids():
            result = self.recover_episode(episode_id)
            if result is not None:
                results.append(result)
        return results

    def recover_episode(self, episode_id: str) -> RecoveryResult | None:
        """Recover one episode if its recorder is dead; None when there is nothing to do."""
        path = self.episode_dir(episode_id)
        if not self._needs_recovery(path):
            return None
        lock = EpisodeLock(self._lock_path(episode_id))
        try:
            if not lock.try_acquire():
                return None  # a live recorder (or another recovery) has it
        except OSError as error:
            return RecoveryResult(episode_id, "failed", 0, f"cannot lock {lock.path}: {error.strerror}")
        scratch = self.episodes_dir / RECOVERY_DIR / episode_id
        try:
            if not self._needs_recovery(path):  # finished or recovered while we waited for the lock
                return None
            return self._recover_locked(episode_id, path, scratch)
        except (OSError, DataFileError) as error:
            problem = storage_error(error, "recovery: writing", path)
            return RecoveryResult(episode_id, "failed", 0, f"{problem}; left as it was, retried at the next scan")
        except ManifestSealError as error:  # recovering would seal whatever the edited manifest says
            return RecoveryResult(episode_id, "failed", 0, f"{error}; not recovered, left as it was")
        except Exception as error:  # one unsalvageable episode must not stop the scan of the others
            detail = f"recovery stopped on {type(error).__name__}: {' '.join(str(error).split())[:200]}"
            return RecoveryResult(episode_id, "failed", 0, f"{detail}; left as it was, retried at the next scan")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            lock.release()

    @staticmethod
    def _needs_recovery(path: Path) -> bool:
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.exists():
            return True
        try:
            return read_manifest(manifest_path)[0].state == STATE_RECORDING  # the seal is checked by the recovery
        except ManifestError:
            return False

    def _recover_locked(self, episode_id: str, path: Path, scratch: Path) -> RecoveryResult:
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.exists():
            placeholder = _placeholder_manifest(episode_id, path)
            write_manifest(path, placeholder)
            return RecoveryResult(episode_id, STATE_INCOMPLETE, 0, placeholder.error or "")
        manifest = load_manifest(manifest_path)
        promoted = self._closed_bag_manifest(path, manifest)
        if promoted is not None:
            write_manifest(path, promoted)
            return RecoveryResult(
                episode_id, STATE_COMPLETE, promoted.message_count, "the bag was closed; only the manifest was behind"
            )
        original = path / manifest.bag_file
        damaged = path / (manifest.bag_file + DAMAGED_SUFFIX)
        source = damaged if damaged.exists() else original
        if not source.exists():
            return self._mark_incomplete(path, manifest, f"its bag file {original} is missing")
        now_ns = time.time_ns()

        def recovered_manifest(report: RebuildReport) -> EpisodeManifest:
            result = copy.deepcopy(manifest)
            result.state = STATE_RECOVERED
            for name, record in result.topics.items():
                rebuilt = report.topics.get(name)
                record.count = rebuilt.count if rebuilt else 0
                record.first_ns = rebuilt.first_ns if rebuilt else None
                record.last_ns = rebuilt.last_ns if rebuilt else None
            result.recovery = RecoveryRecord(
                recovered_at=format_time_ns(now_ns),
                messages=report.messages,
                bytes_read=report.bytes_read,
                file_bytes=report.file_bytes,
                damage=report.damage or "none found",
                original_file=damaged.name,
            )
            return result

        scratch.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
        # The rebuilt file must carry the original's name: rosbags names it after its folder.
        rebuilt_dir = scratch / episode_id
        scratch.mkdir()
        report = rebuild_bag(
            source,
            rebuilt_dir,
            type_hashes={record.type: record.type_hash for record in manifest.topics.values()},
            custom_data=lambda report: {
                CUSTOM_DATA_KEY: json.dumps(sealed_document(path, recovered_manifest(report)), separators=(",", ":"))
            },
        )
        if report.messages == 0:
            return self._mark_incomplete(path, manifest, f"nothing readable in {source.name}: {report.damage}")
        rebuilt_bag = rebuilt_dir / manifest.bag_file
        if not rebuilt_bag.exists():
            raise OSError(errno.ENOENT, "the rebuilt bag is not where rosbags was expected to put it", str(rebuilt_bag))
        fsync_file(rebuilt_bag)
        fsync_file(rebuilt_dir / METADATA_NAME)
        # Keep the damaged original (a better tool may salvage more); its name tells what it is.
        if not damaged.exists():
            os.replace(original, damaged)
        os.replace(rebuilt_bag, original)
        os.replace(rebuilt_dir / METADATA_NAME, path / METADATA_NAME)
        fsync_directory(path)
        recovered = recovered_manifest(report)
        write_manifest(path, recovered)
        detail = f"read {report.bytes_read} of {report.file_bytes} bytes; {report.damage or 'no damage found'}"
        return RecoveryResult(episode_id, STATE_RECOVERED, report.messages, detail)

    def _closed_bag_manifest(self, path: Path, manifest: EpisodeManifest) -> EpisodeManifest | None:
        """The final manifest from a bag the recorder closed before dying (custom data, its seal checked), else None."""
        if not (path / METADATA_NAME).exists():
            return None
        try:
            with Reader(path):
                pass  # opens only when metadata.yaml and the MCAP summary are both whole
        except (ReaderError, EpisodeError, ValueError, KeyError, TypeError, OSError, struct.error):
            return None
        final = self._sealed_bag_manifest(path)
        if final is None or final.state != STATE_COMPLETE or final.episode_id != manifest.episode_id:
            return None
        return final

    @staticmethod
    def _sealed_bag_manifest(path: Path) -> EpisodeManifest | None:
        """The manifest copy in ``metadata.yaml``'s custom data when it is there and its seal checks, else None."""
        try:
            text = read_bag_custom_data(path).get(CUSTOM_DATA_KEY)
            if text is None:
                return None
            return manifest_from_document(json.loads(text), path, source=f"{path / METADATA_NAME} custom_data")
        except (ReaderError, EpisodeError, ValueError, KeyError, TypeError, OSError, struct.error):
            return None

    @staticmethod
    def _mark_incomplete(path: Path, manifest: EpisodeManifest, reason: str) -> RecoveryResult:
        result = copy.deepcopy(manifest)
        result.state = STATE_INCOMPLETE
        result.error = reason if not manifest.error else f"{reason}; the recorder had reported: {manifest.error}"
        for record in result.topics.values():
            record.count, record.first_ns, record.last_ns = 0, None, None
        write_manifest(path, result)
        return RecoveryResult(manifest.episode_id, STATE_INCOMPLETE, 0, reason)


def _placeholder_manifest(episode_id: str, path: Path) -> EpisodeManifest:
    """The manifest of a folder whose recorder died before writing one: incomplete, provenance unknown."""
    try:
        start_ns = path.stat().st_mtime_ns
    except OSError:
        start_ns = 0
    return EpisodeManifest(
        episode_id=episode_id,
        state=STATE_INCOMPLETE,
        label=LABEL_NONE,
        operator="unknown",
        operator_kind="unknown",
        consent=ConsentRecord(id=None, scopes=[]),
        cell_id="",
        robot=RobotRecord(name="", urdf_sha256="", base_link="", tip_link=""),
        software=software_version(),
        policy_model_sha256=None,
        task="",
        start_time=format_time_ns(start_ns),
        start_time_ns=start_ns,
        bag_file=f"{episode_id}.mcap",
        error="the recorder stopped before writing the manifest: provenance unknown, not usable",
    )
