"""Simulator micro-benchmarks: scene build time, physics step rate, render time (no ROS).

    .venv/bin/python bench/sim.py [--robots panda ur5 ...] [--json]

Numbers from a shared VM are orders of magnitude: re-measure on your machine. The sim
node's real-time factor is measured end to end by ``robot-brain demo``.
"""

from __future__ import annotations

import argparse
import json
import time

import mujoco
import numpy as np

from robot_brain.embodiment import load_arm
from robot_brain.embodiment.catalog import bundled_arm_path
from robot_brain.sim import build_simulation
from robot_brain.sim.rendering import OffscreenRenderer

ROBOTS = ("panda", "ur5", "xarm7", "iiwa", "xarm6", "so101")


def measure(name: str, steps: int = 5000, frames: int = 40) -> dict[str, float | str]:
    started = time.perf_counter()
    simulation = build_simulation(load_arm(bundled_arm_path(name)))
    build_s = time.perf_counter() - started
    sim, scene = simulation.simulator, simulation.scene
    goal = simulation.layout.home_tool_pose.copy()
    goal[:3, 3] = sim.result().target
    sim.command_trajectory(simulation.arm.spec.joint_names, [2.0], [simulation.arm.kinematics.ik(goal).q])
    started = time.perf_counter()
    for _ in range(steps // 2):
        sim.step(2)  # as the node does at 250 Hz with a 2 ms step: two steps and a score per cycle
    step_us = (time.perf_counter() - started) / steps * 1e6
    # Same-run baseline: bare mj_step on the same compiled model (no commands, no task score).
    data = mujoco.MjData(scene.model)
    started = time.perf_counter()
    for _ in range(steps):
        mujoco.mj_step(scene.model, data)
    raw_step_us = (time.perf_counter() - started) / steps * 1e6
    result: dict[str, float | str] = {"robot": name, "build_s": round(build_s, 3), "step_us": round(step_us, 1),
                                      "raw_mj_step_us": round(raw_step_us, 1), "steps_per_s": round(1e6 / step_us)}
    for width, height in ((320, 240), (640, 480)):
        with OffscreenRenderer(scene.model, width, height) as renderer:
            sim.copy_kinematics(data)
            renderer.render(data, scene.task_camera)  # first frame compiles shaders
            times = []
            for _ in range(frames):
                started = time.perf_counter()
                sim.copy_kinematics(data)
                renderer.render(data, scene.task_camera)
                times.append(time.perf_counter() - started)
            result[f"render_{width}x{height}_ms"] = round(float(np.median(times)) * 1e3, 2)
            result["backend"] = renderer.backend
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", nargs="+", default=list(ROBOTS))
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    rows = [measure(name) for name in args.robots]
    if not args.json:
        keys = list(rows[0])
        print(" | ".join(keys))
        print(" | ".join("---" for _ in keys))
        for row in rows:
            print(" | ".join(str(row[k]) for k in keys))
    print(json.dumps({"benchmark": "sim", "robots": rows}))


if __name__ == "__main__":
    main()
