"""Node processes started and stopped together: what ``robot-brain up``, ``demo``, ``teleop`` and ``collect`` run.

``ros2 launch`` is not installable from PyPI, so this is the launcher that works everywhere:
the node list and parameters come from :mod:`robot_brain.bringup.plan` (the same functions
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

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from robot_brain.bringup.isolation import dds_environment, remove_dead_dds_segments

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

        The profile (:func:`robot_brain.bringup.isolation.dds_environment`) lets camera frames cross
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


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (installed explicitly: a shell's background job ignores SIGINT)."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return stop


class DiscardedOutput:
    """A text sink for node output nobody watches (it still goes to the log file)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
