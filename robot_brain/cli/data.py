"""``robot-brain data``: the recorded episodes and the datasets made from them.

* ``ls [--json] [--all]``: every episode with its operator pseudonym, robot, task, label,
  length, message counts, lost (dropped or late) messages and state. Listing first runs the
  recovery scan: an episode whose recorder died is salvaged (``recovered``) or marked
  ``incomplete``, and what was done is reported, so a damaged episode is never listed as
  complete.
* ``export EPISODES... --out DIR [--fps N] [--codec C] [--all [--robot NAME]] [--json]``: a
  LeRobot v3.0 dataset of the episodes whose operators' consent covers ``train`` now (and
  ``export`` when ``--out`` is outside the data root); prints the resampling report, the
  excluded episodes with reasons and the content hash (:mod:`robot_brain.datasets.export`).
* ``purge --operator NAME [--rebuild] [--keep-enrollment] [--yes] [--json]``: the right to
  erasure: the operator's episodes removed, datasets made from them marked stale or rebuilt,
  the operator forgotten, the purge logged (:mod:`robot_brain.erasure.purge`). Asks first.
* ``purge --expired [--rebuild] [--yes] [--json]``: every episode past its enrolment's retention
  period removed, datasets holding one marked stale or rebuilt, logged
  (:mod:`robot_brain.erasure.retention`). Asks first when there is anything to remove.

Every subcommand takes ``--data-root DIR`` (default ``$ROBOT_BRAIN_DATA_ROOT``, else
``~/.local/share/robot_brain``), before or after the subcommand. Exit status: 0, or 2 with a
one-line message per problem on stderr (a missing data root, an unreadable manifest, a
recovery that could not be written, a corrupt bag, an unknown episode or operator, mismatched
robots, an unconfirmed or incomplete purge).

Further subcommands register themselves in ``register`` below with their own ``_add_<name>``
function.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from robot_brain.episodes.store import EpisodeEntry, EpisodeStore, RecoveryResult
from robot_brain.storage.paths import DATA_ROOT_HELP, DataLayout, add_data_root_argument

EXIT_OK, EXIT_PROBLEMS = 0, 2


def register(subparsers: Any) -> None:
    """Add ``data`` and its subcommands."""
    parser = subparsers.add_parser(
        "data",
        help="recorded episodes: list, export as a LeRobot dataset, purge an operator",
        description=(
            "The data factory's episodes: list them (recovering those whose recorder died), export them as "
            "LeRobot datasets with consent checked at export time, purge an operator's data (right to erasure)."
        ),
    )
    parser.add_argument("--data-root", dest="data_root_group", metavar="DIR", default=None, help=DATA_ROOT_HELP)
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    add_data_root_argument(common)
    _add_ls(actions, common)
    _add_export(actions, common)
    _add_purge(actions, common)


def data_layout(args: argparse.Namespace) -> DataLayout:
    """The data root from ``--data-root`` given after the subcommand, else before it, else env/default."""
    return DataLayout.resolve(getattr(args, "data_root", None) or getattr(args, "data_root_group", None))


def _add_ls(actions: Any, common: argparse.ArgumentParser) -> None:
    ls = actions.add_parser(
        "ls",
        parents=[common],
        help="list episodes; recovers those whose recorder died",
        description=(
            "List the recorded episodes. First recovers every episode whose recorder died "
            "(state recovered, or incomplete when nothing was readable) and reports it."
        ),
    )
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.add_argument("--all", action="store_true", help="include discarded episodes (tombstones)")
    ls.set_defaults(func=_ls)


def _ls(args: argparse.Namespace) -> int:
    layout = data_layout(args)
    layout.require_root()
    store = EpisodeStore(layout.root)
    recoveries = store.recover()
    entries = store.list_episodes(include_discarded=args.all)
    problems = [entry.error or entry.seal_error for entry in entries if entry.error or entry.seal_error] + [
        f"recovery of episode {result}" for result in recoveries if result.outcome == "failed"
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "data_root": str(layout.root),
                    "recovered": [_recovery_json(result) for result in recoveries],
                    "episodes": [_entry_json(entry) for entry in entries],
                    "errors": problems,
                }
            )
        )
    else:
        for result in recoveries:
            if result.outcome != "failed":
                print(f"recovery: {result}")
        print(format_table(entries) if entries else f"no episodes in {store.episodes_dir}")
    for problem in problems:
        print(f"robot-brain data ls: error: {problem}", file=sys.stderr)
    return EXIT_PROBLEMS if problems else EXIT_OK


def _recovery_json(result: RecoveryResult) -> dict[str, Any]:
    return {
        "episode_id": result.episode_id,
        "outcome": result.outcome,
        "messages": result.messages,
        "detail": result.detail,
    }


def _entry_json(entry: EpisodeEntry) -> dict[str, Any]:
    manifest = entry.manifest
    if manifest is None:
        return {"episode_id": entry.episode_id, "state": entry.state, "path": str(entry.path), "error": entry.error}
    return {
        "episode_id": entry.episode_id,
        "state": entry.state,
        "label": manifest.label,
        "operator": manifest.operator,
        "operator_kind": manifest.operator_kind,
        "robot": manifest.robot.name,
        "task": manifest.task,
        "start_time": manifest.start_time,
        "duration_s": round(manifest.duration_s, 3),
        "message_count": manifest.message_count,
        "lost_count": manifest.lost_count,
        "topics": {
            name: {"type": topic.type, "count": topic.count, "dropped": topic.dropped, "late": topic.late}
            for name, topic in manifest.topics.items()
        },
        "path": str(entry.path),
        "error": manifest.error,
    }


def format_table(entries: list[EpisodeEntry]) -> str:
    """One line per episode: id, state, label, operator, robot, length, messages, lost, task."""
    header = ("ID", "STATE", "LABEL", "OPERATOR", "ROBOT", "LENGTH", "MESSAGES", "LOST", "TASK")
    rows = []
    for entry in entries:
        manifest = entry.manifest
        if manifest is None:
            rows.append((entry.episode_id, entry.state, "-", "-", "-", "-", "-", "-", "(manifest unreadable)"))
            continue
        task = manifest.task if len(manifest.task) <= 40 else manifest.task[:39] + "…"
        rows.append(
            (
                entry.episode_id,
                entry.state,
                manifest.label,
                manifest.operator,
                manifest.robot.name or "-",
                f"{manifest.duration_s:.1f} s",
                str(manifest.message_count),
                str(manifest.lost_count),
                task or "-",
            )
        )
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(width) if column in (5, 6, 7) else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row[:-1], widths, strict=True))
        ]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


def _add_export(actions: Any, common: argparse.ArgumentParser) -> None:
    from robot_brain.datasets.export import CODECS, DEFAULT_CODEC, DEFAULT_FPS, GRIPPER_COMMAND_MODES

    export = actions.add_parser(
        "export",
        parents=[common],
        help="export episodes as a LeRobot v3.0 dataset (consent checked now)",
        description=(
            "Write a LeRobot v3.0 dataset of the episodes: joint state and action, end-effector pose and action, "
            "gripper, perceived target and camera when present, resampled onto the frame grid by their timestamps. "
            "Only episodes whose operator's consent covers 'train' now (and 'export' when --out is outside the data "
            "root) are exported; the others are listed with the reason."
        ),
    )
    export.add_argument("episodes", nargs="*", metavar="EPISODE", help="episode ids (see `robot-brain data ls`)")
    export.add_argument("--out", required=True, metavar="DIR", help="the new dataset folder (must not hold files)")
    export.add_argument("--fps", type=int, default=DEFAULT_FPS, help=f"frames per second (default {DEFAULT_FPS})")
    export.add_argument("--codec", choices=CODECS, default=DEFAULT_CODEC, help=f"video codec (default {DEFAULT_CODEC})")
    export.add_argument(
        "--all", action="store_true", help="every episode of the data root (with --robot: of one robot)"
    )
    export.add_argument("--robot", metavar="NAME", help="with --all: only episodes of this robot")
    export.add_argument(
        "--command-joints",
        metavar="J1,J2,...",
        help="the arm controller's joint order in its commands (default: the arm's base-to-tip order)",
    )
    export.add_argument(
        "--gripper-command",
        choices=GRIPPER_COMMAND_MODES,
        default="joint_position",
        help="what the gripper commands hold (default joint_position, the arm controller's default)",
    )
    export.add_argument("--title", help="title of the dataset card")
    export.add_argument("--json", action="store_true", help="print one JSON object")
    export.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from robot_brain.datasets.export import ExportError, export_episodes, exportable_episodes, format_report

    layout = data_layout(args)
    if args.all and args.episodes:
        raise ExportError("give episode ids or --all, not both")
    if args.robot and not args.all:
        raise ExportError("--robot selects among all episodes: use it with --all")
    episodes = exportable_episodes(layout, args.robot) if args.all else list(args.episodes)
    if not episodes:
        raise ExportError("no episodes given: name episode ids (see `robot-brain data ls`) or use --all")
    joints = [name.strip() for name in args.command_joints.split(",") if name.strip()] if args.command_joints else None

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report = export_episodes(
        layout,
        episodes,
        Path(args.out),
        fps=args.fps,
        codec=args.codec,
        command_joints=joints,
        gripper_command=args.gripper_command,
        title=args.title,
        progress=progress if sys.stderr.isatty() and not args.json else None,
    )
    print(json.dumps(report.to_json()) if args.json else format_report(report))
    return EXIT_OK


def _add_purge(actions: Any, common: argparse.ArgumentParser) -> None:
    purge = actions.add_parser(
        "purge",
        parents=[common],
        help="erase an operator's episodes; mark or rebuild the datasets made from them",
        description=(
            "The right to erasure: removes every episode of the operator (discarded ones too), marks every dataset "
            "under the data root made from them stale (or rebuilds it without them), revokes and forgets the "
            "operator in the consent registry, and logs the purge (pseudonym only). Asks for confirmation."
        ),
    )
    who = purge.add_mutually_exclusive_group(required=True)
    who.add_argument("--operator", metavar="NAME", help="the person's name or pseudonym (op-…)")
    who.add_argument(
        "--expired",
        action="store_true",
        help="instead: every episode past its enrolment's retention period (robot-brain consent enroll "
        "--retention-days), and the datasets holding them",
    )
    purge.add_argument("--rebuild", action="store_true", help="re-export affected datasets without them")
    purge.add_argument(
        "--keep-enrollment", action="store_true", help="leave their consent and name in the registry as they are"
    )
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.add_argument("--json", action="store_true", help="print one JSON object")
    purge.set_defaults(func=_purge)


def _purge(args: argparse.Namespace) -> int:
    from robot_brain.erasure.purge import PurgeError, plan_purge, purge_operator

    layout = data_layout(args)
    if args.expired:
        return _purge_expired(args, layout)
    plan = plan_purge(layout, args.operator)
    if not args.yes:
        dataset_action = "rebuilt without them" if args.rebuild else "marked stale"
        registry_action = (
            "left as they are" if args.keep_enrollment or not plan.enrolled else "revoked and the name forgotten"
        )
        print(
            f"purge operator {plan.operator}: delete {len(plan.episodes)} episodes permanently; "
            f"{len(plan.datasets)} datasets made from them will be {dataset_action}; consent {registry_action}.",
            file=sys.stderr,
        )
        for dataset in plan.datasets:
            print(f"  dataset {dataset.path} ({len(dataset.episodes)} of their episodes)", file=sys.stderr)
        print("type 'yes' to continue: ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()
        if answer.strip().lower() != "yes":
            raise PurgeError("not confirmed: nothing was changed (answer 'yes', or pass --yes)")
    report = purge_operator(
        layout,
        args.operator,
        rebuild=args.rebuild,
        keep_enrollment=args.keep_enrollment,
        progress=(lambda line: print(line, file=sys.stderr, flush=True)) if sys.stderr.isatty() else None,
    )
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(
            f"purged operator {report.operator}: {len(report.episodes_removed)} episodes removed; "
            f"consent {report.consent}; audit entry {report.audit_seq}"
        )
        for outcome in report.datasets:
            hash_text = f" (content hash {outcome.content_hash})" if outcome.content_hash else ""
            print(f"  dataset {outcome.path}: {outcome.action}: {outcome.detail}{hash_text}")
        for copy in report.unreachable_copies:
            if os.path.isabs(copy):
                print(f"  exported copy no longer at {copy}: it may have left the site; tell its recipients")
            else:  # a path the audit log withheld: only its hash is known
                print(f"  {copy}: purge cannot reach it; find it by that hash and delete it, or tell its recipients")
    for episode_id in report.unattributed:
        print(
            f"robot-brain data purge: warning: episode {episode_id} has no readable manifest: "
            "check by hand whether it is theirs",
            file=sys.stderr,
        )
    for episode_id in report.unverified:
        print(
            f"robot-brain data purge: warning: episode {episode_id}'s manifest fails its seal (edited?) and names "
            "someone else: check by hand whether it is theirs (it is never exported)",
            file=sys.stderr,
        )
    for problem in report.problems:
        print(f"robot-brain data purge: error: {problem}", file=sys.stderr)
    return EXIT_PROBLEMS if report.problems else EXIT_OK


def _purge_expired(args: argparse.Namespace, layout: DataLayout) -> int:
    """``purge --expired``: episodes past their retention period (:mod:`robot_brain.erasure.retention`)."""
    from robot_brain.erasure.purge import PurgeError
    from robot_brain.erasure.retention import plan_expired, purge_expired

    if args.keep_enrollment:
        raise PurgeError("--keep-enrollment goes with --operator: --expired never changes anyone's consent")
    plan = plan_expired(layout)
    if not args.yes and (plan.episodes or plan.datasets):
        dataset_action = "rebuilt without them" if args.rebuild else "marked stale"
        print(
            f"purge expired episodes: delete {len(plan.episodes)} episodes past their retention period permanently; "
            f"{len(plan.datasets)} datasets holding expired episodes will be {dataset_action}.",
            file=sys.stderr,
        )
        for episode in plan.episodes:
            print(f"  episode {episode.episode_id} ({episode.operator}, recorded {episode.recorded_at:%Y-%m-%d}, "
                  f"kept {episode.retention_days} days)", file=sys.stderr)
        for dataset in plan.datasets:
            print(f"  dataset {dataset.path} ({len(dataset.episodes)} expired episodes)", file=sys.stderr)
        print("type 'yes' to continue: ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() != "yes":
            raise PurgeError("not confirmed: nothing was changed (answer 'yes', or pass --yes)")
    report = purge_expired(
        layout,
        rebuild=args.rebuild,
        now=plan.at,
        progress=(lambda line: print(line, file=sys.stderr, flush=True)) if sys.stderr.isatty() else None,
    )
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        audit = f"; audit entry {report.audit_seq}" if report.audit_seq is not None else ""
        print(
            f"purged expired episodes: {len(report.episodes_removed)} removed, {report.kept} inside their "
            f"retention period kept{audit}"
        )
        for outcome in report.datasets:
            hash_text = f" (content hash {outcome.content_hash})" if outcome.content_hash else ""
            print(f"  dataset {outcome.path}: {outcome.action}: {outcome.detail}{hash_text}")
        for copy in report.unreachable_copies:
            print(f"  exported copy {copy}: purge cannot reach it; it may hold expired episodes, tell its recipients")
    for episode_id in report.unknown:
        print(
            f"robot-brain data purge: warning: episode {episode_id}: its retention period cannot be told (unknown "
            "operator, no period recorded, or no readable manifest): check it by hand",
            file=sys.stderr,
        )
    for problem in report.problems:
        print(f"robot-brain data purge: error: {problem}", file=sys.stderr)
    return EXIT_PROBLEMS if report.problems else EXIT_OK
