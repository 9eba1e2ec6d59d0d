"""``robot-brain up``: start the brain's nodes (and the simulator) as processes over DDS.

``ros2 launch`` is not installable from PyPI, so this is the launcher that works everywhere:
the node list and parameters come from :mod:`robot_brain.bringup.plan` (the same functions
the ``launch/*.launch.py`` files call); the processes are run and stopped in order by
:class:`robot_brain.bringup.processes.NodeProcesses`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from robot_brain.bringup.params_files import parse_overrides
from robot_brain.bringup.plan import COMMAND_MODES, LaunchPlan, brain_plan, sim_plan
from robot_brain.bringup.processes import NodeProcesses, stop_on_signals
from robot_brain.bringup.robots import resolve_robot


def add_robot_arguments(parser: argparse.ArgumentParser) -> None:
    """--robot / --urdf / --model / --mode / --param, shared by ``up`` and ``demo``."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--robot", help="robot preset (config/robots) or bundled arm name (default: panda)")
    which.add_argument("--urdf", help="robot description file (.urdf or .xacro); no preset needed")
    parser.add_argument("--model", default="builtin:reach",
                        help="ONNX policy with a contract (default: builtin:reach, the hand-written reach controller)")
    parser.add_argument("--mode", choices=COMMAND_MODES, default="forward_position",
                        help="ros2_control interface the controller commands (default: forward_position)")
    parser.add_argument("--param", action="append", default=[], metavar="NODE.NAME=VALUE",
                        help="override one node parameter, e.g. sim.camera_rate_hz=30 (repeatable)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "up",
        help="start the brain (and optionally the MuJoCo sim) as ROS 2 node processes",
        description="Start perception, policy and arm_controller (and with --sim the MuJoCo simulator) as "
        "separate processes over DDS; Ctrl-C stops them all.",
    )
    add_robot_arguments(parser)
    parser.add_argument("--sim", action="store_true", help="also run the MuJoCo simulator of the robot")
    parser.add_argument("--controller", default="", help="ros2_control controller name the brain commands")
    parser.add_argument("--real-time-factor", type=float, default=1.0,
                        help="sim speed (1: real time; other values switch every node to use_sim_time)")
    parser.add_argument("--params-dir", type=Path, help="where the params files go (default: a temporary folder)")
    parser.add_argument("--dry-run", action="store_true", help="print the node command lines and exit")
    parser.set_defaults(func=run)


def plan_from_arguments(args: argparse.Namespace, sim: bool) -> LaunchPlan:
    robot = resolve_robot(args.robot, args.urdf)
    overrides = parse_overrides(args.param)
    if getattr(args, "controller", ""):
        overrides.setdefault("arm_controller", {})["controller_name"] = args.controller
    if sim:
        return sim_plan(robot, args.model, args.mode, getattr(args, "real_time_factor", 1.0), overrides)
    return brain_plan(robot, args.model, args.mode, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    plan = plan_from_arguments(args, args.sim)
    temporary = args.params_dir is None and not args.dry_run
    folder = args.params_dir or Path(tempfile.mkdtemp(prefix="robot_brain_up_"))
    try:
        commands = plan.commands(folder, sys.executable)
        if args.dry_run:
            for name, command in commands.items():
                print(f"{name}: {' '.join(command)}")
            return 0
        group = NodeProcesses()
        for note in plan.notes:
            group.say(f"[up] note: {note}")
        group.say(f"[up] {plan.robot.name}: starting {', '.join(plan.names)} (params in {folder}); Ctrl-C stops")
        group.start(commands)
        stop = stop_on_signals()
        code = group.wait(stop)
        if stop.is_set():
            group.say("[up] stopping the nodes")
        return code
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)  # the nodes read their params files at start-up only
