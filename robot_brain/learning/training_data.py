"""Demonstrations → training arrays: consent screening, chunk labels, normalisation (numpy only, no torch).

What a learned policy is trained on, and nothing else:

1. **Consent, at training time.** Every episode of every dataset is checked against the consent
   registry of the data root *now* (``ConsentRegistry.check(operator, "train")``), whatever it
   had when it was recorded or exported: an operator who revoked ``train`` (or objected) since,
   whose consent expired, or who was forgotten is excluded with the registry's reason, and so is
   an episode recorded longer ago than its enrolment's retention period
   (``ConsentRegistry.check_episode``). Non-human operators
   (``scripted``, ``policy:<sha>``) need no consent. A dataset without ``meta/provenance.json``,
   or whose files no longer match its recorded content hash, is refused as a whole: the
   consent of its episodes cannot be known. An episode found in two datasets (same
   ``episode_id`` and segment) is used once.
2. **Labels** (``ee_pose_delta``, the action space of ``builtin:reach``): waypoint ``i`` (``0 ≤ i
   < H``) of frame ``t`` is the *commanded* tool pose at frame ``t + i·stride``
   (``action.ee_pose``) relative to the *observed* tool pose at frame ``t``
   (``observation.ee_pose``): the position offset in the base frame and the rotation
   ``R_cmd · R_obsᵀ`` (left-multiplied, as :mod:`robot_brain.control.actions` applies it) as a
   unit quaternion ``[qx qy qz qw]`` with ``qw ≥ 0``. Waypoint 0 is the command issued at the
   observation's own frame: the controller times waypoint ``i`` at ``stamp + i·dt``, so
   ``dt = stride / fps``. Past an episode's last frame the last command is repeated (the arm
   holds where the demonstration ended), so every frame is a sample and the end of a reach
   teaches "stay".
3. **Normalisation.** Inputs use the dataset statistics (``meta/stats.json``; when some episodes
   are excluded, LeRobot's aggregation of the *included* episodes' own statistics from
   ``meta/episodes``, so an excluded operator's data shapes nothing, not even a mean). The
   label statistics are computed over the training frames' chunks, since ``stats.json`` holds
   absolute poses, not deltas. Standard deviations are floored (:data:`STD_FLOOR`) so a
   constant feature (a held orientation) does not divide by zero.
4. **Images** (visuomotor): each episode's frames decoded from its video and resized with the
   same OpenCV call the policy node's :class:`~robot_brain.perception.preprocess.Preprocessor`
   uses, kept as ``uint8`` ``(N, 3, S, S)``; the model's normalisation (``x / 255 - mean) / std``
   with the camera's dataset statistics) is declared in the contract's image spec, so the
   runtime preprocesses a live frame exactly as training did.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from robot_brain.consent.operators import ConsentError
from robot_brain.consent.registry import ConsentRegistry, Decision
from robot_brain.datasets import stats as feature_stats
from robot_brain.datasets.dataset_provenance import (
    PROVENANCE_PATH,
    ProvenanceError,
    check_dataset_seal,
    erased_dataset_hashes,
    verify_provenance,
)
from robot_brain.datasets.lerobot_format import EPISODES_DIR, DatasetFormatError, camera_key, read_json, read_parquet
from robot_brain.datasets.lerobot_reader import STALE_MARKER, LeRobotDataset
from robot_brain.errors import UserError
from robot_brain.storage.paths import DataLayout
from robot_brain.storage.times import format_time, parse_time, utc_now

FEATURE_EE_POSE = "observation.ee_pose"
FEATURE_TARGET_POINT = "observation.target_point"
FEATURE_ACTION_EE_POSE = "action.ee_pose"
DEFAULT_CAMERA = "camera"
TRAIN_SCOPE = "train"
STD_FLOOR = 1e-3
"""Smallest standard deviation used to normalise (metres or quaternion units)."""
INPUT_STD_FLOOR = 1e-6
"""Smallest input standard deviation declared in a contract (the graph undoes it exactly)."""


class TrainingDataError(UserError):
    """Datasets that cannot be trained on: missing features, unknown consent, nothing left after screening."""


# --------------------------------------------------------------------------------------------
# Consent screening
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset as training uses it: where it is, what it is (content hash), its frame rate."""

    root: Path
    name: str
    content_hash: str
    fps: int
    robot_type: str | None
    total_episodes: int
    total_frames: int
    video_keys: tuple[str, ...]


@dataclass(frozen=True)
class ScreenedEpisode:
    """One dataset episode, its provenance (pseudonyms only) and the consent decision made for training."""

    dataset: int
    """Position of its dataset in :attr:`Selection.datasets`."""
    episode_index: int
    episode_id: str | None
    segment: int | None
    """Which segment of the recorded episode (the exporter splits an episode at gaps), when known."""
    length: int
    task: str
    operator: str | None
    operator_kind: str | None
    robot: str | None
    urdf_sha256: str | None
    recorded_consent: dict[str, Any]
    """``{"id", "scopes"}`` as recorded with the episode (``id`` None: none needed)."""
    allowed: bool
    reason: str
    consent: dict[str, Any] = field(default_factory=dict)
    """At training time: ``consent_id``, ``scopes``, ``expires_at`` (from the registry's decision)."""

    @property
    def key(self) -> tuple[int, int]:
        return (self.dataset, self.episode_index)

    def to_dict(self) -> dict[str, Any]:
        """JSON for the model's provenance (no name can be in it: operators are pseudonyms)."""
        return {
            "dataset": self.dataset,
            "episode_index": self.episode_index,
            "episode_id": self.episode_id,
            "segment": self.segment,
            "frames": self.length,
            "task": self.task,
            "operator": self.operator,
            "operator_kind": self.operator_kind,
            "robot": self.robot,
            "urdf_sha256": self.urdf_sha256,
            "consent_at_recording": dict(self.recorded_consent),
            "consent_at_training": dict(self.consent),
        }


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`screen_datasets`: datasets, the episodes allowed and those excluded (with reasons)."""

    datasets: tuple[DatasetInfo, ...]
    included: tuple[ScreenedEpisode, ...]
    excluded: tuple[ScreenedEpisode, ...]
    checked_at: datetime
    data_root: Path
    fps: int

    @property
    def frames(self) -> int:
        return sum(episode.length for episode in self.included)


def selection_document(selection: Selection) -> dict[str, Any]:
    """The consent decisions of a selection as JSON (what torchrun's rank 0 sends the other ranks)."""
    return {
        "datasets": [info.content_hash for info in selection.datasets],
        "included": [dataclasses.asdict(e) for e in selection.included],
        "excluded": [dataclasses.asdict(e) for e in selection.excluded],
        "checked_at": format_time(selection.checked_at),
        "data_root": str(selection.data_root),
    }


def selection_from_document(datasets: Sequence[LeRobotDataset], document: Mapping[str, Any]) -> Selection:
    """Rebuild another process's :func:`selection_document` over this process's copies of the datasets.

    The consent decisions are taken as made (by rank 0, against its registry: the other hosts need
    none); the datasets' content hashes are recomputed here and must match rank 0's.
    """
    infos, fps = describe_datasets(datasets)
    hashes = [info.content_hash for info in infos]
    if hashes != list(document["datasets"]):
        differing = [
            info.root for info, theirs in zip(infos, document["datasets"], strict=False) if info.content_hash != theirs
        ]
        raise TrainingDataError(
            f"this host's datasets differ from rank 0's (content hash of {differing[:1] or 'the list'}): "
            "every host needs the same dataset files"
        )
    return Selection(
        datasets=infos,
        included=tuple(ScreenedEpisode(**e) for e in document["included"]),
        excluded=tuple(ScreenedEpisode(**e) for e in document["excluded"]),
        checked_at=parse_time(document["checked_at"]),
        data_root=Path(document["data_root"]),
        fps=fps,
    )


def _source_fields(source: Mapping[str, Any]) -> tuple[str | None, str | None, dict[str, Any], str | None, str | None]:
    """Operator, its kind, recorded consent, robot name and URDF hash from an episode's ``source`` provenance.

    Accepts the episode manifest's form (``consent: {id, scopes}``, ``robot: {name, urdf_sha256}``)
    and the flat form of ``Decision.to_provenance()`` (``consent_id``, ``consent_scopes``).
    """
    operator = source.get("operator")
    kind = source.get("operator_kind")
    consent = source.get("consent")
    if isinstance(consent, Mapping):
        recorded = {"id": consent.get("id", consent.get("consent_id")), "scopes": list(consent.get("scopes") or [])}
    else:
        recorded = {"id": source.get("consent_id"), "scopes": list(source.get("consent_scopes") or [])}
    robot = source.get("robot")
    robot_name = robot.get("name") if isinstance(robot, Mapping) else (robot if isinstance(robot, str) else None)
    urdf = robot.get("urdf_sha256") if isinstance(robot, Mapping) else source.get("urdf_sha256")
    return (
        operator if isinstance(operator, str) else None,
        kind if isinstance(kind, str) else None,
        recorded,
        robot_name,
        urdf if isinstance(urdf, str) else None,
    )


def _check_features(dataset: LeRobotDataset, wanted: Mapping[str, int]) -> None:
    for key, width in wanted.items():
        spec = dataset.features.get(key)
        if spec is None:
            raise TrainingDataError(
                f"{dataset.root}: expected feature {key!r} ({width} values), found features {sorted(dataset.features)}"
            )
        if list(spec.get("shape", [])) != [width] or spec.get("dtype") not in ("float32", "float64"):
            raise TrainingDataError(
                f"{dataset.root}: expected {key!r} as {width} floats, found {spec.get('dtype')} {spec.get('shape')}"
            )


def open_datasets(paths: Sequence[str | os.PathLike[str]], data_root: DataLayout) -> list[LeRobotDataset]:
    """Open each dataset: a path, or the name of a folder under ``<data root>/datasets``."""
    if not paths:
        raise TrainingDataError("expected at least one dataset, found none")
    opened: list[LeRobotDataset] = []
    for given in paths:
        path = Path(given)
        if not path.exists() and not path.is_absolute() and (data_root.datasets_dir / path).is_dir():
            path = data_root.datasets_dir / path
        if not path.is_dir():
            raise TrainingDataError(f"dataset {given}: expected a LeRobot dataset folder, found nothing there")
        dataset = LeRobotDataset(path)
        if any(d.root.resolve() == dataset.root.resolve() for d in opened):
            raise TrainingDataError(f"dataset {given}: given twice")
        opened.append(dataset)
    return opened


def describe_datasets(
    datasets: Sequence[LeRobotDataset], *, camera: str | None = None
) -> tuple[tuple[DatasetInfo, ...], int]:
    """Each dataset's identity (recomputed content hash) and the common frame rate.

    Raises :class:`TrainingDataError` when a dataset lacks a needed feature or
    ``meta/provenance.json``, when its files no longer match its recorded content hash, or when
    frame rates differ.
    """
    infos: list[DatasetInfo] = []
    wanted = {FEATURE_EE_POSE: 7, FEATURE_TARGET_POINT: 3, FEATURE_ACTION_EE_POSE: 7}
    fps: int | None = None
    for dataset in datasets:
        _check_features(dataset, wanted)
        if camera is not None:
            resolve_camera(dataset, camera)
        provenance_path = dataset.root / PROVENANCE_PATH
        if not provenance_path.is_file():
            raise TrainingDataError(
                f"{dataset.root}: expected {PROVENANCE_PATH} to check each episode's consent, found none "
                "(refusing to train on data of unknown consent)"
            )
        check = verify_provenance(dataset.root)
        if not check.ok:
            raise TrainingDataError(f"{dataset.root}: {check.message()}: the data is not what its provenance describes")
        if fps is None:
            fps = dataset.fps
        elif dataset.fps != fps:
            raise TrainingDataError(
                f"{dataset.root}: expected {fps} fps like {datasets[0].root.name}, found {dataset.fps} "
                "(chunk labels are spaced in frames: export the datasets at one rate)"
            )
        infos.append(
            DatasetInfo(
                root=dataset.root,
                name=dataset.root.name,
                content_hash=check.actual_hash,
                fps=dataset.fps,
                robot_type=dataset.robot_type,
                total_episodes=dataset.num_episodes,
                total_frames=dataset.num_frames,
                video_keys=tuple(dataset.video_keys),
            )
        )
    if fps is None:
        raise TrainingDataError("expected at least one dataset, found none")
    return tuple(infos), fps


def screen_datasets(
    datasets: Sequence[LeRobotDataset],
    data_root: DataLayout,
    *,
    at: datetime | None = None,
    camera: str | None = None,
) -> Selection:
    """Check the datasets' integrity (:func:`describe_datasets`) and every episode's ``train`` consent now (or ``at``).

    Raises :class:`TrainingDataError` on a dataset that cannot be trained on, or when no episode is left.
    """
    moment = at or utc_now()
    registry = ConsentRegistry(data_root)
    infos, fps = describe_datasets(datasets, camera=camera)
    _require_sealed_and_not_erased(datasets, infos, data_root)
    included: list[ScreenedEpisode] = []
    excluded: list[ScreenedEpisode] = []
    seen_ids: dict[tuple[str, int | None], tuple[int, int]] = {}
    for position, dataset in enumerate(datasets):
        by_index = _provenance_entries(dataset)
        for episode in range(dataset.num_episodes):
            entry = by_index.get(episode, {})
            common, identity = _episode_fields(dataset, position, episode, entry)
            screened = _screen_episode(common, entry, identity, seen_ids, infos, registry, moment)
            if screened.allowed:
                included.append(screened)
                if identity is not None:
                    seen_ids[identity] = (position, episode)
            else:
                excluded.append(screened)
    selection = Selection(infos, tuple(included), tuple(excluded), moment, data_root.root, fps)
    if not included:
        reasons = sorted({e.reason for e in excluded})
        raise TrainingDataError(
            f"no episode may be used for training: all {len(excluded)} excluded "
            f"({'; '.join(reasons[:3])}{'; ...' if len(reasons) > 3 else ''})"
        )
    return selection


def _require_sealed_and_not_erased(
    datasets: Sequence[LeRobotDataset], infos: Sequence[DatasetInfo], data_root: DataLayout
) -> None:
    """Refuse provenance this site did not seal (or that was edited since), and data a purge marked stale.

    The episodes' operators and consent below come from ``meta/provenance.json``: without its
    seal, relabelling an operator ``scripted`` would train on a person without consent. A purge
    logs the content hash of every dataset it marks stale, so a deleted ``STALE.json`` changes
    nothing.
    """
    erased = erased_dataset_hashes(data_root)
    for dataset, info in zip(datasets, infos, strict=True):
        try:
            check_dataset_seal(data_root, dataset.root)
        except ProvenanceError as error:
            raise TrainingDataError(f"refusing to train: {error}") from None
        if info.content_hash in erased:
            raise TrainingDataError(
                f"{dataset.root}: a purge marked this dataset stale (audit entry {erased[info.content_hash]}): it "
                f"holds erased episodes, whatever {STALE_MARKER} says; rebuild it (robot-brain data purge --rebuild) "
                "or delete it"
            )


def _provenance_entries(dataset: LeRobotDataset) -> dict[int, Mapping[str, Any]]:
    """The dataset's ``meta/provenance.json`` episode entries by episode index."""
    document = read_json(dataset.root / PROVENANCE_PATH)
    by_index: dict[int, Mapping[str, Any]] = {}
    for entry in document.get("episodes") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("episode_index"), int):
            by_index[entry["episode_index"]] = entry
    return by_index


def _episode_fields(
    dataset: LeRobotDataset, position: int, episode: int, entry: Mapping[str, Any]
) -> tuple[dict[str, Any], tuple[str, int | None] | None]:
    """An episode's :class:`ScreenedEpisode` fields before the decision, and its (episode_id, segment) identity."""
    source = entry.get("source") if isinstance(entry.get("source"), Mapping) else {}
    operator, kind, recorded, robot, urdf = _source_fields(source)
    episode_id = source.get("episode_id") if isinstance(source.get("episode_id"), str) else None
    segment_info = source.get("segment")
    segment = segment_info.get("index") if isinstance(segment_info, Mapping) else None
    segment = segment if isinstance(segment, int) else None
    identity = (episode_id, segment) if episode_id is not None else None
    common = {
        "dataset": position,
        "episode_index": episode,
        "episode_id": episode_id,
        "segment": segment,
        "length": int(dataset.episodes["length"][episode]),
        "task": str(dataset.episodes["tasks"][episode][0]) if dataset.episodes["tasks"][episode] else "",
        "operator": operator,
        "operator_kind": kind,
        "robot": robot,
        "urdf_sha256": urdf,
        "recorded_consent": recorded,
    }
    return common, identity


def _screen_episode(
    common: Mapping[str, Any],
    entry: Mapping[str, Any],
    identity: tuple[str, int | None] | None,
    seen_ids: Mapping[tuple[str, int | None], tuple[int, int]],
    infos: Sequence[DatasetInfo],
    registry: ConsentRegistry,
    moment: datetime,
) -> ScreenedEpisode:
    """One episode's decision: excluded without provenance or operator, or as a duplicate; else the registry's."""
    operator = common["operator"]
    if not entry:
        return ScreenedEpisode(**common, allowed=False, reason="no provenance entry for the episode")
    if operator is None:
        reason = "no operator in the episode's provenance"
        return ScreenedEpisode(**common, allowed=False, reason=reason)
    if identity is not None and identity in seen_ids:
        first = seen_ids[identity]
        return ScreenedEpisode(
            **common,
            allowed=False,
            reason=f"duplicate of {infos[first[0]].name} episode {first[1]} (same episode_id and segment)",
        )
    source = entry.get("source") if isinstance(entry.get("source"), Mapping) else {}
    try:  # an episode past its retention period is refused like a withdrawn consent
        decision = registry.check_episode(
            operator, TRAIN_SCOPE, recorded_at=source.get("start_time"), consent_id=common["recorded_consent"]["id"],
            at=moment,
        )
    except ConsentError as error:
        return ScreenedEpisode(**common, allowed=False, reason=str(error))
    consent = _consent_record(decision)
    fields = {**common, "operator_kind": decision.operator.kind if decision.operator else common["operator_kind"]}
    return ScreenedEpisode(**fields, allowed=decision.allowed, reason=decision.reason, consent=consent)


def _consent_record(decision: Decision) -> dict[str, Any]:
    """The registry's training-time decision as the episode's ``consent_at_training`` provenance."""
    return {
        "consent_id": decision.consent_id,
        "scopes": list(decision.scopes),
        "expires_at": format_time(decision.expires_at) if decision.expires_at else None,
        "checked_at": format_time(decision.at),
        "reason": decision.reason,
        "legal_basis": decision.legal_basis,
        "retention_days": decision.retention_days,
        "retention_ends_at": format_time(decision.retention_ends_at) if decision.retention_ends_at else None,
    }


def resolve_camera(dataset: LeRobotDataset, camera: str | None) -> str:
    """The video feature key to train on: ``camera`` (name or key), else the only one, else ``camera``."""
    if camera is None:
        if len(dataset.video_keys) == 1:
            return dataset.video_keys[0]
        camera = DEFAULT_CAMERA
    key = camera_key(camera)
    if key not in dataset.video_keys:
        raise TrainingDataError(f"{dataset.root}: expected a camera {key!r}, found cameras {dataset.video_keys}")
    return key


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def quaternion_multiply(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Hamilton product of ``[x y z w]`` quaternions (broadcasting): ``R(l ⊗ r) = R(l) · R(r)``."""
    lv, lw = left[..., :3], left[..., 3:4]
    rv, rw = right[..., :3], right[..., 3:4]
    vector = lw * rv + rw * lv + np.cross(lv, rv)
    scalar = lw * rw - np.sum(lv * rv, axis=-1, keepdims=True)
    return np.concatenate([vector, scalar], axis=-1)


def quaternion_conjugate(quaternion: np.ndarray) -> np.ndarray:
    """The inverse of a unit quaternion ``[x y z w]``."""
    return np.concatenate([-quaternion[..., :3], quaternion[..., 3:4]], axis=-1)


def _unit_quaternions(values: np.ndarray, what: str) -> np.ndarray:
    norms = np.linalg.norm(values, axis=-1, keepdims=True)
    if np.any(norms < 1e-6):
        frame = int(np.flatnonzero(norms.reshape(-1) < 1e-6)[0])
        raise TrainingDataError(f"{what}: expected unit quaternions, frame {frame} has a zero quaternion")
    return values / norms


def chunk_labels(
    observed: np.ndarray, commanded: np.ndarray, horizon: int, stride: int = 1, where: str = "episode"
) -> np.ndarray:
    """``(T, H, 7)`` ``ee_pose_delta`` labels of one episode (see the module docstring).

    ``observed`` and ``commanded`` are ``(T, 7)`` tool poses ``[x y z qx qy qz qw]`` in the base frame.
    """
    observed = np.asarray(observed, dtype=np.float64)
    commanded = np.asarray(commanded, dtype=np.float64)
    length = observed.shape[0]
    indices = np.minimum(np.arange(length)[:, None] + stride * np.arange(horizon)[None, :], length - 1)
    positions = commanded[indices, :3] - observed[:, None, :3]
    observed_q = _unit_quaternions(observed[:, 3:7], f"{where} {FEATURE_EE_POSE}")
    commanded_q = _unit_quaternions(commanded[:, 3:7], f"{where} {FEATURE_ACTION_EE_POSE}")
    rotations = quaternion_multiply(commanded_q[indices], quaternion_conjugate(observed_q)[:, None, :])
    rotations *= np.where(rotations[..., 3:4] < 0.0, -1.0, 1.0)
    return np.concatenate([positions, rotations], axis=-1)


# --------------------------------------------------------------------------------------------
# Arrays and statistics
# --------------------------------------------------------------------------------------------


@dataclass
class TrainingArrays:
    """Every sample of the included episodes, frame by frame (float32), and which episode each came from."""

    target_point: np.ndarray  # (N, 3)
    ee_pose: np.ndarray  # (N, 7)
    labels: np.ndarray  # (N, H, 7)
    episode: np.ndarray  # (N,) position in Selection.included
    frame_index: np.ndarray  # (N,)
    images: np.ndarray | None = None  # (N, 3, S, S) uint8 (visuomotor)

    @property
    def size(self) -> int:
        return int(self.target_point.shape[0])


def load_arrays(
    datasets: Sequence[LeRobotDataset],
    selection: Selection,
    horizon: int,
    stride: int = 1,
    *,
    camera: str | None = None,
    image_size: int | None = None,
) -> TrainingArrays:
    """Read the included episodes' features and build the chunk labels (and the resized images when asked)."""
    columns = [FEATURE_TARGET_POINT, FEATURE_EE_POSE, FEATURE_ACTION_EE_POSE]
    targets, poses, labels, owners, frames, images = [], [], [], [], [], []
    preprocessor = frame_resizer(image_size) if image_size else None
    for position, dataset in enumerate(datasets):
        members = [(n, e) for n, e in enumerate(selection.included) if e.dataset == position]
        if not members:
            continue
        table = dataset.frames([e.episode_index for _, e in members], [*columns, "frame_index", "episode_index"])
        episode_column = table["episode_index"]
        camera_key_ = resolve_camera(dataset, camera) if preprocessor else None
        for number, episode in members:
            mask = episode_column == episode.episode_index
            observed = table[FEATURE_EE_POSE][mask]
            commanded = table[FEATURE_ACTION_EE_POSE][mask]
            where = f"{dataset.root.name} episode {episode.episode_index}"
            for key in columns:
                if not np.isfinite(table[key][mask]).all():
                    raise TrainingDataError(f"{where}: {key} has NaN or inf values")
            targets.append(table[FEATURE_TARGET_POINT][mask].astype(np.float32))
            poses.append(observed.astype(np.float32))
            labels.append(chunk_labels(observed, commanded, horizon, stride, where).astype(np.float32))
            owners.append(np.full(int(mask.sum()), number, dtype=np.int64))
            frames.append(table["frame_index"][mask].astype(np.int64))
            if preprocessor is not None and camera_key_ is not None:
                stream = dataset.iter_video_frames(episode.episode_index, camera_key_)
                images.append(np.stack([preprocessor(frame) for _, frame in stream]))
    return TrainingArrays(
        target_point=np.concatenate(targets),
        ee_pose=np.concatenate(poses),
        labels=np.concatenate(labels),
        episode=np.concatenate(owners),
        frame_index=np.concatenate(frames),
        images=np.concatenate(images) if images else None,
    )


def frame_resizer(size: int) -> Any:
    """RGB frame → ``(3, size, size)`` uint8 through the policy node's own preprocessing (OpenCV's blob call).

    The Preprocessor resizes in uint8 before converting, so with scale 1, mean 0 and std 1 its
    output holds exact integers: the images the runtime will normalise, bit for bit.
    """
    from robot_brain.inference.contract import ImageSpec
    from robot_brain.perception.preprocess import Preprocessor

    preprocessor = Preprocessor(ImageSpec(width=size, height=size, scale=1.0, mean=(0.0,), std=(1.0,)))

    def resize(frame: np.ndarray) -> np.ndarray:
        return preprocessor(frame, "rgb8")[0].astype(np.uint8)

    return resize


def _episode_stats(dataset: LeRobotDataset, episodes: Sequence[int], features: Sequence[str]) -> list[dict[str, Any]]:
    """Per-episode ``stats/<feature>/{mean,std,count,min,max}`` from ``meta/episodes`` for ``episodes``."""
    wanted = [f"stats/{name}/{stat}" for name in features for stat in ("mean", "std", "count", "min", "max")]
    rows: dict[int, dict[str, Any]] = {}
    for path in sorted((dataset.root / EPISODES_DIR).glob("*/*.parquet")):
        table = read_parquet(path)
        missing = [name for name in wanted if name not in table.column_names]
        if missing:
            raise TrainingDataError(f"{path}: expected per-episode statistics {missing[:2]}, found none")
        indices = table.column("episode_index").to_numpy()
        keep = np.isin(indices, np.asarray(list(episodes), dtype=np.int64))
        selected = table.filter(pa.array(keep))
        for row in selected.select(["episode_index", *wanted]).to_pylist():
            stats: dict[str, dict[str, np.ndarray]] = {}
            for name in features:
                stats[name] = {
                    stat: np.asarray(row[f"stats/{name}/{stat}"], dtype=np.float64)
                    for stat in ("mean", "std", "count", "min", "max")
                }
            rows[int(row["episode_index"])] = stats
    absent = [e for e in episodes if e not in rows]
    if absent:
        raise DatasetFormatError(f"{dataset.root}: no statistics for episodes {absent[:5]} in {EPISODES_DIR}")
    return [rows[e] for e in episodes]


@dataclass(frozen=True)
class FeatureStatistics:
    """Mean and standard deviation of one feature, and where they came from."""

    mean: np.ndarray
    std: np.ndarray
    source: str


def input_statistics(
    datasets: Sequence[LeRobotDataset], selection: Selection, features: Sequence[str]
) -> dict[str, FeatureStatistics]:
    """Dataset statistics of ``features`` over the included episodes (see the module docstring, point 3)."""
    if len(datasets) == 1 and not selection.excluded:
        stats = datasets[0].stats
        result = {}
        for name in features:
            if name not in stats:
                raise TrainingDataError(f"{datasets[0].root}: meta/stats.json has no statistics for {name!r}")
            result[name] = FeatureStatistics(
                np.asarray(stats[name]["mean"], dtype=np.float64),
                np.asarray(stats[name]["std"], dtype=np.float64),
                "meta/stats.json",
            )
        return result
    per_episode: list[dict[str, Any]] = []
    for position, dataset in enumerate(datasets):
        episodes = [e.episode_index for e in selection.included if e.dataset == position]
        if episodes:
            per_episode += _episode_stats(dataset, episodes, features)
    merged = feature_stats.aggregate(per_episode)
    source = f"LeRobot aggregation of the {len(per_episode)} included episodes' statistics (meta/episodes)"
    return {name: FeatureStatistics(merged[name]["mean"], merged[name]["std"], source) for name in features}


def floored(std: np.ndarray, floor: float) -> np.ndarray:
    """``std`` with every value below ``floor`` raised to it."""
    return np.maximum(np.asarray(std, dtype=np.float64), floor)


def label_statistics(labels: np.ndarray) -> FeatureStatistics:
    """Per-dimension (7) mean and floored std of ``(N, H, 7)`` labels, pooled over frames and waypoints."""
    flat = labels.reshape(-1, labels.shape[-1]).astype(np.float64)
    return FeatureStatistics(flat.mean(axis=0), floored(flat.std(axis=0), STD_FLOOR), "training frames' chunk labels")


def split_episodes(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Episode positions for training and for held-out validation (deterministic from ``seed``).

    With one episode, or ``fraction`` 0, nothing is held out (the export check then uses training frames).
    """
    order = np.random.default_rng(seed).permutation(count)
    held = 0 if count < 2 or fraction <= 0.0 else min(count - 1, max(1, round(fraction * count)))
    return np.sort(order[held:]), np.sort(order[:held])
