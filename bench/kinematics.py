"""Kinematics benchmark: FK, FK + Jacobian, one IK step and a full IK solve per arm.

Prints a table (median and p99 in microseconds) and one JSON line. Baselines measured in
the same run: a plain-numpy FK that chains the URDF's 4x4 transforms (what you would write
without Pinocchio) and a bare ``pin.forwardKinematics`` call (the floor under our wrapper).

    .venv/bin/python bench/kinematics.py [--repeats N] [--arms panda,ur5,...] [--json-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import numpy as np
import pinocchio as pin

from robot_brain.embodiment import load_arm
from robot_brain.embodiment.catalog import bundled_arm_path

DEFAULT_ARMS = ("ur5", "panda", "xarm7", "so101", "iiwa", "xarm6")


def timed(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and p99 of one call, in microseconds."""
    samples = np.empty(repeats)
    for index in range(repeats):
        start = time.perf_counter_ns()
        function()
        samples[index] = time.perf_counter_ns() - start
    return float(np.median(samples) / 1e3), float(np.percentile(samples, 99) / 1e3)


def numpy_chain_fk(transforms: list[tuple[np.ndarray, np.ndarray]], q: np.ndarray) -> np.ndarray:
    """Plain numpy FK for revolute chains: fixed origin @ Rodrigues rotation per joint."""
    pose = np.eye(4)
    motion = np.eye(4)
    for (origin, axis), angle in zip(transforms, q, strict=True):
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        motion[:3, :3] = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)
        pose = pose @ origin @ motion
    return pose


def chain_transforms(arm) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-joint (origin, axis) read from the Pinocchio model (fixed joints folded in)."""
    model = arm.kinematics.model
    out = []
    for joint_id in range(1, model.njoints):
        origin = model.jointPlacements[joint_id].homogeneous
        axis = np.array([1.0, 0.0, 0.0])
        shortname = model.joints[joint_id].shortname()
        axis = {"X": np.array([1.0, 0, 0]), "Y": np.array([0, 1.0, 0]), "Z": np.array([0, 0, 1.0])}.get(
            shortname[-1], np.asarray(getattr(model.joints[joint_id].extract(), "axis", axis))
        )
        out.append((origin, axis))
    return out


def bench_arm(name: str, repeats: int) -> dict[str, object]:
    arm = load_arm(bundled_arm_path(name))
    kinematics = arm.kinematics
    rng = np.random.default_rng(0)
    q = kinematics.random_configuration(rng)
    targets = [kinematics.fk(kinematics.random_configuration(rng)) for _ in range(200)]
    row: dict[str, object] = {"arm": name, "dof": kinematics.dof}
    row["pin_fk_raw"] = timed(lambda: pin.forwardKinematics(kinematics.model, kinematics.data, q), repeats)
    transforms = chain_transforms(arm)
    row["numpy_fk"] = timed(lambda: numpy_chain_fk(transforms, q), repeats)
    row["fk"] = timed(lambda: kinematics.fk(q), repeats)
    row["fk_jacobian"] = timed(lambda: kinematics.fk_and_jacobian(q), repeats)
    target = targets[0]
    row["ik_step"] = timed(lambda: kinematics.ik_step(q, target), repeats)
    solve_samples = np.empty(len(targets))
    successes = 0
    for index, goal in enumerate(targets):
        start = time.perf_counter_ns()
        result = kinematics.ik(goal, rng=rng)
        solve_samples[index] = time.perf_counter_ns() - start
        successes += result.success
    row["ik_solve"] = (float(np.median(solve_samples) / 1e3), float(np.percentile(solve_samples, 99) / 1e3))
    row["ik_success"] = successes / len(targets)
    return row


COLUMNS = ("pin_fk_raw", "numpy_fk", "fk", "fk_jacobian", "ik_step", "ik_solve")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5000)
    parser.add_argument("--arms", default=",".join(DEFAULT_ARMS))
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    rows = [bench_arm(name, args.repeats) for name in args.arms.split(",")]
    if not args.json_only:
        header = f"{'arm':<8} {'dof':>3} " + " ".join(f"{c + ' p50/p99 µs':>24}" for c in COLUMNS) + "  ik ok"
        print(header)
        for row in rows:
            cells = " ".join(f"{row[c][0]:>11.1f} / {row[c][1]:>10.1f}" for c in COLUMNS)
            print(f"{row['arm']:<8} {row['dof']:>3} {cells}  {row['ik_success']:.1%}")
    print(json.dumps({"benchmark": "kinematics", "repeats": args.repeats, "arms": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
