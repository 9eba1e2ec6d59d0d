"""One demo session: the planned cell started as node processes, N seeded episodes run and scored, the report written.

``robot-brain demo`` parses its options into a sim plan and prints what :func:`run_demo` returns.
The plan loaded the arm and computed the sim's layout once; everything here reuses them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import numpy as np

from robot_brain.bringup.isolation import isolate_dds
from robot_brain.bringup.plan import LaunchPlan
from robot_brain.bringup.processes import DiscardedOutput, NodeProcesses, stop_on_signals
from robot_brain.demo.report import DemoSummary, write_outputs

READY_TIMEOUT_S = 90.0
EPISODE_TIMEOUT_S = 60.0


def run_demo(plan: LaunchPlan, *, episodes: int, seed: int, output: Path, node_output: TextIO | None = None,
             say: Callable[[str], None] = print) -> tuple[DemoSummary, dict[str, Path]]:
    """Run ``episodes`` episodes from ``seed`` on ``plan`` (a sim plan) in a private DDS domain.

    Node logs go to ``output/nodes.log`` (and to ``node_output`` when given); returns the summary
    and the files written (``summary.json``, ``trajectories.png``, ``contact_sheet.png``, ...).
    """
    from robot_brain.demo.runner import DemoRunner

    assert plan.arm is not None and plan.layout is not None  # a sim plan carries both
    output.mkdir(parents=True, exist_ok=True)
    log = output / "nodes.log"
    log.write_text("", encoding="utf-8")
    commands = plan.commands(output / "params", sys.executable)
    group = NodeProcesses(output=node_output if node_output is not None else DiscardedOutput(), log_file=log)
    domain = isolate_dds()
    say(f"demo: {plan.robot.name}, {episodes} episode(s) from seed {seed}; "
        f"DDS domain {domain}, this host only; node logs in {log}")
    started = time.monotonic()
    stop = stop_on_signals()
    group.start(commands)
    runner = DemoRunner(plan.arm, alive=lambda: group.first_exit() is None and not stop.is_set(),
                        command_topics=command_topics(plan.node("sim").parameters))
    records = []
    try:
        runner.wait_ready(READY_TIMEOUT_S)
        for index in range(episodes):
            record = runner.run_episode(index, seed + index, EPISODE_TIMEOUT_S)
            records.append(record)
            outcome = f"reached in {record.time_to_success:.2f} s" if record.success else record.message
            say(f"  episode {index + 1}/{episodes} (seed {record.seed}): {outcome}")
    finally:
        node = runner.node
        runner.close()
        group.stop()
    summary = DemoSummary(
        robot=plan.robot.name,
        model=str(plan.node("policy").parameters["model_path"]),
        episodes=records,
        latencies_ms=node.latencies_ms,
        control_p99_us=_median(node.control_p99_us),
        real_time_factor=_median(node.real_time_factors),
        tolerance=plan.layout.tolerance,
        wall_s=time.monotonic() - started,
    )
    return summary, write_outputs(summary, output)


def command_topics(sim: dict[str, object]) -> list[str]:
    """The arm command topics the sim listens on (the controller publishes on one of them)."""
    position = str(sim.get("position_controller", "forward_position_controller")).strip("/")
    trajectory = str(sim.get("trajectory_controller", "joint_trajectory_controller")).strip("/")
    return [f"/{position}/commands", f"/{trajectory}/joint_trajectory"]


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")
