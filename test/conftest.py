"""Shared test set-up.

Every test run talks DDS in its own ``ROS_DOMAIN_ID`` (derived from the process id) and
only on this host, so parallel runs and other machines never see each other's topics.
Child processes started by tests inherit the same environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

REPO_ROOT = Path(__file__).resolve().parents[1]
# Shared test helpers (robots.py: paths of real URDFs from pip packages) import as top-level modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))


_REALTIME_POLICIES = {getattr(os, "SCHED_FIFO", -1), getattr(os, "SCHED_RR", -1)}


@pytest.fixture(autouse=True)
def _no_realtime_scheduling_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves the test process's main thread in a real-time scheduling policy.

    Every node process a later test starts inherits it: SVT-AV1 once left pytest at
    SCHED_FIFO 99, and the nodes of every later test then starved each other on two cores.
    """
    yield
    if not hasattr(os, "sched_getscheduler"):
        return
    policy = os.sched_getscheduler(0)
    if policy in _REALTIME_POLICIES:
        priority = os.sched_getparam(0).sched_priority
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        pytest.fail(f"{request.node.nodeid} left the test process in real-time scheduling "
                    f"(policy {policy}, priority {priority}); reset to SCHED_OTHER")
