"""Compute of one control cycle, ROS-free: ``ArmController.cycle`` on real arms, policy and teleop sources.

What runs, per arm (Panda, UR5 by default) at ``--rate`` Hz of simulated loop time:

* ``policy``: an ``ee_pose_delta`` ActionChunk (horizon 10, dt 0.05 s, a 3 cm circle) every
  50 ms, as ``robot-brain bench control``'s peer sends, converted by ``on_chunk`` (IK, not
  timed: the node does it on its slow lane); joint states every 2 ms following the command.
* ``teleop``: a tool-frame twist (a slowly turning 5 cm/s velocity) every 10 ms, same joint states.
* ``jog``: joint-velocity jogs every 10 ms (teleop's joint-jog mode).

Only ``cycle`` (and, in the ``publish`` column, filling the reusable command message from the
command) is timed, with ``time.perf_counter_ns`` around each call. The same-run baseline is an
empty Python call (the floor of any per-call timing here). ``allocating`` counts, in a second
pass of ``--traced`` cycles under tracemalloc, the cycles (with their publish step) during which
the traced peak rose at all, inputs' cycles included (a chunk every 50, a teleop input every
10; test/control/test_cycle_allocations.py checks that no other cycle allocates).

    .venv/bin/python bench/control_cycle.py [--arms panda ur5] [--cycles 20000] [--traced 2000] [--rate 1000] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
import tracemalloc
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


def run(name: str, source: str, cycles: int, traced: int, rate: float, warmup: int = 2500) -> dict[str, Any]:
    """Time ``cycles`` steady-state cycles after ``warmup``, then count allocating ones over ``traced`` more."""
    from robot_brain.ros.control_msgs import ForwardCommand  # rclpy message only: no DDS

    controller = make_controller(name, rate)
    dof = controller.spec.dof
    order = list(range(dof))[::-1]  # a controller joint order unlike the arm's, as in a cell
    out = ForwardCommand(dof, order)
    t = 1000.0
    start = np.clip(controller.spec.middle_configuration() + np.array([0.3, -0.6, 0.9, -0.5, 0.4, 0.2, 0.1])[:dof],
                    controller.filter.limits.lower, controller.filter.limits.upper)
    controller.on_joint_state(start, t, t)
    controller.resume()
    state = {"t": t, "next_chunk": t, "next_state": t, "next_teleop": t, "chunk": 0}
    twist = np.zeros(6)
    jog = np.zeros(dof)

    def inputs() -> None:
        t = state["t"] = state["t"] + controller.config.period
        if t >= state["next_state"]:
            controller.on_joint_state(controller.filter.position if controller.filter.seeded else start, t, t)
            state["next_state"] += STATE_PERIOD
        if source == "policy" and t >= state["next_chunk"]:
            controller.on_chunk(circle_chunk(int(state["chunk"]), t - 0.01), t)
            state["chunk"] += 1
            state["next_chunk"] += CHUNK_PERIOD
        if source != "policy" and t >= state["next_teleop"]:
            angle = 5.0 * t
            if source == "teleop":
                twist[0], twist[1] = 0.05 * math.cos(angle), 0.05 * math.sin(angle)
                controller.on_teleop(twist, True, t)
            else:
                jog[:] = 0.0
                jog[int(t) % dof] = 0.2 * math.sin(angle)
                controller.on_joint_jog(jog, t)
            state["next_teleop"] += TELEOP_PERIOD

    def step() -> None:
        command = controller.cycle(state["t"])
        if command.positions is not None:
            out.fill(command.positions)

    for _ in range(warmup):
        inputs()
        step()
    clock = time.perf_counter_ns
    compute = np.zeros(cycles, dtype=np.int64)
    publish = np.zeros(cycles, dtype=np.int64)
    gc.collect()
    for index in range(cycles):
        inputs()
        begin = clock()
        command = controller.cycle(state["t"])
        middle = clock()
        if command.positions is not None:
            out.fill(command.positions)
        compute[index] = middle - begin
        publish[index] = clock() - middle
    assert controller.source == ("policy" if source == "policy" else "teleop"), controller.source
    allocating = 0
    if traced:
        gc.disable()
        tracemalloc.start()
        try:
            rises = [_window(lambda: None) for _ in range(120)][20:]
            empty = max(set(rises), key=rises.count)  # the probe's own objects, in the steady state
            for _ in range(traced):
                inputs()
                allocating += _window(step) > empty
        finally:
            tracemalloc.stop()
            gc.enable()
    return {
        "arm": name,
        "dof": dof,
        "source": source,
        "cycles": cycles,
        "p50_us": round(float(np.percentile(compute, 50)) / 1e3, 1),
        "p99_us": round(float(np.percentile(compute, 99)) / 1e3, 1),
        "publish_p50_us": round(float(np.percentile(publish, 50)) / 1e3, 2),
        "allocating_cycles": allocating,
        "traced_cycles": traced,
    }


def _window(work: Any) -> int:
    """How far the traced peak rose over ``work`` (the probe's own result objects included)."""
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    work()
    return tracemalloc.get_traced_memory()[1] - before


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
    parser.add_argument("--traced", type=int, default=2000, help="cycles of the allocation pass (0: skip it)")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [run(name, source, args.cycles, args.traced, args.rate) for name in args.arms for source in args.sources]
    baseline = round(empty_call_ns() / 1e3, 2)
    if not args.json:
        print(f"{'arm':<8}{'source':<8}{'cycle p50 µs':>14}{'cycle p99 µs':>14}{'publish p50 µs':>16}"
              f"{'allocating cycles':>19}")
        for row in rows:
            print(f"{row['arm']:<8}{row['source']:<8}{row['p50_us']:>14}{row['p99_us']:>14}"
                  f"{row['publish_p50_us']:>16}{row['allocating_cycles']:>12} / {row['traced_cycles']}")
        print(f"(baseline: an empty timed Python call {baseline} µs; {args.cycles} cycles per row at {args.rate:g} Hz)")
    print(json.dumps({"rows": rows, "empty_call_us": baseline, "rate_hz": args.rate}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
