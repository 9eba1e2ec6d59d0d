"""Floors under the control loop on this machine: a bare sleep loop, and what one executor call costs.

1. **Bare absolute-deadline sleep loop** at ``--rate`` Hz for ``--seconds``: ``time.sleep`` to
   each deadline (start + k·period, ``perf_counter``), no work, the same SCHED_FIFO priority and
   1 ns timer slack the arm controller asks for. Period error = wake-up − deadline; missed =
   wake-ups later than the next deadline. This is the kernel's (and the VM's) wake-up latency,
   which the controller's ``wake_spin_us`` busy-wait is there to hide.
2. **One ``executor.spin_once(timeout_sec=0)``** on an idle lifecycle node (its lifecycle and
   parameter services) with the controller's two subscriptions (``/joint_states``,
   ``/policy/action_chunk``) and nothing arriving, for rclpy's
   SingleThreadedExecutor and EventsExecutor: what the cooperative loop pays every time it
   serves callbacks between periods.

    .venv/bin/python bench/loop_baselines.py [--rate HZ] [--seconds S] [--calls N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from robot_brain.control.loop import set_timer_slack, try_realtime


def sleep_loop(rate: float, seconds: float) -> dict[str, object]:
    period = 1.0 / rate
    cycles = int(rate * seconds)
    errors = np.empty(cycles)
    start = time.perf_counter() + period
    for k in range(cycles):
        deadline = start + k * period
        remaining = deadline - time.perf_counter()
        if remaining > 0:
            time.sleep(remaining)
        errors[k] = time.perf_counter() - deadline
    errors_us = errors * 1e6
    return {
        "rate_hz": rate, "cycles": cycles, "missed": int(np.count_nonzero(errors > period)),
        "p50_us": round(float(np.median(errors_us)), 1), "p99_us": round(float(np.percentile(errors_us, 99)), 1),
        "max_us": round(float(errors_us.max()), 1),
    }


def spin_once_cost(calls: int) -> dict[str, dict[str, float]]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.experimental import EventsExecutor
    from rclpy.lifecycle import LifecycleNode
    from robot_brain_msgs.msg import ActionChunk
    from sensor_msgs.msg import JointState

    rclpy.init()
    results = {}
    try:
        for name, kind in (("SingleThreadedExecutor", SingleThreadedExecutor), ("EventsExecutor", EventsExecutor)):
            node = LifecycleNode(f"loop_baseline_{name.lower()}")
            node.create_subscription(JointState, "/joint_states", lambda msg: None, 10)
            node.create_subscription(ActionChunk, "/policy/action_chunk", lambda msg: None, 10)
            executor = kind()
            executor.add_node(node)
            for _ in range(100):  # warm-up
                executor.spin_once(timeout_sec=0.0)
            durations = np.empty(calls)
            for i in range(calls):
                started = time.perf_counter()
                executor.spin_once(timeout_sec=0.0)
                durations[i] = time.perf_counter() - started
            executor.shutdown()
            node.destroy_node()
            us = durations * 1e6
            results[name] = {"p50_us": round(float(np.median(us)), 1), "p99_us": round(float(np.percentile(us, 99)), 1)}
    finally:
        rclpy.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="sleep-loop rate, Hz (default 1000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="sleep-loop duration (default 10)")
    parser.add_argument("--calls", type=int, default=5000, help="spin_once calls per executor (default 5000)")
    parser.add_argument("--realtime-priority", type=int, default=80, help="SCHED_FIFO priority (0: do not ask)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    realtime = try_realtime(args.realtime_priority) if args.realtime_priority > 0 else "not requested"
    slack = set_timer_slack(1)
    loop = sleep_loop(args.rate, args.seconds)
    spin = spin_once_cost(args.calls)
    if not args.json:
        print(f"bare absolute-deadline sleep loop, {args.rate:g} Hz, {args.seconds:g} s ({realtime}, "
              f"timer slack 1 ns: {slack}): missed {loop['missed']} of {loop['cycles']}, period error "
              f"p50 {loop['p50_us']} / p99 {loop['p99_us']} / max {loop['max_us']} µs")
        for name, row in spin.items():
            print(f"{name}.spin_once(timeout_sec=0), idle lifecycle node, 2 subscriptions: p50 {row['p50_us']} / "
                  f"p99 {row['p99_us']} µs")
    print(json.dumps({"benchmark": "loop_baselines", "realtime": realtime, "timer_slack_1ns": slack,
                      "cores": os.cpu_count(), "sleep_loop": loop, "spin_once": spin}))


if __name__ == "__main__":
    main()
