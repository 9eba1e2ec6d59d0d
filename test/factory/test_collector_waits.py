"""The scripted operator waits on what the nodes report, not on the clock.

A real :class:`~robot_brain.factory.collector.PadPublisher` over DDS (in a domain of its own), fed by a
stand-in cell: ``/joint_states`` with the arm still moving after the hands let go, and the teleop node's
``/teleop/status`` lines. The old collector slept 0.4 s and 0.3 s instead, whatever the nodes were doing.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import rclpy
from helpers.domains import next_domain
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from robots import ARMS
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from robot_brain.demo.runner import DemoError
from robot_brain.embodiment import load_arm
from robot_brain.factory import collector as collector_module
from robot_brain.factory.collector import REST_HOLD_S, REST_SPEED, TELEOP_STATUS_TOPIC, Collector
from robot_brain.teleop.mapping import TeleopMapping
from robot_brain.teleop.operator import Status, status_line

pytestmark = [pytest.mark.dds, pytest.mark.timeout(60)]



def _status(connected: bool = True, deadman: str = "released", estopped: bool = False, episode: str = "idle",
            fault: str = "") -> str:
    """A status line as the teleop node writes it."""
    return status_line(Status("Joy /joy", connected, deadman, "base", "normal", None, estopped, "cartesian", "",
                              episode, fault))


RELEASED = _status()
HELD = _status(deadman="held")
NOT_READY = [HELD, _status(episode="recording"), _status(connected=False), _status(fault="no reading from /joy"),
             _status(estopped=True)]


class _Runner:
    """What the collector needs of a DemoRunner: an executor for its node, and waits that raise DemoError."""

    def __init__(self) -> None:
        self.executor = SingleThreadedExecutor()
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def add_node(self, node: object) -> None:
        self.executor.add_node(node)

    def remove_node(self, node: object) -> None:
        self.executor.remove_node(node)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.01)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=2.0)


class _Cell:
    """Publishes joint states (moving at ``speed`` rad/s until told to stop) and teleop status lines."""

    def __init__(self, runner: _Runner, joints: tuple[str, ...]) -> None:
        self.node = rclpy.create_node("stand_in_cell")
        self.joints = joints
        self.speed = 0.0
        self.status = ""
        self._states = self.node.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)
        self._status = self.node.create_publisher(String, TELEOP_STATUS_TOPIC, 10)
        self._q = np.zeros(len(joints))
        self.node.create_timer(0.004, self._publish_state)  # the sim's 250 Hz
        self.node.create_timer(0.1, self._publish_status)  # the teleop node's status_rate
        runner.add_node(self.node)

    def _publish_state(self) -> None:
        velocity = np.full(len(self.joints), self.speed)
        self._q += velocity * 0.004
        self._states.publish(JointState(name=list(self.joints), position=self._q.tolist(), velocity=velocity.tolist()))

    def _publish_status(self) -> None:
        if self.status:
            self._status.publish(String(data=self.status))


@pytest.fixture
def bench() -> Iterator[tuple[Collector, _Cell]]:
    owner = not rclpy.ok()
    if owner:
        rclpy.init(domain_id=next_domain())
    runner = _Runner()
    arm = load_arm(ARMS["ur5"])
    collector = Collector(runner, arm, TeleopMapping.from_parameters({"input": "joy"}, layout=None))  # type: ignore[arg-type]
    cell = _Cell(runner, arm.spec.joint_names)
    runner.wait_for(lambda: collector.pad.tool is not None, 10.0, "joint states")
    yield collector, cell
    collector.close()
    runner.remove_node(cell.node)
    cell.node.destroy_node()
    runner.close()
    if owner:
        rclpy.try_shutdown()


def _after(delay: float, action: Callable[[], None]) -> threading.Timer:
    timer = threading.Timer(delay, action)
    timer.start()
    return timer


def test_labelling_waits_for_the_arm_to_come_to_rest(bench: tuple[Collector, _Cell]) -> None:
    collector, cell = bench
    cell.speed = 0.5  # still coasting after the hands let go
    stop = 0.8  # longer than the 0.4 s the old collector slept
    started = time.monotonic()
    timer = _after(stop, lambda: setattr(cell, "speed", 0.0))
    collector._wait_at_rest()
    waited = time.monotonic() - started
    timer.join()
    assert waited >= stop + REST_HOLD_S - 0.02, waited
    assert waited < stop + REST_HOLD_S + 1.0, waited
    assert collector.pad.speed < REST_SPEED


def test_an_arm_that_never_stops_is_an_error_that_says_so(bench: tuple[Collector, _Cell],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    collector, cell = bench
    monkeypatch.setattr(collector_module, "REST_TIMEOUT_S", 0.5)
    cell.speed = 0.3
    with pytest.raises(DemoError, match=r"did not come to rest within 0.5 s of letting go: fastest joint 0.3"):
        collector._wait_at_rest()


def test_an_arm_already_still_is_labelled_after_the_rest_hold(bench: tuple[Collector, _Cell]) -> None:
    collector, _ = bench
    started = time.monotonic()
    collector._wait_at_rest()
    assert REST_HOLD_S - 0.02 <= time.monotonic() - started < REST_HOLD_S + 0.5


def test_start_is_pressed_once_the_teleop_node_reports_the_released_pad(bench: tuple[Collector, _Cell]) -> None:
    collector, cell = bench
    cell.status = HELD
    time.sleep(0.25)  # the stand-in teleop node has reported "held" meanwhile
    started = time.monotonic()
    timer = _after(0.6, lambda: setattr(cell, "status", RELEASED))
    collector._wait_pad_released()
    timer.join()
    assert time.monotonic() - started >= 0.6


def test_a_status_from_before_the_hands_let_go_does_not_count(bench: tuple[Collector, _Cell],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    collector, cell = bench
    monkeypatch.setattr(collector_module, "READY_PAD_TIMEOUT_S", 0.5)
    cell.status = RELEASED
    time.sleep(0.25)
    assert collector.pad.status is not None and collector.pad.status[1] == RELEASED
    cell.status = ""  # the teleop node goes silent (status_rate 0, or it hangs)
    with pytest.raises(DemoError, match=r"did not report the released pad.*its last status: pad Joy /joy"):
        collector._wait_pad_released()


@pytest.mark.parametrize("line", NOT_READY)
def test_a_teleop_node_that_is_not_ready_is_an_error_that_shows_its_status(
        bench: tuple[Collector, _Cell], line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    collector, cell = bench
    monkeypatch.setattr(collector_module, "READY_PAD_TIMEOUT_S", 0.5)
    cell.status = line
    with pytest.raises(DemoError, match="its last status: " + re.escape(line.split(" |")[0])):
        collector._wait_pad_released()
