"""An episode's manifest: its provenance and per-topic counts, in ``manifest.json`` beside the bag.

The manifest is what every later step trusts about an episode: who was recorded (a
pseudonym, never a name), under which consent, on which robot and cell, with which
software and policy, what for (task, label), and how much of each stream was written,
dropped or late. The recorder writes it when an episode starts (state ``recording``) and
replaces it atomically (temp file, fsync, rename, fsync of the folder) when the episode ends,
so a crash leaves either the old or the new manifest, never half of one.

States: ``recording`` (being written, or the recorder died: the recovery scan decides),
``complete``, ``recovered`` (salvaged after a crash), ``incomplete`` (nothing readable, or
no manifest was written), ``discarded`` (the operator threw it away; the data is deleted,
the manifest stays as a tombstone).

**Seal.** Export, training and erasure believe the manifest's operator, consent and label, so
every manifest this module writes carries ``"seal"``: the site's seal
(:mod:`robot_brain.consent.seals`, purpose ``episode-manifest``, key ``consent/seal.key`` of
the data root ``<root>/episodes/<id>/..``) over the canonical JSON of every other field
(sorted keys, no spaces, UTF-8). It is a field rather than a sibling file because the
manifest is replaced with one atomic rename: a sibling seal would be a second rename, and a
crash between the two would leave a manifest that fails its check; and a discarded episode
stays one file, its tombstone. The copy in ``metadata.yaml``'s custom data is the same sealed
document, so recovery promotes it only when it checks. :func:`load_manifest` refuses (a
:class:`ManifestSealError` naming the file) a manifest with no seal (recorded before seals
existed: there is no resealing, as that would certify whatever the file says now), one sealed
by another site's key, one whose content does not match its seal, and a sealed manifest copied
from another episode's folder. :func:`read_manifest` returns the problem instead, for listing
and erasure, which must find an edited episode to report or erase it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_brain.consent.seals import SealError, check_seal, seal
from robot_brain.episodes.errors import ManifestError, ManifestSealError
from robot_brain.storage.files import DataFileError, atomic_write_bytes
from robot_brain.storage.paths import DataLayout, bare_file_name

MANIFEST_NAME = "manifest.json"
ROBOT_DESCRIPTION_NAME = "robot_description.urdf"
METADATA_NAME = "metadata.yaml"  # rosbag2's own, beside the MCAP file
CUSTOM_DATA_KEY = "robot_brain.manifest"  # the manifest's copy in metadata.yaml's custom_data
DAMAGED_SUFFIX = ".damaged"  # a recovered bag's original file, kept beside the rebuilt one
MANIFEST_FORMAT = "robot_brain.episode/1"
SEAL_FIELD = "seal"
SEAL_PURPOSE = "episode-manifest"

STATE_RECORDING = "recording"
STATE_COMPLETE = "complete"
STATE_INCOMPLETE = "incomplete"
STATE_RECOVERED = "recovered"
STATE_DISCARDED = "discarded"
STATES = (STATE_RECORDING, STATE_COMPLETE, STATE_INCOMPLETE, STATE_RECOVERED, STATE_DISCARDED)
READABLE_STATES = (STATE_COMPLETE, STATE_RECOVERED)

LABEL_SUCCESS = "success"
LABEL_FAILURE = "failure"
LABEL_NONE = "none"
LABELS = (LABEL_SUCCESS, LABEL_FAILURE, LABEL_NONE)


@dataclass
class TopicRecord:
    """One recorded topic: its type, how many messages the bag holds and how many were lost.

    ``dropped`` and ``late`` are reported by the recorder node (queue overflow, messages that
    arrived after the episode ended or too old); the writer cannot see them itself.
    ``first_ns``/``last_ns`` are the first and last message timestamps written (None: none).
    """

    type: str
    type_hash: str
    count: int = 0
    dropped: int = 0
    late: int = 0
    first_ns: int | None = None
    last_ns: int | None = None


@dataclass
class ConsentRecord:
    """The consent the operator had when the episode was recorded (None id: none needed, e.g. ``scripted``)."""

    id: str | None
    scopes: list[str]


@dataclass
class RobotRecord:
    """The robot as recorded: name, SHA-256 of the URDF text, the arm chain, and the URDF copy's file name."""

    name: str
    urdf_sha256: str
    base_link: str
    tip_link: str
    description_file: str = ROBOT_DESCRIPTION_NAME


@dataclass
class SoftwareVersion:
    """The recording software: package version and, from a git checkout, the commit and whether it had edits."""

    package: str
    version: str
    git_commit: str | None = None
    git_dirty: bool | None = None


@dataclass
class RecoveryRecord:
    """What the recovery scan salvaged from a bag whose recorder died.

    ``bytes_read`` of ``file_bytes`` were parsed before ``damage`` (the reason reading stopped);
    the original file is kept as ``original_file`` beside the rebuilt one.
    """

    recovered_at: str
    messages: int
    bytes_read: int
    file_bytes: int
    damage: str
    original_file: str | None = None


@dataclass
class EpisodeManifest:
    """Everything ``manifest.json`` holds; see the module docstring for the states."""

    episode_id: str
    state: str
    label: str
    operator: str
    operator_kind: str
    consent: ConsentRecord
    cell_id: str
    robot: RobotRecord
    software: SoftwareVersion
    policy_model_sha256: str | None
    task: str
    start_time: str
    start_time_ns: int
    bag_file: str
    topics: dict[str, TopicRecord] = field(default_factory=dict)
    end_time: str | None = None
    end_time_ns: int | None = None
    error: str | None = None
    recovery: RecoveryRecord | None = None
    #: Camera frames (sensor_msgs/Image topics) were face-blurred before writing (recorder's blur_faces):
    #: a heuristic mitigation that misses faces, not anonymisation. Absent in older manifests: False.
    faces_blurred: bool = False
    format: str = MANIFEST_FORMAT

    @property
    def message_count(self) -> int:
        """Messages in the bag, all topics together."""
        return sum(topic.count for topic in self.topics.values())

    @property
    def lost_count(self) -> int:
        """Messages the recorder reported dropped or late, all topics together."""
        return sum(topic.dropped + topic.late for topic in self.topics.values())

    @property
    def duration_s(self) -> float:
        """Span of the recorded messages (last timestamp minus first, over all topics), seconds."""
        firsts = [t.first_ns for t in self.topics.values() if t.first_ns is not None]
        lasts = [t.last_ns for t in self.topics.values() if t.last_ns is not None]
        if not firsts or not lasts:
            return 0.0
        return max(0, max(lasts) - min(firsts)) / 1e9

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``manifest.json``, ``format`` first (``write_manifest`` adds its seal)."""
        data = dataclasses.asdict(self)
        return {"format": data.pop("format"), **data}

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest") -> EpisodeManifest:
        """Parse and check a manifest object; a ``ManifestError`` naming ``source`` on anything missing or wrong."""
        reader = _FieldReader(source)
        root = reader.obj(data, "the manifest")
        fmt = reader.get(root, "format", str)
        if fmt != MANIFEST_FORMAT:
            raise ManifestError(f"{source}: format is {fmt!r}, expected {MANIFEST_FORMAT!r}")
        state = reader.get(root, "state", str)
        if state not in STATES:
            raise ManifestError(f"{source}: state is {state!r}, expected one of {', '.join(STATES)}")
        label = reader.get(root, "label", str)
        if label not in LABELS:
            raise ManifestError(f"{source}: label is {label!r}, expected one of {', '.join(LABELS)}")
        consent = reader.obj(reader.get(root, "consent", dict), "consent")
        robot = reader.obj(reader.get(root, "robot", dict), "robot")
        software = reader.obj(reader.get(root, "software", dict), "software")
        topics_data = reader.obj(reader.get(root, "topics", dict), "topics")
        topics = {}
        for name, topic_data in topics_data.items():
            topic = reader.obj(topic_data, f"topics[{name!r}]")
            topics[name] = TopicRecord(
                type=reader.get(topic, "type", str),
                type_hash=reader.get(topic, "type_hash", str),
                count=reader.count(topic, "count"),
                dropped=reader.count(topic, "dropped"),
                late=reader.count(topic, "late"),
                first_ns=reader.get(topic, "first_ns", int, optional=True),
                last_ns=reader.get(topic, "last_ns", int, optional=True),
            )
        recovery_data = reader.get(root, "recovery", dict, optional=True)
        recovery = None
        if recovery_data is not None:
            recovery = RecoveryRecord(
                recovered_at=reader.get(recovery_data, "recovered_at", str),
                messages=reader.count(recovery_data, "messages"),
                bytes_read=reader.count(recovery_data, "bytes_read"),
                file_bytes=reader.count(recovery_data, "file_bytes"),
                damage=reader.get(recovery_data, "damage", str),
                original_file=reader.get(recovery_data, "original_file", str, optional=True),
            )
        _check_file_fields(root, robot, source)
        scopes = reader.get(consent, "scopes", list)
        if not all(isinstance(scope, str) for scope in scopes):
            raise ManifestError(f"{source}: consent.scopes must be a list of strings, found {scopes!r}")
        return cls(
            format=fmt,
            episode_id=reader.get(root, "episode_id", str),
            state=state,
            label=label,
            operator=reader.get(root, "operator", str),
            operator_kind=reader.get(root, "operator_kind", str),
            consent=ConsentRecord(id=reader.get(consent, "id", str, optional=True), scopes=list(scopes)),
            cell_id=reader.get(root, "cell_id", str),
            robot=RobotRecord(
                name=reader.get(robot, "name", str),
                urdf_sha256=reader.get(robot, "urdf_sha256", str),
                base_link=reader.get(robot, "base_link", str),
                tip_link=reader.get(robot, "tip_link", str),
                description_file=reader.get(robot, "description_file", str),
            ),
            software=SoftwareVersion(
                package=reader.get(software, "package", str),
                version=reader.get(software, "version", str),
                git_commit=reader.get(software, "git_commit", str, optional=True),
                git_dirty=reader.get(software, "git_dirty", bool, optional=True),
            ),
            policy_model_sha256=reader.get(root, "policy_model_sha256", str, optional=True),
            task=reader.get(root, "task", str),
            start_time=reader.get(root, "start_time", str),
            start_time_ns=reader.get(root, "start_time_ns", int),
            end_time=reader.get(root, "end_time", str, optional=True),
            end_time_ns=reader.get(root, "end_time_ns", int, optional=True),
            bag_file=reader.get(root, "bag_file", str),
            topics=topics,
            error=reader.get(root, "error", str, optional=True),
            recovery=recovery,
            faces_blurred=reader.get(root, "faces_blurred", bool) if "faces_blurred" in root else False,
        )


def _check_file_fields(root: Mapping[str, Any], robot: Mapping[str, Any], source: str) -> None:
    """The manifest's file fields name files in the episode's own folder, nothing elsewhere on the host."""
    recovered = root.get("recovery") if isinstance(root.get("recovery"), dict) else {}
    fields = (("bag_file", root.get("bag_file")), ("robot.description_file", robot.get("description_file")),
              ("recovery.original_file", recovered.get("original_file")))
    for name, text in fields:
        if isinstance(text, str) and not bare_file_name(text):
            raise ManifestError(
                f"{source}: {name} must name a file in the episode's folder, found {text!r} "
                "(a path elsewhere is refused: an edited manifest must not point a reader outside it)"
            )


class _FieldReader:
    """Typed field access with one-line errors that name the manifest file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def obj(self, value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ManifestError(f"{self.source}: {what} must be a JSON object, found {type(value).__name__}")
        return value

    def get(self, data: dict[str, Any], key: str, kind: type, optional: bool = False) -> Any:
        if key not in data:
            raise ManifestError(f"{self.source}: field {key!r} is missing")
        value = data[key]
        if value is None and optional:
            return None
        # bool is an int subclass: a count of True is as wrong as a flag of 1.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            expected = kind.__name__ + (" or null" if optional else "")
            raise ManifestError(f"{self.source}: field {key!r} should be {expected}, found {json.dumps(value)[:60]}")
        return value

    def count(self, data: dict[str, Any], key: str) -> int:
        value = self.get(data, key, int)
        if value < 0:
            raise ManifestError(f"{self.source}: field {key!r} should be a count (>= 0), found {value}")
        return value


def _seal_layout(folder: Path) -> DataLayout:
    """The data root whose seal key seals the manifests of episode folder ``<root>/episodes/<id>``."""
    return DataLayout(Path(folder).parent.parent)


def _canonical(document: Mapping[str, Any]) -> bytes:
    """The bytes a seal covers: independent of indentation and key order, so only a change of content breaks it."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sealed_document(folder: Path, manifest: EpisodeManifest) -> dict[str, Any]:
    """``manifest`` as written into episode folder ``folder``: its fields, then ``seal`` over all of them."""
    document = manifest.to_dict()
    return {**document, SEAL_FIELD: seal(_seal_layout(folder), SEAL_PURPOSE, _canonical(document))}


def check_manifest_seal(document: Mapping[str, Any], folder: Path, *, source: str) -> None:
    """:class:`ManifestSealError` naming ``source`` unless ``document`` is as this site sealed it for ``folder``."""
    what = f"episode manifest {source}"
    fields = {key: value for key, value in document.items() if key != SEAL_FIELD}
    text = document.get(SEAL_FIELD)
    if text is None:
        raise ManifestSealError(
            f"{what}: it has no seal (recorded before manifests were sealed, or the seal was removed); expected "
            f"'{SEAL_FIELD}' as the recorder writes it: an unsealed episode is never exported or trained on "
            "(re-record it; there is no resealing)"
        )
    try:
        check_seal(_seal_layout(folder), SEAL_PURPOSE, _canonical(fields), str(text), what=what)
    except SealError as error:
        raise ManifestSealError(
            f"{error}; expected the seal this site wrote when it was recorded: a manifest changed outside "
            "robot_brain is never exported or trained on (re-record the episode)"
        ) from None
    except DataFileError as error:  # an unreadable seal key: nothing can be believed, but listing and purge go on
        raise ManifestSealError(f"{what}: its seal cannot be checked ({error})") from None
    if fields.get("episode_id") != Path(folder).name:
        raise ManifestSealError(
            f"{what}: sealed for episode {fields.get('episode_id')!r}, but it is in folder {Path(folder).name!r} "
            "(copied from another episode?); expected the manifest recorded in this folder"
        )


def manifest_from_document(document: Any, folder: Path, *, source: str) -> EpisodeManifest:
    """Parse ``document`` (``ManifestError``), then check its seal for folder ``folder`` (``ManifestSealError``)."""
    manifest = EpisodeManifest.from_dict(document, source=source)
    check_manifest_seal(document, folder, source=source)
    return manifest


def read_manifest(path: Path) -> tuple[EpisodeManifest, ManifestSealError | None]:
    """``manifest.json`` (or the file ``path`` names) parsed, and what is wrong with its seal (None: it checks).

    For listing and erasure only, which must see an edited manifest to report or erase it;
    whatever believes a manifest calls :func:`load_manifest`. A file that cannot be read or
    parsed is a one-line ``ManifestError``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest (the recorder stopped before writing it?)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: cannot read the manifest ({error})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from None
    manifest = EpisodeManifest.from_dict(data, source=str(path))
    try:
        check_manifest_seal(data, path.parent, source=str(path))
    except ManifestSealError as problem:
        return manifest, problem
    return manifest, None


def load_manifest(path: Path) -> EpisodeManifest:
    """Read and check ``manifest.json`` (or the file ``path`` names), its seal included; one-line ``ManifestError``.

    An unsealed or edited manifest is a ``ManifestSealError``: nothing may believe it.
    """
    manifest, problem = read_manifest(path)
    if problem is not None:
        raise problem
    return manifest


def write_manifest(path: Path, manifest: EpisodeManifest) -> None:
    """Replace ``manifest.json`` in folder ``path`` atomically and durably (temp file, fsync, rename, fsync), sealed.

    The seal key is the data root's (``path.parent.parent``), created on first use. A crash
    or a full disk leaves the previous manifest as it was (``DataFileError`` then).
    """
    text = json.dumps(sealed_document(Path(path), manifest), indent=2) + "\n"
    atomic_write_bytes(Path(path) / MANIFEST_NAME, text.encode("utf-8"))


@functools.lru_cache(maxsize=1)
def software_version() -> SoftwareVersion:
    """The running robot_brain: package version, and the git commit (and dirty flag) when run from a checkout.

    Asked once per process (git is run at most twice, with a timeout); outside a checkout, or
    without git, the commit is None rather than a guess.
    """
    import robot_brain

    try:
        from importlib.metadata import PackageNotFoundError, version

        package_version = version("robot_brain")
    except PackageNotFoundError:
        package_version = robot_brain.__version__
    checkout = Path(robot_brain.__file__).resolve().parents[1]
    commit: str | None = None
    dirty: bool | None = None
    if (checkout / ".git").exists():
        try:
            result = subprocess.run(
                ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
            )
            if result.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", result.stdout.strip()):
                commit = result.stdout.strip()
                status = subprocess.run(
                    ["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                )
                if status.returncode == 0:
                    dirty = bool(status.stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            commit, dirty = None, None
    return SoftwareVersion(package="robot_brain", version=package_version, git_commit=commit, git_dirty=dirty)
