"""Retention: episodes recorded longer ago than their enrolment's retention period, erased.

``robot-brain data purge --expired`` and the factory call::

    from robot_brain.erasure.retention import plan_expired, purge_expired

    plan = plan_expired(data_root, now=...)          # changes nothing
    report = purge_expired(data_root, rebuild=False, now=...)

An episode of a person is *expired* once ``now`` is at or after its start plus the retention
period of its enrolment (:mod:`robot_brain.consent.legal`; the consent registry's
:meth:`~robot_brain.consent.registry.ConsentRegistry.retention` answers). Export and training
already refuse expired episodes like withdrawn consent; this erases them, with the purge's own
machinery (:mod:`robot_brain.erasure.purge`):

1. **Episodes removed**: every expired episode folder (discarded tombstones too), moved into
   ``episodes/.purging/`` then deleted. An episode being recorded is left alone.
2. **Datasets**: every dataset under ``<data root>/datasets/`` (and every export the audit log
   records that is still at its path) whose provenance holds an expired episode, whether or not
   the episode is still in the store, is marked **stale** (``STALE.json`` with reason
   ``retention``; training refuses it by its content hash, logged below), or with ``rebuild``
   exported again without the expired episodes (consent and retention checked again).
3. **Logged**: ``data.purged`` with ``"reason": "retention"``, the episode ids, the datasets and
   (per episode) pseudonym, recording time and expiry. The operators are not purged: their
   consent stays as it is, so no top-level ``operator`` names them (a model trained on them
   is still judged by their consent).

Non-human episodes (``scripted``, ``policy:…``) have no retention; episodes of an operator the
registry does not know, or enrolled before retention periods were recorded, are kept and
counted in the plan (``unknown``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from robot_brain.consent.events import append_audit
from robot_brain.consent.operators import is_pseudonym
from robot_brain.consent.registry import ConsentRegistry
from robot_brain.episodes.store import EpisodeStore
from robot_brain.erasure.purge import (
    AffectedDataset,
    DatasetOutcome,
    _candidate_datasets,
    _clean_leftovers,
    _dataset_episodes,
    _rebuild,
    _recorded_content_hash,
    _remove_episode,
    mark_stale,
)
from robot_brain.errors import UserError
from robot_brain.storage.paths import DataLayout
from robot_brain.storage.times import format_time, parse_time, require_aware, utc_now

__all__ = ["ExpiredEpisode", "ExpiryPlan", "ExpiryReport", "plan_expired", "purge_expired"]


@dataclass(frozen=True)
class ExpiredEpisode:
    """One episode past its retention period (pseudonym only)."""

    episode_id: str
    operator: str
    recorded_at: datetime
    retention_days: int
    expired_at: datetime
    state: str
    """Its state in the store; ``absent`` when only a dataset still holds it."""

    def to_json(self) -> dict[str, Any]:
        return {
            "episode_id": self.episode_id,
            "operator": self.operator,
            "recorded_at": format_time(self.recorded_at),
            "retention_days": self.retention_days,
            "expired_at": format_time(self.expired_at),
            "state": self.state,
        }


@dataclass
class ExpiryPlan:
    """What ``purge --expired`` would remove and mark at ``at``; computing it changes nothing."""

    data_root: Path
    at: datetime
    episodes: list[ExpiredEpisode]
    """Expired episodes in the store (to remove)."""
    datasets: list[AffectedDataset]
    """Datasets holding expired episodes (also ones no longer in the store)."""
    live: list[str]
    """Expired episodes being recorded right now (left alone)."""
    kept: int
    """Episodes of people inside their retention period."""
    unknown: list[str]
    """Episodes whose retention cannot be told (unknown operator, no period recorded, no start time)."""
    unreachable_copies: list[str]
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "data_root": str(self.data_root),
            "at": format_time(self.at),
            "episodes": [episode.to_json() for episode in self.episodes],
            "datasets": [
                {"path": str(d.path), "episodes": d.episodes, "frames": d.frames, "unfinished": d.unfinished}
                for d in self.datasets
            ],
            "live": list(self.live),
            "kept": self.kept,
            "unknown": list(self.unknown),
            "unreachable_copies": list(self.unreachable_copies),
            "problems": list(self.problems),
        }


@dataclass
class ExpiryReport:
    """What :func:`purge_expired` did; ``problems`` non-empty means it is not proven complete."""

    at: datetime
    episodes_removed: list[str]
    datasets: list[DatasetOutcome]
    expired: list[ExpiredEpisode]
    kept: int
    unknown: list[str]
    unreachable_copies: list[str]
    problems: list[str] = field(default_factory=list)
    audit_seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": format_time(self.at),
            "episodes_removed": list(self.episodes_removed),
            "datasets": [outcome.to_json() for outcome in self.datasets],
            "expired": [episode.to_json() for episode in self.expired],
            "kept": self.kept,
            "unknown": list(self.unknown),
            "unreachable_copies": list(self.unreachable_copies),
            "problems": list(self.problems),
            "audit_seq": self.audit_seq,
        }


def _expiry(
    registry: ConsentRegistry, operator: Any, start: Any, consent_id: Any, moment: datetime
) -> tuple[str, tuple[datetime, int, datetime] | None]:
    """(``"none"`` non-human | ``"unknown"`` | ``"kept"`` | ``"expired"``, (recorded, days, expiry) when known)."""
    if not isinstance(operator, str) or not is_pseudonym(operator):
        return ("unknown" if operator == "unknown" else "none"), None
    try:
        recorded = parse_time(start) if isinstance(start, str) else require_aware(start, "start")
    except (TypeError, ValueError):
        return "unknown", None
    found = registry.retention(operator, recorded_at=recorded, consent_id=consent_id if isinstance(consent_id, str)
                               else None, at=moment)
    if found is None:
        return "unknown", None
    days, ends = found
    return ("expired" if moment >= ends else "kept"), (recorded, days, ends)


def plan_expired(data_root: str | os.PathLike[str] | DataLayout | None, *, now: datetime | None = None) -> ExpiryPlan:
    """Every episode (and dataset episode) past its retention period at ``now`` (default: the present)."""
    moment = require_aware(now, "now") if now is not None else utc_now()
    layout = DataLayout.resolve(data_root)
    layout.require_root()
    registry = ConsentRegistry(layout)
    store = EpisodeStore(layout)
    expired: list[ExpiredEpisode] = []
    live: list[str] = []
    unknown: list[str] = []
    kept = 0
    for entry in store.list_episodes(include_discarded=True):
        # A manifest whose seal fails cannot be believed (an edited start_time would keep an episode
        # past its period): judge it by the bag's sealed copy, or list it as unknown.
        manifest = entry.manifest if entry.seal_error is None else entry.sealed_copy
        if manifest is None:
            unknown.append(entry.episode_id)
            continue
        verdict, known = _expiry(registry, manifest.operator, manifest.start_time, manifest.consent.id, moment)
        if verdict == "unknown":
            unknown.append(entry.episode_id)
        elif verdict == "kept":
            kept += 1
        elif verdict == "expired" and known is not None:
            if entry.live:
                live.append(entry.episode_id)
                continue
            expired.append(ExpiredEpisode(entry.episode_id, manifest.operator, *known, state=entry.state))
    people = frozenset(operator.pseudonym for operator in registry.operators()) | {e.operator for e in expired}
    roots, gone, problems = _candidate_datasets(layout, people)
    in_store = {episode.episode_id for episode in expired}
    datasets: list[AffectedDataset] = []
    for root in roots:
        found = _dataset_episodes(root)
        if found is None:
            continue
        items, unfinished = found
        ids: list[str] = []
        frames = 0
        for item in items:
            source = item.get("source") if isinstance(item.get("source"), Mapping) else {}
            episode_id = source.get("episode_id")
            consent = source.get("consent") if isinstance(source.get("consent"), Mapping) else {}
            verdict, _ = _expiry(registry, source.get("operator"), source.get("start_time"), consent.get("id"), moment)
            if verdict == "expired" or episode_id in in_store:
                ids.append(str(episode_id))
                frames += int(item.get("length", 0) or 0)
        if ids:
            datasets.append(AffectedDataset(root, list(dict.fromkeys(ids)), frames, unfinished))
    return ExpiryPlan(layout.root, moment, expired, datasets, live, kept, unknown, gone, problems)


def purge_expired(
    data_root: str | os.PathLike[str] | DataLayout | None,
    *,
    rebuild: bool = False,
    now: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExpiryReport:
    """Erase every episode past its retention period at ``now``; see the module docstring for the steps."""
    moment = require_aware(now, "now") if now is not None else utc_now()
    layout = DataLayout.resolve(data_root)
    plan = plan_expired(layout, now=moment)
    report = ExpiryReport(moment, [], [], list(plan.episodes), plan.kept, list(plan.unknown),
                          list(plan.unreachable_copies), list(plan.problems))
    report.problems += [f"episode {episode_id} is past its retention period but is being recorded: purge again "
                        "once it has ended" for episode_id in plan.live]
    try:
        _clean_leftovers(layout)
        store = EpisodeStore(layout)
        for episode in plan.episodes:
            try:
                _remove_episode(store, episode.episode_id)
            except UserError as error:
                report.problems.append(str(error))
                continue
            report.episodes_removed.append(episode.episode_id)
            if progress is not None:
                progress(f"removed expired episode {episode.episode_id}")
        removed = {episode.episode_id for episode in plan.episodes} | {
            episode_id for dataset in plan.datasets for episode_id in dataset.episodes
        }
        for dataset in plan.datasets:
            report.datasets.append(_handle(layout, dataset, removed, moment, rebuild, report))
            if progress is not None:
                progress(f"dataset {dataset.path}: {report.datasets[-1].action}")
    finally:
        if plan.episodes or plan.datasets or plan.live:
            entry = append_audit(
                layout,
                "data.purged",
                {
                    "reason": "retention",
                    "episodes": list(report.episodes_removed),
                    "expired": [episode.to_json() for episode in plan.episodes],
                    "datasets": [
                        {"path": str(d.path), "action": d.action, "content_hash": d.content_hash}
                        for d in report.datasets
                    ],
                    "unreachable_copies": list(report.unreachable_copies),
                    "complete": not report.problems and len(report.episodes_removed) == len(plan.episodes),
                },
                now=moment,
            )
            report.audit_seq = entry.seq
    return report


def _handle(
    layout: DataLayout, dataset: AffectedDataset, removed: set[str], moment: datetime, rebuild: bool,
    report: ExpiryReport,
) -> DatasetOutcome:
    if rebuild:
        try:
            return _rebuild(layout, dataset, None, removed, moment)
        except (UserError, OSError) as error:
            report.problems.append(f"{dataset.path}: not rebuilt ({error}); marked stale instead")
            mark_stale(dataset.path, None, dataset.episodes, moment, reason="retention")
            return DatasetOutcome(dataset.path, "stale", f"rebuild failed: {error}",
                                  _recorded_content_hash(dataset.path))
    mark_stale(dataset.path, None, dataset.episodes, moment, reason="retention")
    detail = f"holds {len(dataset.episodes)} expired episodes ({dataset.frames} frames)"
    # The content hash goes into the audit log too: deleting STALE.json does not make the data trainable again.
    return DatasetOutcome(dataset.path, "stale", detail + ("; unfinished export" if dataset.unfinished else ""),
                          _recorded_content_hash(dataset.path))
