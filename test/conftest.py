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


@pytest.fixture(autouse=True)
def _no_realtime_scheduling_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves any thread of the test process in a real-time scheduling policy.

    Every node process a later test starts inherits the main thread's: SVT-AV1 once left pytest at
    SCHED_FIFO 99, and the nodes of every later test then starved each other on two cores. And
    glibc hands a policy set through pthread_setschedparam on to threads created later, so DDS
    threads came up at SCHED_FIFO 99 after the main thread itself was restored.
    """
    yield
    from robot_brain.scheduling import demote_threads, realtime_threads

    raised = realtime_threads()
    if raised:
        names = sorted(_thread_name(tid) for tid in raised)
        demote_threads(raised)
        pytest.fail(f"{request.node.nodeid} left {len(raised)} thread(s) of the test process in real-time "
                    f"scheduling ({', '.join(names)}); demoted to SCHED_OTHER")


def _thread_name(tid: int) -> str:
    try:
        return Path(f"/proc/self/task/{tid}/comm").read_text().strip()
    except OSError:
        return str(tid)
