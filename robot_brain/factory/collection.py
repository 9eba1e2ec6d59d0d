"""Scripted demonstrations recorded through the teleop path, on a simulated cell in a private DDS domain.

:func:`collect` starts what ``robot-brain teleop --sim --record --input joy`` starts (sim,
perception, arm controller, teleop, recorder) and a scripted operator in this process that plays
a person on a pad (:mod:`robot_brain.factory.collector`). ``robot-brain collect`` and the
factory's collection step both call it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from robot_brain.bringup.isolation import isolate_dds
from robot_brain.bringup.params_files import parse_overrides
from robot_brain.bringup.plan import record_parameters, sim_plan, teleop_plan
from robot_brain.bringup.processes import DiscardedOutput, NodeProcesses, stop_on_signals
from robot_brain.bringup.robots import resolve_robot
from robot_brain.errors import ConfigurationError

READY_TIMEOUT_S = 120.0
EPISODE_TIMEOUT_S = 30.0
DEFAULT_TASK = "reach the red cube"


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
    record = record_parameters(operator, task, str(data_root), driven_by="scripted")
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
    group = NodeProcesses(output=sys.stdout if verbose else DiscardedOutput(), log_file=log)
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
