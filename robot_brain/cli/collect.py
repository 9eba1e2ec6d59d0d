"""``robot-brain collect``: scripted demonstrations of the reach task, recorded through the teleop path.

Starts what ``robot-brain teleop --sim --record --input joy`` starts (sim, perception, arm
controller, teleop, recorder) in a private DDS domain, and a scripted operator in this process
plays a person on a pad (:mod:`robot_brain.factory.collector`): reaction time, wobble,
hesitation, the dead-man, the episode buttons. Every demonstration is a recorded episode in
the data root, labelled success or failure by the sim, with the operator ``scripted`` (no
consent needed, and labelled as machine-made everywhere). ``--json``: one object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from robot_brain.factory.collection import DEFAULT_TASK, collect


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "collect",
        help="record scripted demonstrations in the simulator through the teleop path",
        description="A scripted operator drives the simulated arm through the teleop node (a Joy pad with "
        "dead-man semantics, reaction time, wobble and hesitation) while the recorder records.",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--robot", help="robot preset or bundled arm name (default: panda)")
    which.add_argument("--urdf", help="robot description file (.urdf or .xacro)")
    parser.add_argument("--episodes", type=int, required=True, help="number of demonstrations")
    parser.add_argument("--out", "--data-root", dest="data_root", required=True, type=Path,
                        help="data root the episodes are recorded into")
    parser.add_argument("--operator", default="scripted",
                        help="scripted (default) or scripted:NAME: the scripted operator drives, so its episodes are "
                        "never recorded under a person's name")
    parser.add_argument("--task", default=DEFAULT_TASK, help=f"task text of the episodes (default: {DEFAULT_TASK!r})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed+i")
    parser.add_argument("--param", action="append", default=[], metavar="NODE.NAME=VALUE",
                        help="override one node parameter (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="stream the nodes' logs (always in nodes.log)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = sys.stderr if args.json else sys.stdout
    summary = collect(args.robot, args.urdf, args.episodes, args.data_root, operator=args.operator, task=args.task,
                      seed=args.seed, params=args.param, verbose=args.verbose,
                      say=lambda text: print(text, file=console, flush=True))
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"collect: {summary['episodes']} episode(s) recorded, {summary['successes']} successful, "
              f"in {summary['wall_s']:.0f} s; see robot-brain data ls --data-root {summary['data_root']}")
    return 0 if summary["episodes"] == args.episodes else 1
