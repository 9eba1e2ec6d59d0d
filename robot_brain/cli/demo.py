"""``robot-brain demo``: the whole brain on a simulated arm, N seeded reach episodes, a report.

Starts the sim and the brain's nodes as separate processes over DDS (exactly what
``robot-brain up --sim`` starts), runs the episodes, prints a table (or one JSON object),
and writes ``summary.json``, ``trajectories.png``, ``contact_sheet.png`` and ``nodes.log``
to the output folder. Perception's annotated debug image is turned on (a ``--param
perception.debug_image=false`` turns it off) so the contact sheet shows, beside each frame,
what perception masked and found. An episode whose object perception cannot locate is
reported as failed with the reason, and the run goes on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from robot_brain.cli.up import add_robot_arguments, plan_from_arguments
from robot_brain.errors import ConfigurationError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the brain on a simulated arm for N seeded reach episodes and report",
        description="Sim + perception + policy + arm_controller as node processes; N reach episodes; a table, "
        "a trajectory plot and a contact sheet of camera frames.",
    )
    add_robot_arguments(parser)
    parser.add_argument("--episodes", type=int, default=5, help="number of episodes (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed+i")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--output", type=Path, help="output folder (default: out/demo/<robot>)")
    parser.add_argument("--verbose", action="store_true", help="stream the nodes' logs (always in nodes.log)")
    parser.add_argument("--min-success-rate", type=float, default=0.0,
                        help="exit with status 1 when the success rate is below this (0-1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_brain.demo.session import run_demo

    if args.episodes < 1:
        raise ConfigurationError(f"--episodes: expected at least 1, found {args.episodes}")
    # First, so that an explicit --param perception.debug_image=... wins.
    args.param = ["perception.debug_image=true", *args.param]
    plan = plan_from_arguments(args, sim=True)
    console = sys.stderr if args.json else sys.stdout
    say = (lambda text: print(text, file=console, flush=True)) if not args.json else (lambda text: None)
    summary, files = run_demo(plan, episodes=args.episodes, seed=args.seed,
                              output=args.output or Path("out") / "demo" / plan.robot.name,
                              node_output=console if args.verbose else None, say=say)
    if args.json:
        print(json.dumps({**summary.as_dict(), "outputs": {k: str(v) for k, v in files.items()}}))
    else:
        print(summary.table())
        print("outputs: " + ", ".join(str(path) for path in files.values()))
    return 0 if summary.success_rate >= args.min_success_rate else 1
