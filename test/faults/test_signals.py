"""Signals to the nodes and to ``robot-brain up``: braking first, then an ordered stop with exit 0.

Each test starts its own processes (the recoverable faults' shared system, test_faults.py,
is stopped by then: it is module-scoped there).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers.cell_system import (
    MEASUREMENT_SLACK_S,
    PERIOD_S,
    FaultResult,
    System,
    analyse_commands,
    keep_moving,
    motion_targets,
    reach_plan,
    record_result,
    running_system,
    wait_for,
)
from helpers.domains import next_domain

pytestmark = [pytest.mark.dds, pytest.mark.slow]
BRAKE_BOUND_S = 2 * PERIOD_S


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text and "KeyboardInterrupt" not in text and "RCLError" not in text, text[-3000:]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_controller_brakes_the_moving_arm_before_it_exits(sig: signal.Signals,
                                                                         tmp_path: Path) -> None:
    with running_system(tmp_path) as system:
        targets = motion_targets(system)
        stop = threading.Event()
        thread = threading.Thread(target=keep_moving, args=(system, stop), daemon=True)
        thread.start()
        try:
            system.wait_moving(speed=0.2)
            for _ in range(100):  # signal mid-stride: while the speed is still rising or steady
                recent = analyse_commands(system.observer.commands_since(time.monotonic() - 0.05), system.limits)
                if recent.peak_speed > 0.2:
                    break
                time.sleep(0.01)
            sent = system.signal("arm_controller", sig)
            code = system.wait_exit("arm_controller", 15.0)
        finally:
            stop.set()
            thread.join(timeout=2.0)
        assert code == 0
        log = system.log_text()
        _no_traceback(log)
        assert f"{sig.name}: stopping in order" in log and "stopped in order" in log
        analysis = analyse_commands(system.observer.commands_since(sent - 0.5), system.limits, after=sent)
        assert analysis.within_limits, analysis
        assert analysis.braking_onset is not None and analysis.at_rest is not None, analysis
        latency = analysis.braking_onset - sent
        assert latency <= BRAKE_BOUND_S + MEASUREMENT_SLACK_S, f"braking began {latency * 1e3:.1f} ms after {sig.name}"
        del targets
    record_result(FaultResult(
        fault=f"{sig.name} to the arm controller while the arm moves", injected=f"{sig.name} to its process",
        detection="signal handler (braking requested at once)", bound_ms=BRAKE_BOUND_S * 1e3,
        measured_ms=latency * 1e3, outcome=f"braked to rest ({(analysis.at_rest - sent) * 1e3:.0f} ms), halt "
        "published, lifecycle deactivated and shut down, exit 0", reported="log: stopping in order / stopped in order",
        recovered="n/a (the process ends)", within_limits=analysis.within_limits))


@pytest.mark.parametrize("node", ["sim", "policy", "perception"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_any_node_stops_it_in_order_with_exit_0(node: str, sig: signal.Signals, tmp_path: Path) -> None:
    plan = reach_plan(names=(node,), sim={"camera_rate_hz": 5.0, "camera_width": 160, "camera_height": 120})
    system = System(plan, tmp_path)
    try:
        system.start()
        wait_for(lambda: f"[{node}" in system.log_text() and "active" in system.log_text(), 60.0, f"{node} active")
        time.sleep(0.5)
        started = system.signal(node, sig)
        code = system.wait_exit(node, 15.0)
        stopped_s = time.monotonic() - started
    finally:
        system.close()
    log = system.log_text()
    assert code == 0, log[-3000:]
    _no_traceback(log)
    assert f"{sig.name}: stopping in order" in log and "stopped in order" in log, log[-3000:]
    record_result(FaultResult(
        fault=f"{sig.name} to {node}", injected=f"{sig.name} to its process", detection="signal handler",
        bound_ms=None, measured_ms=None,
        outcome=f"workers stopped and joined, lifecycle shut down, exit 0 after {stopped_s * 1e3:.0f} ms",
        reported="log: stopping in order / stopped in order", recovered="n/a (the process ends)", within_limits=True,
        extra={"time_to_exit_ms": stopped_s * 1e3}))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_up_stops_every_node_in_order(sig: signal.Signals, tmp_path: Path) -> None:
    env = {**os.environ, "ROS_DOMAIN_ID": str(next_domain()),
           "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "robot_brain.cli.main", "up", "--sim", "--robot", "panda", "--params-dir",
         str(tmp_path / "params"), "--param", "sim.camera_rate_hz=5.0",
         "--param", "arm_controller.realtime_priority=0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_for(lambda: sum("] active" in line or ": active" in line for line in lines) >= 4, 90.0,
                 "four active nodes")
        time.sleep(1.0)
        started = time.monotonic()
        process.send_signal(sig)
        code = process.wait(timeout=60)
        stopped_s = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    reader.join(timeout=5.0)
    text = "".join(lines)
    assert code == 0, text[-3000:]
    _no_traceback(text)
    order = [name for line in lines if "stopped in order" in line
             for name in ("perception", "policy", "arm_controller", "sim") if f"[{name}" in line]
    assert sorted(order[:2]) == ["perception", "policy"] and order[2:] == ["arm_controller", "sim"], order
    record_result(FaultResult(
        fault=f"{sig.name} to robot-brain up", injected=f"{sig.name} to the launcher", detection="signal handler",
        bound_ms=None, measured_ms=None,
        outcome="nodes stopped in order: policy and perception, then the controller once braked, then the sim; "
        f"every node exit 0; {stopped_s:.1f} s in all", reported="[up] log lines", recovered="n/a (the launch ends)",
        within_limits=True,
        extra={"order": order}))
