"""``robot-brain data``: the recorded episodes and the datasets made from them.

* ``ls [--json] [--all]``: every episode with its operator pseudonym, robot, task, label,
  length, message counts, lost (dropped or late) messages and state. Listing first runs the
  recovery scan: an episode whose recorder died is salvaged (``recovered``) or marked
  ``incomplete``, and what was done is reported, so a damaged episode is never listed as
  complete.

Every subcommand takes ``--data-root DIR`` (default ``$ROBOT_BRAIN_DATA_ROOT``, else
``~/.local/share/robot_brain``), before or after the subcommand. Exit status: 0, or 2 with a
one-line message per problem on stderr (a missing data root, an unreadable manifest, a
recovery that could not be written).

Further subcommands (``export``, ``purge``) register themselves in ``register`` below with
their own ``_add_<name>`` function.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from robot_brain.data.episodes import EpisodeEntry, EpisodeStore, RecoveryResult
from robot_brain.data.paths import DATA_ROOT_HELP, DataLayout, add_data_root_argument

EXIT_OK, EXIT_PROBLEMS = 0, 2


def register(subparsers: Any) -> None:
    """Add ``data`` and its subcommands."""
    parser = subparsers.add_parser(
        "data",
        help="list recorded episodes (and recover crashed ones)",
        description="The data factory's episodes: list them, recover those whose recorder died.",
    )
    parser.add_argument("--data-root", dest="data_root_group", metavar="DIR", default=None, help=DATA_ROOT_HELP)
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    add_data_root_argument(common)
    _add_ls(actions, common)


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
    problems = [entry.error for entry in entries if entry.error] + [
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
