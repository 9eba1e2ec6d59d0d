"""`robot-brain up`: the command lines it runs, and how it supervises node processes."""

from __future__ import annotations

import io
import sys
import threading
import time

from robot_brain.bringup.processes import NodeProcesses
from robot_brain.cli.main import main

LOOP = "import sys, time\nprint('ready', flush=True)\nwhile True: time.sleep(0.05)"


def test_dry_run_prints_one_command_per_node(tmp_path, capsys) -> None:
    assert main(["up", "--sim", "--robot", "xarm6", "--dry-run", "--params-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["sim", "perception", "policy", "arm_controller"]
    assert all("--ros-args" in line and "--params-file" in line for line in lines)


def test_bad_robot_is_one_line_and_status_2(capsys) -> None:
    assert main(["up", "--robot", "nope", "--dry-run"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_output_is_prefixed_and_ctrl_c_stops_every_node() -> None:
    output = io.StringIO()
    group = NodeProcesses(output=output)
    group.start({"alpha": [sys.executable, "-c", LOOP], "beta": [sys.executable, "-c", LOOP]})
    deadline = time.monotonic() + 20
    while output.getvalue().count("ready") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop = threading.Event()
    stop.set()
    assert group.wait(stop) == 0
    assert all(p.poll() is not None for p in group.processes.values())
    text = output.getvalue()
    assert "[alpha] ready" in text and "[beta ] ready" in text


def test_one_node_dying_stops_the_others_with_its_status() -> None:
    output = io.StringIO()
    group = NodeProcesses(output=output)
    group.start({"steady": [sys.executable, "-c", LOOP],
                 "crashy": [sys.executable, "-c", "import sys; print('bye'); sys.exit(3)"]})
    started = time.monotonic()
    assert group.wait() == 3
    assert time.monotonic() - started < 15
    assert group.processes["steady"].poll() is not None
    assert "crashy exited with status 3" in output.getvalue()
