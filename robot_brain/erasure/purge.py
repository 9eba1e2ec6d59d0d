"""The right to erasure: every episode of one operator removed, every dataset made from them marked or rebuilt.

``robot-brain data purge --operator NAME`` and the factory call::

    from robot_brain.erasure.purge import plan_purge, purge_operator

    plan = plan_purge(data_root, "Ada Lovelace")      # or her pseudonym op-…; changes nothing
    report = purge_operator(data_root, "Ada Lovelace", rebuild=False, keep_enrollment=False)

What a purge does, in this order (each step durable before the next):

1. **Consent revoked first** (unless ``keep_enrollment``): the operator is a person the
   registry knows (a name or a pseudonym; a pseudonym the registry lost is accepted too, its
   episodes are found by it), and from this instant no recording or export of theirs can start,
   so no episode can begin after the list below is made. A recorder discards an episode of
   theirs in progress (it checks consent again while recording); the purge waits for that.
2. **Checks**: none of their episodes is being recorded any more. When one still is, the purge
   stops there (consent stays revoked) and says so.
3. **Episodes removed**: every episode folder whose manifest names the pseudonym, discarded
   tombstones and incomplete ones included, with its bag, URDF copy, damaged original and any
   recovery scratch. A manifest whose seal does not check (edited, unsealed) never blocks the
   purge: it is erased when it names the pseudonym, or when the sealed copy of the final
   manifest in its bag's ``metadata.yaml`` does (an operator edited to ``scripted``); one that
   names someone else and has no sealed copy is listed as **unverified**: whose it is cannot be
   proven (it is never exported either), so it is left for a person to check. Each folder is
   first renamed into ``episodes/.purging/`` (atomic), then deleted; a crash in between leaves
   it there, and the next purge deletes it.
4. **Datasets**: every dataset under ``<data_root>/datasets/`` (and every export recorded in
   the audit log that is still at its path) whose ``meta/provenance.json`` names those
   episodes or that pseudonym, finished or not, is marked **stale**: ``STALE.json`` beside
   ``meta/`` (pseudonym, episode ids, time; the LeRobot reader refuses such a dataset) and a
   warning at the top of its card. With ``rebuild`` it is exported again from its remaining
   episodes with its original options (consent checked again), and the new dataset replaces
   the old one; a dataset with no episode left is deleted. A stale dataset still holds the
   erased person's data: rebuild it or delete it.
5. **Forgotten** in the consent registry (unless ``keep_enrollment``): the name is dropped,
   the pseudonym's consent history stays as evidence.
6. **Logged**: ``data.purged`` in the audit log with the pseudonym, the episode ids and the
   datasets affected, never the name. Copies exported outside the data root that are no longer
   where the audit log says are listed: they left the site, so their recipients must be told.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from robot_brain.consent.audit import AuditLogError, read_audit
from robot_brain.consent.events import append_audit
from robot_brain.consent.operators import UnknownOperatorError, is_pseudonym, non_human_kind
from robot_brain.consent.registry import ConsentRegistry
from robot_brain.datasets.dataset_provenance import CARD_PATH, PROVENANCE_PATH
from robot_brain.datasets.export import EXPORT_FORMAT, export_episodes, path_inside
from robot_brain.datasets.lerobot_format import INCOMPLETE_MARKER, STAGING_DIR
from robot_brain.datasets.lerobot_reader import STALE_MARKER
from robot_brain.episodes.store import LOCKS_DIR, RECOVERY_DIR, EpisodeStore
from robot_brain.episodes.writer import EpisodeLock
from robot_brain.errors import UserError
from robot_brain.storage.files import DataFileError, atomic_write_bytes, fsync_directory, read_json_file
from robot_brain.storage.paths import DataLayout
from robot_brain.storage.times import format_time, require_aware, utc_now

__all__ = [
    "STALE_MARKER",
    "DatasetOutcome",
    "PurgeError",
    "PurgePlan",
    "PurgeReport",
    "mark_stale",
    "plan_purge",
    "purge_operator",
]

PURGING_DIR = ".purging"
STALE_FORMAT = "robot_brain.dataset_stale/1"
CARD_BEGIN = "<!-- robot_brain:stale -->"
CARD_END = "<!-- /robot_brain:stale -->"


class PurgeError(UserError):
    """A purge that cannot start: unknown operator, a non-human one, an episode being recorded."""


@dataclass(frozen=True)
class AffectedDataset:
    """A dataset that holds some of the operator's episodes (found by episode id or by pseudonym)."""

    path: Path
    episodes: list[str]
    """Source episode ids of the operator in it."""
    frames: int
    unfinished: bool


@dataclass
class PurgePlan:
    """What a purge would touch; computing it changes nothing (``robot-brain data purge`` shows it to confirm)."""

    data_root: Path
    operator: str
    """The pseudonym (never the name)."""
    enrolled: bool
    forgotten: bool
    episodes: list[tuple[str, str]]
    """(episode id, state) of every episode of the operator, discarded tombstones included."""
    live: list[str]
    unattributed: list[str]
    """Episodes whose manifest is unreadable or was never written: whose they are cannot be told."""
    datasets: list[AffectedDataset]
    unreachable_copies: list[str]
    """Exports of theirs recorded in the audit log that are no longer at their path."""
    problems: list[str] = field(default_factory=list)
    """What could not be checked (an unreadable audit log)."""
    unverified: list[str] = field(default_factory=list)
    """Episodes of someone else by a manifest whose seal does not check: they may have been theirs."""

    def to_json(self) -> dict[str, Any]:
        return {
            "data_root": str(self.data_root),
            "operator": self.operator,
            "enrolled": self.enrolled,
            "episodes": [{"episode_id": i, "state": s} for i, s in self.episodes],
            "live": list(self.live),
            "unattributed": list(self.unattributed),
            "unverified": list(self.unverified),
            "datasets": [
                {"path": str(d.path), "episodes": d.episodes, "frames": d.frames, "unfinished": d.unfinished}
                for d in self.datasets
            ],
            "unreachable_copies": list(self.unreachable_copies),
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class DatasetOutcome:
    """What the purge did to one dataset: ``stale``, ``rebuilt`` or ``removed``."""

    path: Path
    action: str
    detail: str
    content_hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "action": self.action, "detail": self.detail, "content_hash": self.content_hash}


@dataclass
class PurgeReport:
    """What :func:`purge_operator` did; ``problems`` non-empty means the purge is not proven complete."""

    operator: str
    episodes_removed: list[str]
    datasets: list[DatasetOutcome]
    consent: str
    """``forgotten``, ``kept`` (``keep_enrollment``), ``already forgotten`` or ``not enrolled``."""
    unattributed: list[str]
    unreachable_copies: list[str]
    problems: list[str] = field(default_factory=list)
    audit_seq: int | None = None
    unverified: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "episodes_removed": list(self.episodes_removed),
            "datasets": [outcome.to_json() for outcome in self.datasets],
            "consent": self.consent,
            "unattributed": list(self.unattributed),
            "unverified": list(self.unverified),
            "unreachable_copies": list(self.unreachable_copies),
            "problems": list(self.problems),
            "audit_seq": self.audit_seq,
        }


# -- finding what belongs to the operator -----------------------------------------------------


def _resolve(registry: ConsentRegistry, operator: str) -> tuple[str, bool, bool]:
    """(pseudonym, enrolled, already forgotten); ``PurgeError`` for non-human or unknown operators."""
    try:
        kind = non_human_kind(operator)
    except UserError as error:
        raise PurgeError(str(error)) from None
    if kind is not None:
        raise PurgeError(
            f"operator '{operator}' is not a person ({kind}): erasure is for people; "
            "delete machine-driven episodes by hand if you must"
        )
    try:
        enrolled = registry.operator(operator)
    except UnknownOperatorError:
        if is_pseudonym(operator):
            return operator, False, False
        raise PurgeError(
            f"unknown operator: no one is enrolled under that name in {registry.layout.registry_path}; if they were "
            "forgotten already, give their pseudonym (op-…, as `robot-brain data ls` and dataset provenance show it)"
        ) from None
    return enrolled.pseudonym, True, enrolled.forgotten_at is not None


def _dataset_episodes(root: Path) -> tuple[list[dict[str, Any]], bool] | None:
    """The per-episode provenance of a finished dataset, or of an unfinished export's staged episodes."""
    provenance_path = root / PROVENANCE_PATH
    if provenance_path.is_file():
        document = read_json_file(provenance_path, what="the dataset provenance")
        episodes = document.get("episodes") if isinstance(document, dict) else None
        if not isinstance(episodes, list):
            raise DataFileError(f"{provenance_path}: expected an 'episodes' list")
        return [e for e in episodes if isinstance(e, dict)], False
    if (root / INCOMPLETE_MARKER).is_file():
        staged = []
        for path in sorted((root / STAGING_DIR).glob("episode-*/episode.json")):
            meta = read_json_file(path, what="the staged episode")
            if isinstance(meta, dict):
                staged.append({"length": meta.get("length", 0), "source": meta.get("provenance") or {}})
        return staged, True
    return None


def _candidate_datasets(
    layout: DataLayout, pseudonym: str | frozenset[str]
) -> tuple[list[Path], list[str], list[str]]:
    """(dataset roots to check, exports of the operator(s) that are gone, problems reading the audit log)."""
    pseudonyms = frozenset({pseudonym}) if isinstance(pseudonym, str) else pseudonym
    roots: dict[str, Path] = {}
    base = layout.datasets_dir
    if base.is_dir():
        for marker in (PROVENANCE_PATH, INCOMPLETE_MARKER):
            for found in base.rglob(Path(marker).name):
                root = found.parent.parent if marker == PROVENANCE_PATH else found.parent
                relative = root.relative_to(base).parts
                if marker == PROVENANCE_PATH and found.parent.name != "meta":
                    continue
                if any(part.startswith(".") for part in relative):
                    continue  # staging, rebuilds in progress, trash
                roots.setdefault(os.path.realpath(root), root)
    gone: list[str] = []
    problems: list[str] = []
    try:
        entries = read_audit(layout)
    except AuditLogError as error:
        entries = ()
        problems.append(f"audit log unreadable, exports outside {base} not checked: {error}")
    scanned = {hashlib.sha256(text.encode("utf-8")).hexdigest()
               for root in roots.values() for text in (str(root), os.path.realpath(root))}
    for entry in entries:
        if entry.kind != "dataset.exported" or not pseudonyms.intersection(entry.details.get("operators") or []):
            continue
        recorded = entry.details.get("dataset")
        withheld = entry.details.get("dataset_path_sha256")
        if isinstance(withheld, str) and withheld not in scanned:
            # Its path held a person's name, so the log has only the path's hash: not reachable from here.
            gone.append(f"an export of {format_time(entry.time)} whose path the audit log withholds (it holds a "
                        f"person's name; sha256 of the path {withheld})")
            continue
        if not isinstance(recorded, str) or not os.path.isabs(recorded):
            continue
        path = Path(recorded)
        left = entry.details.get("leaves_data_root") is True
        # Exports inside the root are found by the scan above; one recorded inside another root (a copied
        # data root's log) belongs to that root.
        if not left and not path_inside(path, layout.root):
            continue
        if path.is_dir():
            roots.setdefault(os.path.realpath(path), path)
        elif left and recorded not in gone:
            gone.append(recorded)
    return sorted(roots.values()), gone, problems


def plan_purge(data_root: str | os.PathLike[str] | DataLayout | None, operator: str) -> PurgePlan:
    """What purging ``operator`` (a name or a pseudonym) would remove and mark; changes nothing."""
    layout = DataLayout.resolve(data_root)
    layout.require_root()
    registry = ConsentRegistry(layout)
    pseudonym, enrolled, forgotten = _resolve(registry, operator)
    store = EpisodeStore(layout)
    episodes: list[tuple[str, str]] = []
    live: list[str] = []
    unattributed: list[str] = []
    unverified: list[str] = []
    for entry in store.list_episodes(include_discarded=True):
        if entry.manifest is None or entry.manifest.operator == "unknown":
            unattributed.append(entry.episode_id)
            continue
        # An edited manifest may name anyone: the bag's sealed copy still says whose the episode is.
        named = {entry.manifest.operator} | ({entry.sealed_copy.operator} if entry.sealed_copy else set())
        if pseudonym not in named:
            if entry.seal_error is not None and entry.sealed_copy is None:
                unverified.append(entry.episode_id)
            continue
        episodes.append((entry.episode_id, entry.state))
        if entry.live:
            live.append(entry.episode_id)
    ids = {episode_id for episode_id, _ in episodes}
    roots, gone, problems = _candidate_datasets(layout, pseudonym)
    datasets = []
    for root in roots:
        found = _dataset_episodes(root)
        if found is None:
            continue
        items, unfinished = found
        theirs = [
            item
            for item in items
            if (item.get("source") or {}).get("operator") == pseudonym
            or (item.get("source") or {}).get("episode_id") in ids
        ]
        if theirs:
            source_ids = list(dict.fromkeys(str((item.get("source") or {}).get("episode_id")) for item in theirs))
            frames = sum(int(item.get("length", 0) or 0) for item in theirs)
            datasets.append(AffectedDataset(root, source_ids, frames, unfinished))
    return PurgePlan(
        layout.root, pseudonym, enrolled, forgotten, episodes, live, unattributed, datasets, gone, problems, unverified
    )


# -- marking, rebuilding, removing ------------------------------------------------------------


def mark_stale(
    dataset: str | os.PathLike[str], operator: str | None, episode_ids: Sequence[str], at: datetime,
    *, reason: str = "erasure",
) -> None:
    """Write (or extend) ``STALE.json`` and put the warning at the top of the dataset card.

    ``reason``: ``erasure`` (an operator's purge) or ``retention`` (episodes past their retention
    period, ``operator`` then ``None``).
    """
    root = Path(dataset)
    marker = root / STALE_MARKER
    document: dict[str, Any] = {"format": STALE_FORMAT, "stale_since": format_time(at), "purges": []}
    if marker.is_file():
        try:
            existing = json.loads(marker.read_text(encoding="utf-8"))
            if isinstance(existing, dict) and isinstance(existing.get("purges"), list):
                document = existing
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            pass  # rewritten whole below: the marker's presence is what matters
    purge: dict[str, Any] = {"operator": operator, "episodes": list(episode_ids), "at": format_time(at)}
    if reason != "erasure":
        purge["reason"] = reason
    document["purges"].append(purge)
    document["note"] = (
        "Episodes this dataset was made from were erased (right to erasure, or their retention period was over). "
        "It still holds their data: do not train on it; rebuild it without them (robot-brain data purge "
        "--operator PSEUDONYM --rebuild, or --expired --rebuild) or delete it."
    )
    atomic_write_bytes(marker, (json.dumps(document, indent=4) + "\n").encode("utf-8"), mode=0o600)
    card = root / CARD_PATH
    if card.is_file():
        atomic_write_bytes(card, _stale_card(card.read_text(encoding="utf-8"), document).encode("utf-8"), mode=0o600)


def _stale_card(text: str, document: dict[str, Any]) -> str:
    """The card with the stale warning (replacing an earlier one) right after its YAML header."""
    if CARD_BEGIN in text and CARD_END in text:
        before, rest = text.split(CARD_BEGIN, 1)
        text = before + rest.split(CARD_END, 1)[1].lstrip("\n")
    purges = document.get("purges") or []
    lines = [
        CARD_BEGIN,
        "> **Stale dataset: do not train on it.** Episodes it was made from were erased at their operator's "
        "request (right to erasure) or at the end of their retention period, and this dataset still holds them. "
        "Rebuild it without them (`robot-brain data purge --operator PSEUDONYM --rebuild`, or `--expired "
        "--rebuild`) or delete it. See `STALE.json`.",
        ">",
    ]
    for purge in purges:
        if isinstance(purge, dict):
            episodes = ", ".join(f"`{e}`" for e in purge.get("episodes", []))
            if purge.get("reason") == "retention":
                lines.append(f"> - {purge.get('at')}: retention period over, episodes {episodes}")
            else:
                lines.append(f"> - {purge.get('at')}: operator `{purge.get('operator')}`, episodes {episodes}")
    lines += [CARD_END, ""]
    block = "\n".join(lines)
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end >= 0:
            head, body = text[: end + 5], text[end + 5 :]
            return head + "\n" + block + body.lstrip("\n")
    return block + "\n" + text


def _remove_episode(store: EpisodeStore, episode_id: str) -> None:
    """Move the episode folder out of the store atomically, then delete it (under the episode's lock)."""
    lock = EpisodeLock(store.episodes_dir / LOCKS_DIR / f"{episode_id}.lock")
    if not lock.try_acquire():
        raise PurgeError(f"episode {episode_id} is being written by another process; stop the recorder and retry")
    try:
        trash = store.episodes_dir / PURGING_DIR / episode_id
        trash.parent.mkdir(mode=0o700, exist_ok=True)
        shutil.rmtree(trash, ignore_errors=True)
        os.rename(store.episode_dir(episode_id), trash)
        fsync_directory(store.episodes_dir)
        shutil.rmtree(trash)
        shutil.rmtree(store.episodes_dir / RECOVERY_DIR / episode_id, ignore_errors=True)
    except OSError as error:
        raise DataFileError(
            f"episode {episode_id}: cannot remove it ({error.strerror or error}); run the purge again"
        ) from None
    finally:
        lock.release()


def _rebuild(
    layout: DataLayout,
    dataset: AffectedDataset,
    pseudonym: str | None,
    removed: set[str],
    now: datetime,
) -> DatasetOutcome:
    """Re-export ``dataset`` without the operator (``None``: without ``removed`` only), with its original options,
    and swap it in."""
    root = dataset.path
    if dataset.unfinished:
        raise PurgeError("an unfinished export cannot be rebuilt")
    document = read_json_file(root / PROVENANCE_PATH, what="the dataset provenance")
    export = document.get("export") if isinstance(document, dict) else None
    options = export.get("options") if isinstance(export, dict) else None
    if not isinstance(export, dict) or export.get("format") != EXPORT_FORMAT or not isinstance(options, dict):
        raise PurgeError("it was not written by `robot-brain data export`, so its options are unknown")
    sources: list[str] = []
    for item in document.get("episodes") or []:
        source = (item.get("source") or {}) if isinstance(item, dict) else {}
        episode_id = source.get("episode_id")
        if isinstance(episode_id, str) and source.get("operator") != pseudonym and episode_id not in removed:
            sources.append(episode_id)
    sources = list(dict.fromkeys(sources))
    store = EpisodeStore(layout)
    remaining = [episode_id for episode_id in sources if store.episode_dir(episode_id).is_dir()]
    missing = len(sources) - len(remaining)
    if not remaining:
        _delete_dataset(root)
        return DatasetOutcome(root, "removed", "no episode of another operator left in it")
    temporary = root.parent / f".{root.name}.rebuild-{uuid.uuid4().hex[:8]}"
    try:
        report = export_episodes(
            layout,
            remaining,
            temporary,
            fps=int(options.get("fps", 0)),
            codec=str(options.get("codec")),
            command_joints=options.get("command_joints"),
            gripper_command=str(options.get("gripper_command", "joint_position")),
            min_segment_s=float(options.get("min_segment_s", 0.5)),
            now=now,
            audit=False,
        )
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    _swap(temporary, root)
    detail = f"{len(report.episodes)} episodes, {report.frames} frames"
    if missing:
        detail += f"; {missing} source episodes no longer in the data root"
    if report.excluded:
        detail += f"; {len(report.excluded)} excluded now ({report.excluded[0].reason}, …)"
    return DatasetOutcome(root, "rebuilt", detail, report.content_hash)


def _swap(new: Path, old: Path) -> None:
    trash = old.parent / f".{old.name}.purged-{uuid.uuid4().hex[:8]}"
    os.rename(old, trash)
    os.rename(new, old)
    fsync_directory(old.parent)
    shutil.rmtree(trash)


def _delete_dataset(root: Path) -> None:
    trash = root.parent / f".{root.name}.purged-{uuid.uuid4().hex[:8]}"
    os.rename(root, trash)
    fsync_directory(root.parent)
    shutil.rmtree(trash)


def _clean_leftovers(layout: DataLayout) -> None:
    """Delete what an interrupted purge left: episodes moved aside, replaced datasets (hidden folders)."""
    shutil.rmtree(layout.episodes_dir / PURGING_DIR, ignore_errors=True)
    if layout.datasets_dir.is_dir():
        for leftover in layout.datasets_dir.glob(".*.purged-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def purge_operator(
    data_root: str | os.PathLike[str] | DataLayout | None,
    operator: str,
    *,
    rebuild: bool = False,
    keep_enrollment: bool = False,
    now: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> PurgeReport:
    """Erase ``operator`` (a name or a pseudonym) from the data root; see the module docstring for the steps.

    Raises ``PurgeError`` before changing anything when the operator is unknown or not a person,
    or one of their episodes is being recorded. Later failures (a dataset that cannot be
    rebuilt, a file that cannot be deleted) are collected in ``problems``; the datasets they
    concern are marked stale, and the audit entry records what was done.
    """
    moment = require_aware(now, "now") if now is not None else utc_now()
    layout = DataLayout.resolve(data_root)
    layout.require_root()
    registry = ConsentRegistry(layout)
    pseudonym, enrolled, forgotten = _resolve(registry, operator)
    forget = enrolled and not keep_enrollment and not forgotten
    # Revoke before listing: an episode that starts after the list was made would otherwise survive.
    revoked = False
    if forget:
        registry.revoke(pseudonym, now=moment)  # nothing of theirs may be recorded or exported from here on
        revoked = True
    plan = _plan_once_recording_stopped(data_root, pseudonym, LIVE_EPISODE_WAIT_S if revoked else 0.0)
    if plan.live:
        raise PurgeError(
            f"episode {plan.live[0]} of {plan.operator} is being recorded right now"
            + ("; their consent is revoked (the recorder discards it within its consent check period), retry"
               if revoked else "; stop the recorder and retry")
        )
    report = PurgeReport(
        pseudonym, [], [], "", list(plan.unattributed), list(plan.unreachable_copies), list(plan.problems),
        unverified=list(plan.unverified),
    )
    try:
        _clean_leftovers(layout)
        store = EpisodeStore(layout)
        for episode_id, _state in plan.episodes:
            _remove_episode(store, episode_id)
            report.episodes_removed.append(episode_id)
            if progress is not None:
                progress(f"removed episode {episode_id}")
        removed = set(report.episodes_removed)
        for dataset in plan.datasets:
            report.datasets.append(_handle_dataset(layout, dataset, pseudonym, removed, moment, rebuild, report))
            if progress is not None:
                progress(f"dataset {dataset.path}: {report.datasets[-1].action}")
        if forget:
            registry.forget(pseudonym, now=moment)
        if forget:
            report.consent = "forgotten"
        elif plan.forgotten:
            report.consent = "already forgotten"
        elif plan.enrolled:
            report.consent = "kept"
        else:
            report.consent = "not enrolled"
    finally:
        if not report.consent:
            report.consent = "revoked, not forgotten (the purge stopped early)" if revoked else "unchanged"
        entry = append_audit(
            layout,
            "data.purged",
            {
                "operator": pseudonym,
                "episodes": list(report.episodes_removed),
                "datasets": [
                    {"path": str(d.path), "action": d.action, "content_hash": d.content_hash} for d in report.datasets
                ],
                "consent": report.consent,
                "unreachable_copies": list(report.unreachable_copies),
                "complete": not report.problems and len(report.episodes_removed) == len(plan.episodes),
            },
            now=moment,
        )
        report.audit_seq = entry.seq
    return report


#: How long a purge waits for a recorder to discard an episode whose consent it has just revoked, s.
LIVE_EPISODE_WAIT_S = 10.0


def _plan_once_recording_stopped(data_root: str | os.PathLike[str] | DataLayout | None, pseudonym: str,
                                 wait_s: float) -> PurgePlan:
    """:func:`plan_purge`, again until no episode of ``pseudonym`` is live or ``wait_s`` has passed."""
    deadline = time.monotonic() + wait_s
    plan = plan_purge(data_root, pseudonym)
    while plan.live and time.monotonic() < deadline:
        time.sleep(0.2)
        plan = plan_purge(data_root, pseudonym)
    return plan


def _handle_dataset(
    layout: DataLayout,
    dataset: AffectedDataset,
    pseudonym: str,
    removed: set[str],
    moment: datetime,
    rebuild: bool,
    report: PurgeReport,
) -> DatasetOutcome:
    if rebuild:
        try:
            return _rebuild(layout, dataset, pseudonym, removed, moment)
        except (UserError, OSError) as error:
            problem = f"{dataset.path}: not rebuilt ({error}); marked stale instead"
            report.problems.append(problem)
            mark_stale(dataset.path, pseudonym, dataset.episodes, moment)
            return DatasetOutcome(dataset.path, "stale", f"rebuild failed: {error}",
                                  _recorded_content_hash(dataset.path))
    mark_stale(dataset.path, pseudonym, dataset.episodes, moment)
    detail = f"holds {len(dataset.episodes)} of their episodes ({dataset.frames} frames)"
    # The content hash goes into the audit log too: deleting STALE.json does not make the data trainable again.
    return DatasetOutcome(dataset.path, "stale", detail + ("; unfinished export" if dataset.unfinished else ""),
                          _recorded_content_hash(dataset.path))


def _recorded_content_hash(root: Path) -> str | None:
    """The content hash ``meta/provenance.json`` records for ``root`` (``None`` when it has none)."""
    try:
        return str(read_json_file(root / PROVENANCE_PATH, what="the dataset provenance")["content_hash"]["value"])
    except (DataFileError, KeyError, TypeError):
        return None
