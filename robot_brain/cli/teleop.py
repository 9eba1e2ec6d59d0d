"""``robot-brain teleop``: an operator drives the arm with a game pad (in the sim or a cell), optionally recording.

Starts the teleop node and the arm controller (with ``--sim`` the MuJoCo simulator and
perception too; with ``--record`` the recorder) as node processes through the same launch plan
as ``up`` (:func:`robot_brain.bringup.plan.teleop_plan`), and shows one live status line: device,
dead-man, frame, speed level, gripper, e-stop, mode and episode state. Without a pad it says so
on that line and waits for one (hot-plug). Node logs go to a file (``--verbose``: also here).
Ctrl-C stops the nodes in order: teleop first, then the controller once the arm is at rest,
the recorder, the sim.

``--record --operator NAME``: the name is looked up in the consent registry here, and only
the pseudonym is handed to the recorder; without ``record`` consent nothing starts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from robot_brain.bringup.isolation import inherited_domain, isolate_dds
from robot_brain.bringup.params_files import parse_overrides
from robot_brain.bringup.plan import record_parameters, teleop_plan
from robot_brain.bringup.processes import DiscardedOutput, NodeProcesses, stop_on_signals
from robot_brain.cli.up import add_robot_arguments, plan_from_arguments
from robot_brain.errors import ConfigurationError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "teleop",
        help="drive the arm with a game pad (sim or cell), optionally recording demonstrations",
        description="Teleop node + arm controller (+ MuJoCo sim and perception with --sim, + recorder with "
        "--record) as node processes; one live status line; Ctrl-C stops them in order.",
    )
    add_robot_arguments(parser)
    parser.add_argument("--sim", action="store_true", help="drive the MuJoCo simulator of the robot (private DDS)")
    parser.add_argument("--input", choices=("sdl", "joy"), default="sdl",
                        help="sdl: a game pad through SDL2 (default); joy: sensor_msgs/Joy from joy/game_controller")
    parser.add_argument("--device", default="0",
                        help="sdl: the pad's SDL index, or a substring of its name (default 0)")
    parser.add_argument("--record", action="store_true", help="record episodes (episode buttons start and stop them)")
    parser.add_argument("--operator", default="", help="with --record: the operator's name (consent registry), "
                        "or scripted")
    parser.add_argument("--task", default="", help="with --record: the task text of the episodes")
    parser.add_argument("--data-root", default="", help="with --record: the data root (default: "
                        "$ROBOT_BRAIN_DATA_ROOT, else ~/.local/share/robot_brain)")
    parser.add_argument("--log", type=Path, default=Path("out") / "teleop" / "nodes.log",
                        help="node log file (default out/teleop/nodes.log)")
    parser.add_argument("--verbose", action="store_true", help="also stream the nodes' logs here")
    parser.set_defaults(func=run, model="builtin:reach")


def _record_parameters(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.record:
        if args.operator or args.task:
            raise ConfigurationError("--operator and --task need --record")
        return None
    return record_parameters(args.operator, args.task, args.data_root, driven_by="pad")


def run(args: argparse.Namespace) -> int:
    record = _record_parameters(args)
    device = str(args.device)
    teleop: dict[str, Any] = {"input": args.input}
    if device.isdigit():
        teleop["device_id"] = int(device)
    else:
        teleop["device_name"] = device
    base = plan_from_arguments(args, sim=args.sim)
    plan = teleop_plan(base, teleop=teleop, record=record, overrides=parse_overrides(args.param))
    relay = None
    if args.sim:
        user_domain = inherited_domain()
        domain = isolate_dds()  # a simulated session must never reach a real cell's controllers
        print(f"teleop: simulated cell in private DDS domain {domain}, this host only", flush=True)
        if args.input == "joy":
            from robot_brain.ros.joy_relay import JoyRelay

            topic = str(plan.node("teleop").parameters.get("joy_topic", "/joy"))
            relay = JoyRelay(topic, user_domain, domain)
            print(f"teleop: relaying {topic} from your DDS domain {user_domain} (start joy_node there); "
                  "nothing else crosses", flush=True)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    args.log.write_text("", encoding="utf-8")
    console = sys.stdout
    group = NodeProcesses(output=console if args.verbose else DiscardedOutput(), log_file=args.log)
    params = args.log.parent / "params"
    print(f"teleop: {plan.robot.name}, nodes {', '.join(plan.names)}; logs in {args.log}; Ctrl-C stops", flush=True)
    stop = stop_on_signals()
    group.start(plan.commands(params, sys.executable))
    display = StatusDisplay(console)
    try:
        code = group.wait(stop)
    finally:
        display.close()
        group.stop()
        if relay is not None:
            relay.close()
    return code


class StatusDisplay:
    """The teleop node's one-line status (``/teleop/status``) and the recorder's answers, in this terminal."""

    def __init__(self, out: TextIO) -> None:
        from robot_brain.ros.teleop_status import TeleopStatusListener

        self._out = out
        self._tty = out.isatty()
        self._last_line = ""
        self._last_print = 0.0
        self._listener = TeleopStatusListener(self._on_status, self._on_event)

    def _on_status(self, line: str) -> None:
        if self._tty:
            self._out.write("\r\x1b[2K" + line)
            self._out.flush()
        elif line != self._last_line and time.monotonic() - self._last_print > 1.0:
            print(line, file=self._out, flush=True)  # not a terminal: changes only, at most once a second
            self._last_print = time.monotonic()
            self._last_line = line

    def _on_event(self, event: str, message: str) -> None:
        if event in ("recording", "saved", "discarded", "refused", "error"):
            prefix = "\r\x1b[2K" if self._tty else ""
            print(f"{prefix}episode {event}: {message}", file=self._out, flush=True)

    def close(self) -> None:
        if self._tty:
            self._out.write("\n")
        self._listener.close()
