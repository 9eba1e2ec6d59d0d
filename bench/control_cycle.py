"""Compute of one control cycle, ROS-free: ``ArmController.cycle`` on real arms, policy and teleop sources.

What runs, per arm (Panda, UR5 by default) at ``--rate`` Hz of simulated loop time:

* ``policy``: an ``ee_pose_delta`` ActionChunk (horizon 10, dt 0.05 s, a 3 cm circle) every
  50 ms, as ``robot-brain bench control``'s peer sends, converted by ``on_chunk`` (IK, not
  timed: the node does it on its slow lane); joint states every 2 ms following the command.
* ``teleop``: a tool-frame twist (a slowly turning 5 cm/s velocity) every 10 ms, same joint states.
* ``jog``: joint-velocity jogs every 10 ms (teleop's joint-jog mode).

Only ``cycle`` (and, in the ``publish`` column, filling the reusable command message from the
command) is timed, with ``time.perf_counter_ns`` around each call. The same-run baseline is an
empty Python call (the floor of any per-call timing here). ``allocated blocks`` is the change of
``sys.getallocatedblocks()`` over the timed cycles of the steady state (0: nothing per cycle
outlives the cycle; the allocation test in test/control/test_cycle_allocations.py checks the
same with tracemalloc).

    .venv/bin/python bench/control_cycle.py [--arms panda ur5] [--cycles 20000] [--rate 1000] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from typing import Any

import numpy as np

from robot_brain.control.chunks import RawChunk
from robot_brain.control.controller import ArmController, ControllerConfig
from robot_brain.control.safety import SafetyLimits
from robot_brain.embodiment import load_arm
from robot_brain.embodiment.catalog import bundled_arm_path

CHUNK_PERIOD = 0.05
STATE_PERIOD = 0.002
TELEOP_PERIOD = 0.01


def circle_chunk(step: int, stamp: float) -> RawChunk:
    """The bench peer's chunk: a 3 cm circle at 0.25 Hz relative to the observed pose."""
    t = step * CHUNK_PERIOD + 0.05 * np.arange(1, 11)
    back = t - 0.05 * np.arange(1, 11)
    actions = np.zeros((10, 7))
    actions[:, 0] = 0.03 * (np.cos(2 * np.pi * 0.25 * t) - np.cos(2 * np.pi * 0.25 * back))
    actions[:, 1] = 0.03 * (np.sin(2 * np.pi * 0.25 * t) - np.sin(2 * np.pi * 0.25 * back))
    actions[:, 6] = 1.0
    return RawChunk(stamp, "ee_pose_delta", 10, 0.05, 7, (), False, actions.ravel())


def make_controller(name: str, rate: float) -> ArmController:
    arm = load_arm(str(bundled_arm_path(name)))
    spec = arm.spec
    limits = SafetyLimits.from_spec(spec.lower, spec.upper, spec.velocity)
    return ArmController(arm, limits, ControllerConfig(rate_hz=rate, chunk_timeout=1.0))


def run(name: str, source: str, cycles: int, rate: float, warmup: int = 2000) -> dict[str, Any]:
    """Time ``cycles`` steady-state cycles after ``warmup`` ones; returns µs percentiles and allocation counts."""
    from robot_brain.ros.control_msgs import ForwardCommand  # rclpy message only: no DDS

    controller = make_controller(name, rate)
    period = controller.config.period
    dof = controller.spec.dof
    order = np.arange(dof)[::-1].copy()  # a controller joint order unlike the arm's, as in a cell
    out = ForwardCommand(dof, order)
    t = 1000.0
    controller.on_joint_state(controller.spec.middle_configuration(), t, t)
    controller.resume()
    times = np.zeros(cycles, dtype=np.int64)
    publish_times = np.zeros(cycles, dtype=np.int64)
    next_chunk = next_state = next_teleop = t
    chunk_step = 0
    twist = np.zeros(6)
    jog = np.zeros(dof)
    clock = time.perf_counter_ns
    blocks_before = 0
    gc.collect()
    for index in range(warmup + cycles):
        t += period
        if t >= next_state:
            controller.on_joint_state(controller.filter.position.copy(), t, t)
            next_state += STATE_PERIOD
        if source == "policy" and t >= next_chunk:
            controller.on_chunk(circle_chunk(chunk_step, t - 0.01), t)
            chunk_step += 1
            next_chunk += CHUNK_PERIOD
        if source != "policy" and t >= next_teleop:
            angle = 0.5 * t
            if source == "teleop":
                twist[0], twist[1] = 0.05 * math.cos(angle), 0.05 * math.sin(angle)
                controller.on_teleop(twist, True, t)
            else:
                jog[:] = 0.0
                jog[int(t) % dof] = 0.2 * math.sin(angle)
                controller.on_joint_jog(jog, t)
            next_teleop += TELEOP_PERIOD
        if index == warmup:
            gc.collect()
            blocks_before = sys.getallocatedblocks()
        start = clock()
        command = controller.cycle(t)
        middle = clock()
        if command.positions is not None:
            out.fill(command.positions)
        end = clock()
        if index >= warmup:
            times[index - warmup] = middle - start
            publish_times[index - warmup] = end - middle
    blocks = sys.getallocatedblocks() - blocks_before
    assert controller.source == ("policy" if source == "policy" else "teleop"), controller.source
    compute = times / 1e3
    publish = publish_times / 1e3
    return {
        "arm": name,
        "dof": dof,
        "source": source,
        "cycles": cycles,
        "p50_us": round(float(np.percentile(compute, 50)), 1),
        "p99_us": round(float(np.percentile(compute, 99)), 1),
        "publish_p50_us": round(float(np.percentile(publish, 50)), 1),
        "allocated_blocks": blocks,
    }


def empty_call_ns(count: int = 100_000) -> float:
    """Median of timing an empty Python call the same way: the floor under every figure."""
    clock = time.perf_counter_ns

    def nothing(t: float) -> None:
        return None

    samples = np.zeros(count, dtype=np.int64)
    for index in range(count):
        start = clock()
        nothing(0.0)
        samples[index] = clock() - start
    return float(np.median(samples))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=["panda", "ur5"])
    parser.add_argument("--sources", nargs="+", default=["policy", "teleop", "jog"])
    parser.add_argument("--cycles", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [run(name, source, args.cycles, args.rate) for name in args.arms for source in args.sources]
    baseline = round(empty_call_ns() / 1e3, 2)
    if not args.json:
        print(f"{'arm':<8}{'source':<8}{'cycle p50 µs':>14}{'cycle p99 µs':>14}{'publish p50 µs':>16}"
              f"{'allocated blocks':>18}")
        for row in rows:
            print(f"{row['arm']:<8}{row['source']:<8}{row['p50_us']:>14}{row['p99_us']:>14}"
                  f"{row['publish_p50_us']:>16}{row['allocated_blocks']:>18}")
        print(f"(baseline: an empty timed Python call {baseline} µs; {args.cycles} cycles per row at {args.rate:g} Hz)")
    print(json.dumps({"rows": rows, "empty_call_us": baseline, "rate_hz": args.rate}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
