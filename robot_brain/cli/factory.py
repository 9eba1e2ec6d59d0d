"""``robot-brain factory``: the data factory's whole loop in one command (collect → export → train → evaluate).

See :mod:`robot_brain.factory.pipeline`. With ``--json`` it prints one object with at least
``train_success`` and ``eval_success`` (arm → success rate), ``episodes``, ``frames``,
``train_seconds`` and ``model``; the report, plot and model are in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from robot_brain.factory.pipeline import DEFAULT_EVAL_ROBOTS, DEFAULT_TRAIN_ROBOTS, FactoryConfig


def _robots(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "factory",
        help="collect demonstrations, export, train a policy and evaluate it on seen and unseen arms",
        description="The data factory end to end in the simulator: scripted demonstrations through the teleop "
        "path on the training arms, one LeRobot dataset per arm, one policy trained on all, evaluated with "
        "robot-brain demo on the training arms and on arms it never saw.",
    )
    parser.add_argument("--train-robots", type=_robots, default=DEFAULT_TRAIN_ROBOTS,
                        help=f"comma-separated arms to demonstrate on (default {','.join(DEFAULT_TRAIN_ROBOTS)})")
    parser.add_argument("--eval-robots", type=_robots, default=DEFAULT_EVAL_ROBOTS,
                        help=f"comma-separated arms never seen in training (default {','.join(DEFAULT_EVAL_ROBOTS)})")
    parser.add_argument("--demos", type=int, default=50, help="demonstrations per training arm (default 50)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (data root, datasets, model, report)")
    parser.add_argument("--policy", choices=("state", "visuomotor"), default="state")
    parser.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    parser.add_argument("--eval-episodes", type=int, default=20, help="evaluation episodes per arm (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--param", action="append", default=[], metavar="NODE.NAME=VALUE",
                        help="node parameter override for collection and evaluation (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_brain.factory.pipeline import run_factory
    from robot_brain.learning.requirements import require_torch

    require_torch("robot-brain factory")  # before the output folder and minutes of collecting

    config = FactoryConfig(out=args.out, train_robots=args.train_robots, eval_robots=args.eval_robots,
                           demos=args.demos, policy=args.policy, steps=args.steps, eval_episodes=args.eval_episodes,
                           seed=args.seed, params=tuple(args.param))
    args.out.mkdir(parents=True, exist_ok=True)
    console = sys.stderr if args.json else sys.stdout
    report = run_factory(config, say=lambda text: print(text, file=console, flush=True))
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print((config.out / "report.md").read_text(encoding="utf-8"))
        print(f"outputs: {config.out / 'report.json'}, {config.out / 'report.md'}, {config.out / 'success.png'}")
    return 0
