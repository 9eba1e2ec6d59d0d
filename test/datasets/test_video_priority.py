"""Encoding a video leaves no thread in real-time scheduling.

SVT-AV1, run as root (as on these machines and many cell computers), puts the thread that
opens it and its worker threads in SCHED_FIFO 99: above the arm controller's loop (80), and
inherited by every process the exporting thread starts next. ``encode_frames`` undoes that.
Run as another user the encoder raises nothing and the assertions hold trivially.
DDS threads started after encoding are checked too: glibc passes the policy SVT-AV1 set through
``pthread_setschedparam`` on to threads created later, even once the kernel's is restored.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import rclpy
from helpers.domains import next_domain
from rclpy.context import Context

from robot_brain.datasets.video import VideoEncoding, encode_frames, probe
from robot_brain.scheduling import restore_scheduling

REALTIME = {os.SCHED_FIFO, os.SCHED_RR}


def _realtime_thread_ids() -> list[int]:
    found = []
    for name in os.listdir("/proc/self/task"):
        try:
            if os.sched_getscheduler(int(name)) in REALTIME:
                found.append(int(name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("codec", ["libsvtav1", "h264"])
def test_no_thread_runs_real_time_while_or_after_encoding(codec: str, tmp_path: Path) -> None:
    frames = [np.full((64, 64, 3), 10 * k, dtype=np.uint8) for k in range(6)]
    seen_during: list[list[int]] = []
    policies_after: list[int] = []
    dds_threads: set[int] = set()

    def on_frame(index: int, frame: np.ndarray) -> None:
        if index >= 2:  # the encoder opened with frame 0
            seen_during.append(_realtime_thread_ids())

    def encode() -> None:
        encode_frames(tmp_path / f"{codec}.mp4", frames, fps=20, height=64, width=64,
                      encoding=VideoEncoding(codec=codec), expected_frames=len(frames), on_frame=on_frame)
        policies_after.append(os.sched_getscheduler(0))
        # glibc hands a thread's policy, as last set through pthread_setschedparam (SVT-AV1 does),
        # to the threads it later creates with default attributes, whatever the kernel says the
        # thread itself runs at: Fast DDS's threads, started after encoding, must not run real-time.
        context = Context()
        rclpy.init(context=context, domain_id=next_domain())
        node = rclpy.create_node("after_encoding", context=context)
        dds_threads.update(_realtime_thread_ids())
        node.destroy_node()
        context.try_shutdown()

    worker = threading.Thread(target=encode)  # a thread of its own: a failure cannot leave pytest's main thread raised
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert probe(tmp_path / f"{codec}.mp4").frames == len(frames)
    assert len(seen_during) == len(frames) - 2
    assert all(ids == [] for ids in seen_during), f"real-time threads while encoding: {seen_during}"
    assert policies_after == [os.SCHED_OTHER]
    assert not dds_threads, f"real-time DDS threads started after encoding: {dds_threads}"
    assert _realtime_thread_ids() == []


def test_a_real_time_caller_keeps_its_own_priority(tmp_path: Path) -> None:
    """A caller that runs real-time on purpose gets its policy back, not SCHED_OTHER."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except PermissionError:
        pytest.skip("needs CAP_SYS_NICE to run a thread at SCHED_FIFO")
    try:
        frames = [np.zeros((64, 64, 3), dtype=np.uint8)] * 3
        encode_frames(tmp_path / "a.mp4", frames, fps=20, height=64, width=64,
                      encoding=VideoEncoding(codec="libsvtav1"), expected_frames=3)
        assert os.sched_getscheduler(0) == os.SCHED_FIFO and os.sched_getparam(0).sched_priority == 10
    finally:  # through glibc, or the threads this thread starts later would still get SCHED_FIFO 10
        restore_scheduling((os.SCHED_OTHER, os.sched_param(0)))
