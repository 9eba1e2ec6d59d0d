"""A trained model's provenance: what it learned from, under whose consent, and whether that still holds.

Training writes one JSON document into the ONNX file's ``metadata_props`` under
:data:`METADATA_KEY` (``robot_brain.provenance``), beside the contract (``robot_brain.contract``).
Format ``robot_brain.model_provenance/1``::

    {
      "format": "robot_brain.model_provenance/1",
      "created": "2026-12-01T08:00:00.000000Z",
      "model": {"name": "reach_state_bc", "policy": "state", "action_space": "ee_pose_delta",
                "horizon": 10, "dt": 0.1, "inputs": ["target_point", "ee_pose"]},
      "datasets": [{"name": "reach-panda", "content_hash": "<sha256>", "hash_format": "robot_brain.dataset-hash/1",
                    "fps": 10, "robot_type": "panda", "total_episodes": 12, "total_frames": 480}],
      "consent_check": {"scope": "train", "checked_at": "...Z", "rule": "..."},
      "episodes": [{"dataset": 0, "episode_index": 0, "episode_id": "...", "frames": 40, "task": "...",
                    "operator": "op-1a2b3c4d5e6f7a8b", "operator_kind": "human", "robot": "panda",
                    "urdf_sha256": "...", "split": "train",
                    "consent_at_recording": {"id": "c-...", "scopes": ["record", "train"]},
                    "consent_at_training": {"consent_id": "c-...", "scopes": ["record", "train"],
                                            "expires_at": null, "checked_at": "...Z", "reason": "..."}}],
      "excluded": [{"dataset": 0, "episode_index": 3, "episode_id": "...", "operator": "op-...",
                    "reason": "'train' of consent c-... was revoked at ..."}],
      "operators": {"op-1a2b3c4d5e6f7a8b": {"kind": "human", "episodes": 6, "frames": 240,
                    "consent_ids": ["c-..."], "scopes_at_training": ["record", "train"], "expires_at": null},
                    "scripted": {"kind": "scripted", "episodes": 6, "frames": 240, "consent_ids": [], ...}},
      "training": {"policy": "state", "horizon": 10, "stride": 1, "steps": 2000, "batch_size": 64, "lr": 0.001,
                   "seed": 0, "nproc": 1, "threads": 1, "device": "cpu", ...},
      "normalization": {"inputs": {...}, "actions": {...}, "relative_scale_m": 0.21},
      "result": {"steps": 2000, "final_loss": 0.0123, "validation_loss": 0.02, "validation_position_error_mm": 3.1,
                 "train_seconds": 41.2, "steps_per_second": 48.5,
                 "onnx_check": {"frames": 256, "max_abs_diff": 4.8e-07, "split": "validation"}},
      "software": {"package": "robot_brain", "version": "0.1.0", "git_commit": "...", "git_dirty": false,
                   "python": "3.11.x", "torch": "2.13.0+cpu", "onnx": "...", "onnxruntime": "...", "numpy": "..."}
    }

Operators are pseudonyms (``op-…``) or non-human ids; no name is ever written
(:func:`~robot_brain.datasets.dataset_provenance.check_no_personal_data` runs before embedding).

:func:`check_model_provenance` answers, for the registry of a data root **now**: may this
model still have been trained on these people's data? An operator is flagged when the
registry no longer grants ``train`` (revoked, expired, superseded by a consent without it),
when the operator was forgotten (right to erasure), when the audit log records a purge of
their data, when the registry does not know the pseudonym, or when there is no registry to
ask. Torch-free: ``robot-brain provenance`` needs only onnx.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import onnx
from onnx import helper

from robot_brain.consent.audit import read_audit
from robot_brain.consent.operators import ConsentError, UnknownOperatorError, non_human_kind
from robot_brain.consent.registry import ConsentRegistry
from robot_brain.datasets.dataset_provenance import check_no_personal_data
from robot_brain.errors import UserError
from robot_brain.storage.files import DataFileError
from robot_brain.storage.paths import DataLayout
from robot_brain.storage.times import format_time, utc_now

METADATA_KEY = "robot_brain.provenance"
"""Key of the ``metadata_props`` entry that holds the model's provenance JSON."""
PROVENANCE_FORMAT = "robot_brain.model_provenance/1"


class ModelProvenanceError(UserError):
    """Not an ONNX model, or a model that carries no (readable) provenance."""


class NoProvenanceError(ModelProvenanceError):
    """The model carries no training provenance: hand-written, or trained by another tool."""


def software_record(extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """robot_brain's version and git commit (the episode store's helper) plus the libraries that shaped the model."""
    import numpy
    import onnxruntime

    from robot_brain.episodes.manifest import software_version

    version = software_version()
    record: dict[str, Any] = {
        "package": version.package,
        "version": version.version,
        "git_commit": version.git_commit,
        "git_dirty": version.git_dirty,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    record.update(extra or {})
    return record


def operator_summary(episodes: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per operator pseudonym: kind, episodes, frames, consent ids and scopes at training time."""
    operators: dict[str, dict[str, Any]] = {}
    for episode in episodes:
        operator = str(episode.get("operator"))
        consent = episode.get("consent_at_training") or {}
        entry = operators.setdefault(
            operator,
            {
                "kind": episode.get("operator_kind"),
                "episodes": 0,
                "frames": 0,
                "consent_ids": [],
                "scopes_at_training": [],
                "expires_at": None,
            },
        )
        entry["episodes"] += 1
        entry["frames"] += int(episode.get("frames", 0))
        consent_id = consent.get("consent_id")
        if consent_id and consent_id not in entry["consent_ids"]:
            entry["consent_ids"].append(consent_id)
        for scope in consent.get("scopes") or []:
            if scope not in entry["scopes_at_training"]:
                entry["scopes_at_training"].append(scope)
        entry["expires_at"] = consent.get("expires_at") or entry["expires_at"]
    for entry in operators.values():
        entry["scopes_at_training"].sort()
    return dict(sorted(operators.items()))


def build_model_provenance(
    *,
    model: Mapping[str, Any],
    datasets: Sequence[Mapping[str, Any]],
    episodes: Sequence[Mapping[str, Any]],
    excluded: Sequence[Mapping[str, Any]],
    checked_at: datetime,
    training: Mapping[str, Any],
    normalization: Mapping[str, Any],
    result: Mapping[str, Any],
    software: Mapping[str, Any],
) -> dict[str, Any]:
    """The provenance document (see the module docstring); refuses anything that would carry a name."""
    document = {
        "format": PROVENANCE_FORMAT,
        "created": format_time(utc_now()),
        "model": dict(model),
        "datasets": [dict(d) for d in datasets],
        "consent_check": {
            "scope": "train",
            "checked_at": format_time(checked_at),
            "rule": "every episode's operator was checked against the data root's consent registry at training "
            "time; non-human operators (scripted, policy:<sha>) need no consent",
        },
        "episodes": [dict(e) for e in episodes],
        "excluded": [dict(e) for e in excluded],
        "operators": operator_summary(episodes),
        "training": dict(training),
        "normalization": dict(normalization),
        "result": dict(result),
        "software": dict(software),
    }
    check_no_personal_data(document, "model provenance")
    return json.loads(json.dumps(document))


def embed_provenance(model: onnx.ModelProto, document: Mapping[str, Any]) -> onnx.ModelProto:
    """Store (or replace) the provenance JSON in ``model.metadata_props``; returns the same model."""
    props = {p.key: p.value for p in model.metadata_props if p.key != METADATA_KEY}
    props[METADATA_KEY] = json.dumps(document, separators=(",", ":"), sort_keys=True)
    del model.metadata_props[:]
    helper.set_model_props(model, props)
    return model


@dataclass(frozen=True)
class ModelRecord:
    """An ONNX file's identity, provenance and contract (as stored; the contract is not validated here)."""

    path: Path
    sha256: str
    provenance: dict[str, Any]
    contract: dict[str, Any] | None


def read_model_provenance(path: str | os.PathLike[str]) -> ModelRecord:
    """Read the provenance of the ONNX file at ``path``; :class:`ModelProvenanceError` when there is none."""
    source = Path(path)
    if not source.is_file():
        raise ModelProvenanceError(f"{source}: expected an ONNX model file, found nothing")
    data = source.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception:  # protobuf's DecodeError and friends
        raise ModelProvenanceError(f"{source}: expected an ONNX model, found a file that is not one") from None
    if not model.graph.node and not model.graph.output:
        raise ModelProvenanceError(f"{source}: expected an ONNX model, found a file that is not one")
    metadata = {p.key: p.value for p in model.metadata_props}
    text = metadata.get(METADATA_KEY)
    if text is None:
        raise NoProvenanceError(
            f"{source}: expected training provenance in metadata '{METADATA_KEY}', found none "
            "(a hand-written model, or one trained elsewhere)"
        )
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelProvenanceError(f"{source}: metadata '{METADATA_KEY}' is not JSON ({error.msg})") from None
    if not isinstance(document, dict) or document.get("format") != PROVENANCE_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ModelProvenanceError(f"{source}: expected provenance format {PROVENANCE_FORMAT}, found {found!r}")
    if not isinstance(document.get("episodes"), list) or not isinstance(document.get("operators"), dict):
        raise ModelProvenanceError(f"{source}: provenance lacks its 'episodes' and 'operators' lists")
    contract = None
    if "robot_brain.contract" in metadata:
        try:
            contract = json.loads(metadata["robot_brain.contract"])
        except json.JSONDecodeError:
            contract = None
    return ModelRecord(source, hashlib.sha256(data).hexdigest(), document, contract)


# --------------------------------------------------------------------------------------------
# Checking against the current registry
# --------------------------------------------------------------------------------------------


@dataclass
class OperatorStatus:
    """One operator of a model, checked now: ``flagged`` when training on their data is no longer covered."""

    operator: str
    kind: str
    episodes: int
    frames: int
    consent_ids: list[str]
    scopes_at_training: list[str]
    status: str
    """``ok``, ``not needed`` (non-human), ``revoked``, ``expired``, ``no train consent``, ``forgotten``,
    ``purged``, ``unknown`` (not in this registry), ``unverifiable`` (no registry)."""
    flagged: bool
    problems: list[str] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)
    """The training-time consent records as the registry holds them now (dates, revocations)."""
    scopes_now: list[str] = field(default_factory=list)
    current_consent: str | None = None
    episode_refs: list[dict[str, Any]] = field(default_factory=list)
    """Which episodes of theirs the model learned from: dataset name and content hash, index, episode id."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "kind": self.kind,
            "episodes": self.episodes,
            "frames": self.frames,
            "episode_refs": self.episode_refs,
            "consent_ids_at_training": self.consent_ids,
            "scopes_at_training": self.scopes_at_training,
            "status": self.status,
            "flagged": self.flagged,
            "problems": self.problems,
            "scopes_now": self.scopes_now,
            "current_consent": self.current_consent,
            "consents": self.consents,
        }


@dataclass
class ProvenanceReport:
    """A model's provenance checked against a data root's consent registry at ``checked_at``."""

    model: ModelRecord
    data_root: Path
    checked_at: datetime
    operators: list[OperatorStatus]
    problems: list[str] = field(default_factory=list)
    """Problems not tied to one operator (an unreadable audit log)."""

    @property
    def flagged(self) -> list[OperatorStatus]:
        return [operator for operator in self.operators if operator.flagged]

    @property
    def ok(self) -> bool:
        return not self.flagged and not self.problems

    def to_dict(self) -> dict[str, Any]:
        document = self.model.provenance
        episodes = document.get("episodes", [])
        return {
            "model": str(self.model.path),
            "sha256": self.model.sha256,
            "name": (document.get("model") or {}).get("name"),
            "trained": document.get("created"),
            "consent_checked_at_training": (document.get("consent_check") or {}).get("checked_at"),
            "checked_at": format_time(self.checked_at),
            "data_root": str(self.data_root),
            "ok": self.ok,
            "datasets": [
                {**dataset, "episodes_used": [e.get("episode_index") for e in episodes if e.get("dataset") == position]}
                for position, dataset in enumerate(document.get("datasets", []))
            ],
            "episodes": len(episodes),
            "excluded_at_training": len(document.get("excluded", [])),
            "frames": sum(int(e.get("frames", 0)) for e in document.get("episodes", [])),
            "operators": [operator.to_dict() for operator in self.operators],
            "flagged": [operator.operator for operator in self.flagged],
            "problems": self.problems,
        }


def _purges(layout: DataLayout) -> tuple[dict[str, list[str]], list[str]]:
    """Pseudonym → purge events recorded in the audit log (``*.purged`` kinds), and read problems."""
    try:
        entries = read_audit(layout)
    except DataFileError as error:
        return {}, [f"audit log unreadable, purges cannot be checked: {error}"]
    purges: dict[str, list[str]] = {}
    for entry in entries:
        if "purge" not in entry.kind:
            continue
        details = entry.details if isinstance(entry.details, Mapping) else {}
        named = [details.get("operator"), *list(details.get("operators") or [])]
        for operator in named:
            if isinstance(operator, str):
                event = f"{entry.kind} at {format_time(entry.time)} (audit #{entry.seq})"
                purges.setdefault(operator, []).append(event)
    return purges, []


def check_model_provenance(
    record: ModelRecord, data_root: str | os.PathLike[str] | DataLayout | None = None, *, at: datetime | None = None
) -> ProvenanceReport:
    """Check every operator of ``record`` against the consent registry (and audit log) of ``data_root`` now."""
    layout = DataLayout.resolve(data_root)
    moment = at or utc_now()
    registry = ConsentRegistry(layout)
    registry_exists = layout.registry_path.is_file()
    purges, problems = _purges(layout) if layout.audit_log_path.is_file() else ({}, [])
    statuses: list[OperatorStatus] = []
    for operator, entry in sorted(record.provenance.get("operators", {}).items()):
        entry = entry if isinstance(entry, Mapping) else {}
        status = OperatorStatus(
            operator=operator,
            kind=str(entry.get("kind") or "unknown"),
            episodes=int(entry.get("episodes", 0)),
            frames=int(entry.get("frames", 0)),
            consent_ids=[str(c) for c in entry.get("consent_ids") or []],
            scopes_at_training=[str(s) for s in entry.get("scopes_at_training") or []],
            status="ok",
            flagged=False,
            episode_refs=_episode_refs(record.provenance, operator),
        )
        statuses.append(status)
        try:
            kind = non_human_kind(operator)
        except ConsentError as error:
            status.status, status.flagged = "unknown", True
            status.problems.append(str(error))
            continue
        if kind is not None:
            status.kind, status.status = kind, "not needed"
            continue
        if not registry_exists:
            status.status, status.flagged = "unverifiable", True
            status.problems.append(f"no consent registry at {layout.registry_path} to confirm this operator's consent")
            continue
        _check_person(registry, status, moment)
        for event in purges.get(operator, []):
            status.flagged = True
            if status.status == "ok":
                status.status = "purged"
            status.problems.append(f"their data was purged: {event}")
    return ProvenanceReport(record, layout.root, moment, statuses, problems)


def _episode_refs(document: Mapping[str, Any], operator: str) -> list[dict[str, Any]]:
    datasets = document.get("datasets") or []
    refs = []
    for episode in document.get("episodes") or []:
        if episode.get("operator") != operator:
            continue
        position = episode.get("dataset")
        dataset = datasets[position] if isinstance(position, int) and 0 <= position < len(datasets) else {}
        refs.append(
            {
                "dataset": dataset.get("name"),
                "content_hash": dataset.get("content_hash"),
                "episode_index": episode.get("episode_index"),
                "episode_id": episode.get("episode_id"),
                "segment": episode.get("segment"),
            }
        )
    return refs


def _check_person(registry: ConsentRegistry, status: OperatorStatus, moment: datetime) -> None:
    """Fill ``status`` for a human operator from the registry (never reads or reports the name)."""
    try:
        enrolled = registry.operator(status.operator)
    except UnknownOperatorError:
        status.status, status.flagged = "unknown", True
        status.problems.append("this registry does not know the pseudonym (another site, or the registry was reset)")
        return
    decision = registry.check(status.operator, "train", at=moment)
    status.scopes_now = list(decision.scopes)
    status.current_consent = decision.consent_id
    for consent_id in status.consent_ids:
        try:
            record = registry.consent(consent_id)
        except ConsentError:
            status.problems.append(f"consent {consent_id} used at training is not in this registry")
            status.flagged = True
            continue
        document = record.to_dict()
        document["status_now"] = record.status(moment)
        status.consents.append(document)
    if enrolled.forgotten_at is not None:
        status.status, status.flagged = "forgotten", True
        status.problems.append(f"operator forgotten (right to erasure) at {format_time(enrolled.forgotten_at)}")
        return
    if decision.allowed:
        return
    status.flagged = True
    reason = decision.reason
    train_revoked = [c for c in status.consents if "train" in (c.get("revoked_at") or {})]
    if "revoked" in reason or train_revoked:
        status.status = "revoked"
    elif "expired" in reason:
        status.status = "expired"
    else:
        status.status = "no train consent"
    status.problems.append(f"'train' not granted now: {reason}")


#: Operator statuses this site can confirm are not consented any more: a model trained on them is refused.
WITHDRAWN_STATUSES = ("unknown", "forgotten", "revoked", "expired", "no train consent", "purged")


@dataclass(frozen=True)
class DeploymentCheck:
    """May a model drive an arm here, as far as the people it was trained on are concerned."""

    refusal: str
    """Why not ("" when it may); names pseudonyms only."""
    warning: str
    """What could not be confirmed ("" when nothing)."""


def check_model_for_deployment(path: str | os.PathLike[str],
                               data_root: str | os.PathLike[str] | DataLayout | None = None) -> DeploymentCheck:
    """The policy node's gate: refuse a model whose provenance names people whose consent the registry here
    says is revoked, expired, forgotten or purged (or unknown to it), or whose provenance is unreadable.

    A model without provenance (hand-written, or from another tool) was not trained on recorded
    people here: it runs, with a warning. So does one whose people this site cannot check (no
    registry here: a cell computer), saying where to check it (``robot-brain provenance``).
    """
    try:
        record = read_model_provenance(path)
    except NoProvenanceError:
        return DeploymentCheck("", f"{path}: no training provenance (not trained by robot-brain train); not checked")
    except ModelProvenanceError as error:
        return DeploymentCheck(f"its provenance cannot be read: {error}", "")
    report = check_model_provenance(record, data_root)
    withdrawn = [status for status in report.operators if status.status in WITHDRAWN_STATUSES]
    if withdrawn:
        people = ", ".join(f"{status.operator} ({status.status})" for status in withdrawn)
        return DeploymentCheck(
            f"it was trained on episodes of operators whose consent no longer covers it: {people} "
            f"(registry {report.data_root}; robot-brain provenance {record.path} says more; retrain without them)",
            "",
        )
    if report.problems:
        return DeploymentCheck(f"its provenance cannot be checked: {report.problems[0]}", "")
    unverifiable = [status.operator for status in report.flagged]
    if unverifiable:
        return DeploymentCheck("", f"consent of {', '.join(unverifiable)} not verifiable here (no consent registry "
                                   f"at {report.data_root}); check it where the model was trained: "
                                   f"robot-brain provenance {record.path}")
    return DeploymentCheck("", "")
