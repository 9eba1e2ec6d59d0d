"""``robot-brain up``: start the brain's nodes (and the simulator) as processes over DDS.

``ros2 launch`` is not installable from PyPI, so this is the launcher that works everywhere:
the node list and parameters come from :mod:`robot_brain.launch_plan` (the same function
the ``launch/*.launch.py`` files call), each node runs as ``python -m robot_brain.nodes.<n>``
with a params file, their output is streamed with the node name in front of every line,
and Ctrl-C, SIGTERM or any node dying stops them all **in order** (:data:`STOP_ORDER`): the
nodes that produce commands first (policy, perception, teleop), then the arm controller, which
brakes to rest and publishes its halt before it exits, then the recorder (so the braking is
recorded), and the simulator last (it must keep publishing joint states while the arm brakes).
Each group gets SIGINT, as ``ros2 launch`` sends, then SIGTERM and SIGKILL if it does not stop
in time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from robot_brain.cli.isolation import dds_environment, remove_dead_dds_segments
from robot_brain.launch_plan import COMMAND_MODES, LaunchPlan, brain_plan, parse_overrides, resolve_robot, sim_plan

STOP_TIMEOUT_S = 10.0
#: Groups stopped one after the other; nodes named in no group are stopped with the first.
STOP_ORDER: tuple[tuple[str, ...], ...] = (
    ("policy", "perception", "teleop"),
    ("arm_controller",),
    ("recorder",),
    ("sim",),
)


class NodeProcesses:
    """A group of node processes whose output is prefixed and merged, stopped together."""

    def __init__(self, output: TextIO | None = None, log_file: Path | None = None) -> None:
        self._output = output if output is not None else sys.stdout
        self._log = log_file.open("a", encoding="utf-8") if log_file is not None else None
        self._write_lock = threading.Lock()
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self._readers: list[threading.Thread] = []

    def start(self, commands: Mapping[str, Sequence[str]], env: Mapping[str, str] | None = None) -> None:
        """Start one process per command, in this environment plus ``env``, with the shipped Fast DDS profile.

        The profile (:func:`robot_brain.cli.isolation.dds_environment`) lets camera frames cross
        processes; a ``FASTDDS_DEFAULT_PROFILES_FILE`` already set here or in ``env`` wins.
        """
        environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        environment.update(dds_environment(environment))
        width = max((len(name) for name in commands), default=0)
        for name, command in commands.items():
            # A session of its own: the terminal's Ctrl-C reaches only us, and we stop the nodes in order.
            process = subprocess.Popen(
                list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                env=environment, start_new_session=True,
            )
            self.processes[name] = process
            reader = threading.Thread(target=self._pump, args=(name.ljust(width), process), daemon=True)
            reader.start()
            self._readers.append(reader)

    def _pump(self, label: str, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.say(f"[{label}] {line.rstrip()}")

    def say(self, line: str) -> None:
        with self._write_lock:
            print(line, file=self._output, flush=True)
            if self._log is not None:
                print(line, file=self._log, flush=True)

    def first_exit(self) -> tuple[str, int] | None:
        """The first node found exited, with its status, or None while all run."""
        for name, process in self.processes.items():
            code = process.poll()
            if code is not None:
                return name, code
        return None

    def wait(self, stop_event: threading.Event | None = None, period: float = 0.2) -> int:
        """Block until a node exits (then stop the rest) or ``stop_event`` is set; returns the exit status."""
        try:
            while stop_event is None or not stop_event.is_set():
                exited = self.first_exit()
                if exited is not None:
                    name, code = exited
                    self.say(f"[up] {name} exited with status {code}; stopping the other nodes")
                    self.stop()
                    return code if code != 0 else 1
                time.sleep(period)
        except KeyboardInterrupt:
            self.say("[up] Ctrl-C: stopping the nodes")
        self.stop()
        return 0

    def stop(self, timeout: float = STOP_TIMEOUT_S,
             order: Sequence[Sequence[str]] = STOP_ORDER) -> dict[str, int]:
        """Stop the nodes group by group (``order``); returns each node's exit status.

        Within a group: SIGINT, then SIGTERM, then SIGKILL to whoever is still running.
        """
        named = {name for group in order for name in group}
        first = [name for name in self.processes if name not in named]
        for index, group in enumerate(order):
            members = [name for name in (*(first if index == 0 else ()), *group) if name in self.processes]
            self._stop_group([self.processes[name] for name in members], timeout)
        for reader in self._readers:
            reader.join(timeout=2.0)
        remove_dead_dds_segments()  # a node killed or ended uncleanly left its shared memory behind
        if self._log is not None:
            self._log.close()
            self._log = None
        return {name: p.returncode for name, p in self.processes.items()}

    def _stop_group(self, processes: Sequence[subprocess.Popen[str]], timeout: float) -> None:
        for sig, grace in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            running = [p for p in processes if p.poll() is None]
            if not running:
                return
            for process in running:
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            for process in running:
                try:
                    process.wait(timeout=max(deadline - time.monotonic(), 0.01))
                except subprocess.TimeoutExpired:
                    self.say(f"[up] {self._name_of(process)} did not stop after {sig.name}")

    def _name_of(self, process: subprocess.Popen[str]) -> str:
        return next(name for name, p in self.processes.items() if p is process)


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


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (installed explicitly: a shell's background job ignores SIGINT)."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return stop
