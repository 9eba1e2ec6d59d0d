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
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from robot_brain.cli.isolation import isolate_dds
from robot_brain.cli.teleop import record_parameters
from robot_brain.cli.up import NodeProcesses, stop_on_signals
from robot_brain.errors import ConfigurationError
from robot_brain.launch_plan import parse_overrides, resolve_robot, sim_plan, teleop_plan

READY_TIMEOUT_S = 120.0
EPISODE_TIMEOUT_S = 30.0
DEFAULT_TASK = "reach the red cube"


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
    parser.add_argument("--operator", default="scripted", help="scripted (default), scripted:NAME, or an "
                        "enrolled operator with record consent")
    parser.add_argument("--task", default=DEFAULT_TASK, help=f"task text of the episodes (default: {DEFAULT_TASK!r})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed+i")
    parser.add_argument("--param", action="append", default=[], metavar="NODE.NAME=VALUE",
                        help="override one node parameter (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="stream the nodes' logs (always in nodes.log)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def collect(robot_name: str | None, urdf: str | None, episodes: int, data_root: Path, *, operator: str = "scripted",
            task: str = DEFAULT_TASK, seed: int = 0, params: list[str] | None = None, verbose: bool = False,
            say: Any = print) -> dict[str, Any]:
    """Record ``episodes`` demonstrations into ``data_root``; returns the summary (what ``--json`` prints)."""
    from robot_brain.demo.runner import DemoRunner
    from robot_brain.factory.collector import Collector
    from robot_brain.teleop.mapping import TeleopMapping

    if episodes < 1:
        raise ConfigurationError(f"--episodes: expected at least 1, found {episodes}")
    data_root.mkdir(parents=True, exist_ok=True)
    record = record_parameters(operator, task, str(data_root))
    robot = resolve_robot(robot_name, urdf)
    overrides = parse_overrides(params or [])
    plan = teleop_plan(sim_plan(robot, overrides=overrides), teleop={"input": "joy"}, record=record,
                       overrides=overrides)
    assert plan.arm is not None
    log = data_root / "logs" / f"collect-{plan.robot.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("", encoding="utf-8")
    domain = isolate_dds()
    say(f"collect: {plan.robot.name}, {episodes} demonstration(s) from seed {seed} into {data_root}; "
        f"DDS domain {domain}, this host only; node logs in {log}")
    group = NodeProcesses(output=sys.stdout if verbose else _Sink(), log_file=log)
    stop = stop_on_signals()
    started = time.monotonic()
    group.start(plan.commands(log.parent / f"params-{plan.robot.name}", sys.executable))
    runner = DemoRunner(plan.arm, alive=lambda: group.first_exit() is None and not stop.is_set(),
                        command_topics=["/forward_position_controller/commands"])
    mapping = TeleopMapping.from_parameters({"input": "joy"}, layout=None)
    collector = Collector(runner, plan.arm, mapping)
    demonstrations = []
    try:
        collector.wait_ready(READY_TIMEOUT_S)
        for index in range(episodes):
            demo = collector.demonstrate(index, seed + index, EPISODE_TIMEOUT_S)
            demonstrations.append(demo)
            outcome = "success" if demo.success else "failure"
            say(f"  demonstration {index + 1}/{episodes} (seed {demo.seed}): {outcome}, "
                f"{demo.episode_id or 'not recorded'} ({demo.message})")
    finally:
        collector.close()
        runner.close()
        group.stop()
    saved = [d for d in demonstrations if d.episode_id]
    return {
        "robot": plan.robot.name,
        "data_root": str(data_root),
        "operator": record["operator"],
        "episodes": len(saved),
        "successes": sum(d.success for d in saved),
        "episode_ids": [d.episode_id for d in saved],
        "successful_episode_ids": [d.episode_id for d in saved if d.success],
        "demonstrations": [asdict(d) for d in demonstrations],
        "wall_s": round(time.monotonic() - started, 1),
    }


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


class _Sink:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
