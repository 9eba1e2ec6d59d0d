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
import time
from pathlib import Path

from robot_brain.bringup.isolation import isolate_dds
from robot_brain.bringup.processes import NodeProcesses, stop_on_signals
from robot_brain.cli.up import add_robot_arguments, plan_from_arguments
from robot_brain.errors import ConfigurationError

READY_TIMEOUT_S = 90.0
EPISODE_TIMEOUT_S = 60.0


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
    from robot_brain.demo.report import DemoSummary, write_outputs
    from robot_brain.demo.runner import DemoRunner

    if args.episodes < 1:
        raise ConfigurationError(f"--episodes: expected at least 1, found {args.episodes}")
    # First, so that an explicit --param perception.debug_image=... wins.
    args.param = ["perception.debug_image=true", *args.param]
    plan = plan_from_arguments(args, sim=True)
    assert plan.arm is not None and plan.layout is not None  # a sim plan carries both
    output = args.output or Path("out") / "demo" / plan.robot.name
    output.mkdir(parents=True, exist_ok=True)
    log = output / "nodes.log"
    log.write_text("", encoding="utf-8")
    commands = plan.commands(output / "params", sys.executable)
    console = sys.stderr if args.json else sys.stdout
    group = NodeProcesses(output=console if args.verbose else _Null(), log_file=log)
    say = (lambda text: print(text, file=console, flush=True)) if not args.json else (lambda text: None)
    domain = isolate_dds()
    say(
        f"demo: {plan.robot.name}, {args.episodes} episode(s) from seed {args.seed}; "
        f"DDS domain {domain}, this host only; node logs in {log}"
    )
    started = time.monotonic()
    stop = stop_on_signals()
    group.start(commands)
    # The plan loaded the arm and computed the sim's layout once; everything below reuses them.
    runner = DemoRunner(plan.arm, alive=lambda: group.first_exit() is None and not stop.is_set(),
                        command_topics=_command_topics(plan.node("sim").parameters))
    episodes = []
    try:
        runner.wait_ready(READY_TIMEOUT_S)
        for index in range(args.episodes):
            record = runner.run_episode(index, args.seed + index, EPISODE_TIMEOUT_S)
            episodes.append(record)
            outcome = f"reached in {record.time_to_success:.2f} s" if record.success else record.message
            say(f"  episode {index + 1}/{args.episodes} (seed {record.seed}): {outcome}")
    finally:
        node = runner.node
        runner.close()
        group.stop()
    summary = DemoSummary(
        robot=plan.robot.name,
        model=str(plan.node("policy").parameters["model_path"]),
        episodes=episodes,
        latencies_ms=node.latencies_ms,
        control_p99_us=_median(node.control_p99_us),
        real_time_factor=_median(node.real_time_factors),
        tolerance=plan.layout.tolerance,
        wall_s=time.monotonic() - started,
    )
    files = write_outputs(summary, output)
    if args.json:
        print(json.dumps({**summary.as_dict(), "outputs": {k: str(v) for k, v in files.items()}}))
    else:
        print(summary.table())
        print("outputs: " + ", ".join(str(path) for path in files.values()))
    return 0 if summary.success_rate >= args.min_success_rate else 1


def _command_topics(sim: dict[str, object]) -> list[str]:
    """The arm command topics the sim listens on (the controller publishes on one of them)."""
    position = str(sim.get("position_controller", "forward_position_controller")).strip("/")
    trajectory = str(sim.get("trajectory_controller", "joint_trajectory_controller")).strip("/")
    return [f"/{position}/commands", f"/{trajectory}/joint_trajectory"]


def _median(values: list[float]) -> float:
    import numpy as np

    return float(np.median(values)) if values else float("nan")


class _Null:
    """A text sink for node output when it only goes to the log file."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
