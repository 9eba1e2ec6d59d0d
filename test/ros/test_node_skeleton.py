"""The node skeleton every node is built on: lifecycle order, supervised workers, faults, signals.

In-process tests run the real skeleton (``test/helpers/pulse_node.py``) over real DDS in a
context and domain of their own; process tests send real signals to the real script.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from helpers.domains import next_domain
from helpers.pulse_node import PulseNode
from helpers.waiting import wait_for
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from std_msgs.msg import Int64
from std_srvs.srv import Trigger

pytestmark = pytest.mark.dds
PULSE_SCRIPT = Path(__file__).resolve().parents[1] / "helpers" / "pulse_node.py"
CONFIGURE, CLEANUP, ACTIVATE, DEACTIVATE = 1, 2, 3, 4


class Probe(Node):
    def __init__(self, context: Context) -> None:
        super().__init__("pulse_probe", context=context)
        self.pulses: list[int] = []
        self.statuses: list[DiagnosticStatus] = []
        self.create_subscription(Int64, "/pulse", lambda m: self.pulses.append(m.data), QoSProfile(depth=100))
        self.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.statuses.extend(m.status), 10)
        self._service_clients: dict[str, object] = {}

    def call(self, kind: type, name: str, request: object, timeout: float = 10.0) -> object | None:
        if name not in self._service_clients:
            self._service_clients[name] = self.create_client(kind, name)
        client = self._service_clients[name]
        assert client.wait_for_service(timeout_sec=15.0), name
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.005)
        return future.result() if future.done() else None

    def transition(self, transition: int) -> bool:
        request = ChangeState.Request()
        request.transition.id = transition
        response = self.call(ChangeState, "/pulse/change_state", request)
        return bool(response and response.success)

    def state(self) -> str:
        response = self.call(GetState, "/pulse/get_state", GetState.Request())
        return response.current_state.label if response else "no answer"

    def last_status(self) -> DiagnosticStatus | None:
        mine = [s for s in self.statuses if s.name.startswith("pulse")]
        return mine[-1] if mine else None


@dataclass
class Bench:
    node: PulseNode
    probe: Probe


@contextmanager
def bench(**parameters: object) -> Iterator[Bench]:
    context = Context()
    rclpy.init(context=context, domain_id=next_domain())
    node = PulseNode(context=context, parameter_overrides=[
        rclpy.parameter.Parameter(k, value=v) for k, v in {"diagnostics_period_s": 0.2, **parameters}.items()])
    probe = Probe(context)
    stop = threading.Event()
    executors = [SingleThreadedExecutor(context=context) for _ in range(2)]
    executors[0].add_node(node)
    executors[1].add_node(probe)
    threads = [threading.Thread(target=node.spin, args=(executors[0], stop), daemon=True),
               threading.Thread(target=executors[1].spin, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield Bench(node, probe)
    finally:
        stop.set()
        for executor in executors:
            executor.shutdown(timeout_sec=2.0)
        for thread in threads:
            thread.join(timeout=5.0)
        node.destroy_node()
        probe.destroy_node()
        context.try_shutdown()


def test_publishers_are_enabled_before_workers_start_so_no_first_output_is_lost() -> None:
    with bench() as b:
        assert b.probe.transition(CONFIGURE)
        wait_for(lambda: b.node._publisher.get_subscription_count() > 0, 15.0, "the probe to match")
        assert b.probe.transition(ACTIVATE)
        wait_for(lambda: len(b.probe.pulses) >= 5, 5.0, "pulses")
        assert b.probe.pulses[:5] == [0, 1, 2, 3, 4]
        assert b.probe.transition(DEACTIVATE)
        wait_for(lambda: -1 in b.probe.pulses, 5.0, "the deactivation's own output")
        assert not any(worker.alive for worker in b.node._workers.values())


def test_a_failing_worker_takes_the_error_path_reports_and_recovers_on_configure() -> None:
    with bench() as b:
        assert b.probe.transition(CONFIGURE) and b.probe.transition(ACTIVATE)
        wait_for(lambda: len(b.probe.pulses) > 3, 5.0, "pulses")
        assert b.probe.call(Trigger, "/pulse/fail_worker", Trigger.Request())
        wait_for(lambda: b.probe.state() == "unconfigured", 5.0, "the error path to end in unconfigured")
        assert b.node.fault == "worker pulse failed: RuntimeError: injected worker failure"
        wait_for(lambda: (s := b.probe.last_status()) is not None and s.level == DiagnosticStatus.ERROR
                 and "injected worker failure" in s.message, 5.0, "a diagnostics ERROR naming the fault")
        # Recovery is the lifecycle's: configure and activate again.
        assert b.probe.transition(CONFIGURE) and b.probe.transition(ACTIVATE)
        assert b.node.fault == ""
        count = len(b.probe.pulses)
        wait_for(lambda: len(b.probe.pulses) > count + 3, 5.0, "pulses after recovery")
        wait_for(lambda: (s := b.probe.last_status()) is not None and s.level == DiagnosticStatus.OK, 5.0,
                 "diagnostics OK again")


def test_an_exception_in_a_callback_is_a_fault_not_the_end_of_the_spinning_thread() -> None:
    with bench() as b:
        assert b.probe.transition(CONFIGURE) and b.probe.transition(ACTIVATE)
        b.probe.call(Trigger, "/pulse/fail_callback", Trigger.Request(), timeout=1.0)  # never answered
        wait_for(lambda: b.node.fault.startswith("callback failed: ValueError: injected callback failure"), 5.0,
                 "the fault")
        wait_for(lambda: b.probe.state() == "unconfigured", 5.0, "the error state")
        assert b.probe.transition(CONFIGURE), "the node still serves its lifecycle services"


def test_a_worker_that_does_not_stop_is_reported_and_blocks_reactivation() -> None:
    with bench() as b:
        b.node.worker_join_timeout = 0.3
        b.node.hang_s = 1.5
        assert b.probe.transition(CONFIGURE) and b.probe.transition(ACTIVATE)
        assert b.probe.transition(DEACTIVATE)
        wait_for(lambda: (s := b.probe.last_status()) is not None and "did not stop" in s.message, 5.0,
                 "a diagnostics ERROR about the worker")
        assert not b.probe.transition(ACTIVATE), "a second worker must not start beside the first"
        time.sleep(1.5)
        assert b.probe.transition(ACTIVATE), "once the old worker ended, activation works again"


def _start_pulse_process() -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(PULSE_SCRIPT), "--ros-args", "-p", "autostart:=true"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    deadline = time.monotonic() + 30.0
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if "active" in line:
            return process
    process.kill()
    pytest.fail("the pulse node did not become active:\n" + "".join(lines))


@pytest.mark.parametrize("signals", [(signal.SIGINT,), (signal.SIGTERM,), (signal.SIGINT, signal.SIGINT)],
                         ids=["SIGINT", "SIGTERM", "SIGINT twice"])
def test_signals_stop_the_process_in_order_with_exit_0_and_no_traceback(signals: tuple[signal.Signals, ...]) -> None:
    process = _start_pulse_process()
    time.sleep(0.3)
    for sig in signals:
        process.send_signal(sig)
        time.sleep(0.01)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert f"{signals[0].name}: stopping in order" in output
    assert "stopped in order" in output
    if len(signals) > 1:
        assert "1 further signal(s) ignored while stopping in order" in output
