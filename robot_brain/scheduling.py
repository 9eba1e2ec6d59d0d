"""Thread scheduling policies: save and restore a thread's, and undo real-time ones a library set.

Two places need it: the control loop asks for ``SCHED_FIFO`` for its own thread and must give
it back when the loop ends (in cooperative mode that thread goes on spinning the node), and the
video encoder (SVT-AV1 run as root) raises itself and its workers to ``SCHED_FIFO`` 99, which
:mod:`robot_brain.datasets.video` undoes. Every function is a no-op where the OS lacks the calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Iterable
from typing import Any

Scheduling = tuple[int, Any]  # (policy, os.sched_param)


def current_scheduling() -> Scheduling | None:
    """The calling thread's scheduling policy and parameters (None where the OS has no such call)."""
    if not hasattr(os, "sched_getscheduler"):
        return None
    return os.sched_getscheduler(0), os.sched_getparam(0)


def restore_scheduling(scheduling: Scheduling | None) -> None:
    """Give the calling thread back the policy :func:`current_scheduling` returned.

    Through ``pthread_setschedparam`` where it can: glibc keeps a copy of a thread's policy
    when it was set that way (SVT-AV1 does) and gives it to every thread that thread creates
    later, whatever the kernel says the thread itself runs at. Restoring with the
    ``sched_setscheduler`` system call alone left pytest's later DDS threads at SCHED_FIFO 99.
    """
    if scheduling is None:
        return
    policy, param = scheduling
    if _pthread_setschedparam(policy, param.sched_priority):
        return
    try:
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != scheduling:
            os.sched_setscheduler(0, policy, param)
    except OSError:
        pass


class _SchedParam(ctypes.Structure):
    _fields_ = [("sched_priority", ctypes.c_int)]


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library, loaded once with the prototypes used here (``OSError`` where it cannot be)."""
    library = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if hasattr(library, "pthread_setschedparam"):
        library.pthread_self.restype = ctypes.c_ulong
        library.pthread_setschedparam.argtypes = [ctypes.c_ulong, ctypes.c_int, ctypes.POINTER(_SchedParam)]
    return library


def _pthread_setschedparam(policy: int, priority: int) -> bool:
    """Set the calling thread's policy through glibc (its cached copy too); False where that is not possible."""
    try:
        c = libc()
        return c.pthread_setschedparam(c.pthread_self(), policy, ctypes.byref(_SchedParam(priority))) == 0
    except (OSError, AttributeError):
        return False


def realtime_threads() -> set[int]:
    """Ids of this process's threads under a real-time policy (empty where /proc is absent)."""
    if not hasattr(os, "SCHED_FIFO"):
        return set()
    realtime = {os.SCHED_FIFO, os.SCHED_RR}
    try:
        tids = [int(name) for name in os.listdir("/proc/self/task")]
    except OSError:
        return set()
    found: set[int] = set()
    for tid in tids:
        try:
            if os.sched_getscheduler(tid) in realtime:
                found.add(tid)
        except OSError:  # the thread ended meanwhile
            continue
    return found


def demote_threads(tids: Iterable[int]) -> None:
    """Put ``tids`` back on normal scheduling (``SCHED_OTHER``); threads that ended are skipped."""
    for tid in tids:
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            continue
