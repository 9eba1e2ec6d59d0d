"""Shared fixtures for node tests over real DDS (imported by both test folders' conftest.py).

Nodes run in this process on a MultiThreadedExecutor spun by a background thread; they
still talk through Fast DDS (rclpy has no intra-process shortcut), in the run's own
ROS_DOMAIN_ID set by test/conftest.py.
"""

from __future__ import annotations

import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

ROBOTS = Path(sysconfig.get_paths()["purelib"]) / "cmeel.prefix/share/example-robot-data/robots"
"""example-robot-data's descriptions, in whichever environment runs the tests."""
PANDA = ROBOTS / "panda_description/urdf/panda.urdf"
UR5 = ROBOTS / "ur_description/urdf/ur5_robot.urdf"


@pytest.fixture(scope="session")
def ros_context() -> Iterator[None]:
    """One rclpy context for the whole session (both test folders import this fixture: init once)."""
    owner = not rclpy.ok()
    if owner:
        rclpy.init()
    yield
    if owner:
        rclpy.try_shutdown()


@pytest.fixture
def executor(ros_context: None) -> Iterator[MultiThreadedExecutor]:
    """An executor spinning in a background thread; nodes added to it are destroyed afterwards."""
    executor = MultiThreadedExecutor(num_threads=4)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield executor
    nodes = list(executor.get_nodes())
    for node in nodes:
        executor.remove_node(node)
    executor.shutdown(timeout_sec=5.0)
    thread.join(timeout=5.0)
    for node in nodes:
        if isinstance(node, Node):
            node.destroy_node()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, period: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return predicate()
