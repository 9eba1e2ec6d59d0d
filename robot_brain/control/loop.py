"""The timed control loop: absolute deadlines, timing statistics (ROS-free).

:meth:`ControlLoop.run` runs the periods in the calling thread and calls ``idle(until)``
between them (the node's cooperative mode serves ROS callbacks there);
:meth:`ControlLoop.start` runs them on a dedicated thread (threaded mode).

Why not an executor timer: a timer shares its thread with every callback (DDS, services,
logging) and measured 2-4x worse p99 period errors here (docs/benchmarks.md, control section). This
thread sleeps until absolute deadlines (``deadline += period``, so errors never
accumulate into drift), asks the kernel for 1 ns timer slack (the default 50 µs slack is
added to every sleep), and requests ``SCHED_FIFO`` where the OS permits; whether it was
granted is reported, never assumed. With ``wake_spin`` it sleeps to that long before the
deadline and busy-waits the rest, hiding the kernel's wake-up latency.

Each period runs ``compute(now)`` (the timing-critical part: state, blending, filter) and
then ``publish(result)`` (DDS), timed separately. A period whose work ends after the next
deadline is a *missed deadline*; when the thread wakes more than a period late, the missed
ticks are skipped (counted too) rather than run back to back.

When ``compute`` raises, the loop does not die silently: it records the error, calls
``on_error``, and, given a ``fallback`` compute (the arm controller's braking step), runs
that from the same period on until ``should_stop`` or :meth:`ControlLoop.halt`, so the arm
is braked and the halt published although the normal computation is broken.
"""

from __future__ import annotations

import gc
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from robot_brain.scheduling import current_scheduling, libc, restore_scheduling

_PR_SET_TIMERSLACK = 29


def set_timer_slack(nanoseconds: int = 1) -> bool:
    """Lower the calling thread's timer slack (Linux); returns whether it worked."""
    try:
        return libc().prctl(_PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def try_realtime(priority: int) -> str:
    """Ask for ``SCHED_FIFO`` at ``priority`` for the calling thread; returns what happened, in words."""
    if priority <= 0:
        return "not requested"
    if not hasattr(os, "sched_setscheduler"):
        return "unavailable on this OS"
    try:
        priority = min(priority, os.sched_get_priority_max(os.SCHED_FIFO))
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError:
        return "denied (needs CAP_SYS_NICE or an rtprio limit)"
    except OSError as error:
        return f"failed ({error.strerror})"
    return f"SCHED_FIFO {priority}"


class LoopStats:
    """Timing of the loop's periods, in a preallocated ring (no allocation per cycle)."""

    def __init__(self, period: float, capacity: int = 120_000) -> None:
        self.period = period
        self.capacity = capacity
        self._errors = np.zeros(capacity)
        self._compute = np.zeros(capacity)
        self._publish = np.zeros(capacity)
        self.reset()

    def reset(self) -> None:
        """Start a new measurement window (benchmarks call this after warm-up)."""
        self.cycles = 0
        self.missed = 0
        self.skipped = 0
        self.max_error = 0.0
        self._cpu_base: tuple[float, float] | None = None
        self._cpu_now = (0.0, 0.0)

    def record(self, error: float, compute: float, publish: float) -> None:
        index = self.cycles % self.capacity
        self._errors[index] = error
        self._compute[index] = compute
        self._publish[index] = publish
        self.cycles += 1
        if error > self.max_error:
            self.max_error = error
        if error + compute + publish > self.period:
            self.missed += 1

    def sample_cpu(self) -> None:
        """Called from the loop thread: remembers its CPU and wall time so any thread can compute CPU use."""
        now = (time.thread_time(), time.monotonic())
        if self._cpu_base is None:
            self._cpu_base = now
        self._cpu_now = now

    def summary(self) -> dict[str, Any]:
        """Percentiles over the last ``capacity`` periods (µs), counts and loop-thread CPU use (%)."""
        count = min(self.cycles, self.capacity)
        errors = self._errors[:count] * 1e6
        compute = self._compute[:count] * 1e6
        publish = self._publish[:count] * 1e6
        base = self._cpu_base or self._cpu_now
        cpu, wall = self._cpu_now[0] - base[0], self._cpu_now[1] - base[1]

        def pct(values: np.ndarray, q: float) -> float:
            return round(float(np.percentile(values, q)), 1) if count else math.nan

        return {
            "rate_hz": round(1.0 / self.period, 3),
            "cycles": self.cycles,
            "missed": self.missed + self.skipped,
            "skipped": self.skipped,
            "p50_us": pct(errors, 50),
            "p99_us": pct(errors, 99),
            "max_us": round(self.max_error * 1e6, 1),
            "compute_p50_us": pct(compute, 50),
            "compute_p99_us": pct(compute, 99),
            "publish_p50_us": pct(publish, 50),
            "cpu_percent": round(100.0 * cpu / wall, 1) if wall > 0 else math.nan,
        }


class ControlLoop:
    """Runs ``compute`` then ``publish`` every ``period`` seconds (in the calling thread or its own).

    ``compute(now)`` gets the wake-up time on the ``time.monotonic`` clock; ``publish`` gets
    its result. ``should_stop()`` (checked after each period) lets the owner end the loop
    on its own terms, e.g. once the arm is at rest after a deactivation. If ``compute``
    raises, the error is kept in :attr:`error`, ``on_error(error)`` is called, and with a
    ``fallback`` the loop goes on computing with it (:attr:`failed_over`) until it stops
    normally; without one, the loop ends. Exceptions from ``publish`` or from the fallback
    end the loop (kept in :attr:`error` too, ``on_error`` called).
    """

    def __init__(
        self,
        period: float,
        compute: Callable[[float], Any],
        publish: Callable[[Any], None],
        should_stop: Callable[[], bool] = lambda: False,
        realtime_priority: int = 80,
        name: str = "control_loop",
        on_error: Callable[[BaseException], None] | None = None,
        idle_margin: float = 3e-4,
        wake_spin: float = 0.0,
        fallback: Callable[[float], Any] | None = None,
    ) -> None:
        self.period = period
        self._compute = compute
        self._fallback = fallback
        self._publish = publish
        self._should_stop = should_stop
        self._priority = realtime_priority
        self._on_error = on_error
        #: Cooperative mode: ``idle`` must be done this long before the next deadline, s.
        self.idle_margin = idle_margin
        #: Sleep to this long before each deadline, then busy-wait to it (0: sleep all the way), s.
        self.wake_spin = wake_spin
        self.name = name
        self.stats = LoopStats(period)
        self.realtime = "not started"
        self.timer_slack = False
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._ended = threading.Event()
        self._ended.set()
        #: Thread id running the periods now (``run`` or ``start``), None when idle.
        self.owner: int | None = None
        #: The error of the current (or last) run: the one that ended it (publish, the fallback, idle, or
        #: compute without a fallback), else the compute error it failed over from.
        self.error: BaseException | None = None
        #: Whether the current (or last) run switched to the fallback after compute raised.
        self.failed_over = False
        #: An exception raised by ``on_error`` itself while failing over (braking went on regardless).
        self.on_error_failure: BaseException | None = None

    @property
    def running(self) -> bool:
        return not self._ended.is_set()

    def halt(self) -> None:
        """Ask the loop to end after the current period, without waiting."""
        self._halt.set()

    def start(self) -> None:
        if self.running:
            return
        self._halt.clear()
        self.error = None
        self.failed_over = False
        self._ended.clear()
        self._thread = threading.Thread(target=self._body, name=self.name, daemon=True)
        self._thread.start()

    def run(self, idle: Callable[[float], None], max_seconds: float = math.inf) -> None:
        """Run the periods in the *calling* thread until ``should_stop``, :meth:`halt` or ``max_seconds``.

        Cooperative mode: after each period's publish, ``idle(until)`` does the owner's other
        work (e.g. ROS callbacks) and must return by ``until`` = next deadline - ``idle_margin``;
        the loop then sleeps precisely to the deadline. No second Python thread competes for
        the GIL. ``idle`` may call ``run`` again (nested, e.g. a deactivation braking to rest
        from inside a callback); the outer run ends as soon as the nested one returns.
        An exception from ``compute`` switches to the ``fallback`` (see the class docstring);
        exceptions from ``publish`` (or without a fallback) end the loop and are kept in
        :attr:`error`; exceptions from ``idle`` (e.g. Ctrl-C, shutdown) propagate to the caller.
        """
        nested = self.owner == threading.get_ident()
        if not nested:
            self._halt.clear()
        self.error = None
        self.failed_over = False
        self._ended.clear()
        try:
            self._body(idle, max_seconds)
        finally:
            if nested:
                self._halt.set()  # the outer run ends after its idle slot
            self._ended.set()

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to end now (without waiting for ``should_stop``); returns whether it ended."""
        self._halt.set()
        return self.join(timeout)

    def join(self, timeout: float) -> bool:
        """Wait until the periods end (either mode); returns whether they did."""
        if self.owner == threading.get_ident():
            return False  # would wait on itself
        return self._ended.wait(timeout)

    def _body(self, idle: Callable[[float], None] | None = None, max_seconds: float = math.inf) -> None:
        outer_owner = self.owner
        self.owner = threading.get_ident()
        try:
            self._periods(idle, max_seconds)
        finally:
            self.owner = outer_owner
            if outer_owner is None:
                # The outermost run is over: give the frozen objects back to the collector, or
                # whatever the loop froze (the ROS context among them) is never finalised, and
                # Fast DDS leaves the process's shared-memory segment behind in /dev/shm.
                gc.unfreeze()
            if idle is None:
                self._ended.set()

    def _periods(self, idle: Callable[[float], None] | None, max_seconds: float) -> None:
        self.timer_slack = set_timer_slack(1)
        scheduling = current_scheduling()
        self.realtime = try_realtime(self._priority)
        gc.freeze()  # objects alive now are never scanned again: shorter collections mid-loop
        period = self.period
        margin = self.idle_margin
        wake_spin = self.wake_spin
        stats = self.stats
        compute = self._compute
        clock = time.monotonic
        sleep = time.sleep
        deadline = clock()
        end = deadline + max_seconds
        stats.reset()
        stats.sample_cpu()
        try:
            while not self._halt.is_set():
                deadline += period
                remaining = deadline - clock() - wake_spin
                if remaining > 0.0:
                    sleep(remaining)
                while clock() < deadline:  # wake_spin: busy-wait the last stretch (OS wake-up latency)
                    pass
                woke = clock()
                error = woke - deadline
                if error >= period:
                    skipped = int(error // period)
                    stats.skipped += skipped
                    deadline += skipped * period
                try:
                    result = compute(woke)
                except Exception as failure:
                    if self._fallback is None or compute is self._fallback:
                        raise
                    compute = self._fail_over(failure)
                    result = compute(woke)  # brake from this very period
                computed = clock()
                self._publish(result)
                done = clock()
                stats.record(error, computed - woke, done - computed)
                if stats.cycles % 256 == 0:
                    stats.sample_cpu()
                if self._should_stop() or woke > end:
                    break
                if idle is not None:
                    try:
                        idle(deadline + period - margin)
                    except BaseException as failure:
                        self.error = failure
                        raise
                    if self._should_stop():
                        break
        except Exception as error:  # the owner must learn why its loop died
            if self.error is error:
                raise
            self.error = error
            if self._on_error is not None:
                self._on_error(error)
        finally:
            stats.sample_cpu()
            # In cooperative mode this is the thread that spins the node: after the loop it serves
            # ordinary callbacks, and threads it starts would inherit SCHED_FIFO.
            restore_scheduling(scheduling)

    def _fail_over(self, failure: Exception) -> Callable[[float], Any]:
        """compute raised: record it, tell the owner, and continue with the fallback whatever the owner does."""
        assert self._fallback is not None
        self.error = failure
        self.failed_over = True
        if self._on_error is not None:
            try:
                self._on_error(failure)
            except Exception as handler_failure:  # the arm must still brake
                self.on_error_failure = handler_failure
        return self._fallback
