"""The whole brain on each simulated arm: ``robot-brain demo`` per arm, one table (docs/benchmarks.md).

Runs ``robot-brain demo --robot R --episodes N --seed S --json`` for each arm, one after the
other (each in a private DDS domain: the demo isolates itself), and tabulates what each
printed: successes, mean time to success, the median tool path length over the straight line,
episodes that stalled and moves to another IK branch (with each failure's stall reason),
observation→action latency p50/p99, the arm controller's p99 period error (its own
diagnostics), the sim's real-time factor and wall time.
With the defaults it is the sweep in docs/benchmarks.md (about 45 s per arm on 2 cores).

``--arm-color R,G,B`` paints every arm one colour in the sim (``--param sim.arm_color=[R,G,B]``):
``0.9,0.1,0.1`` is exactly the object's red, the case perception's robot self-filter exists for.
``--param NODE.NAME=VALUE`` passes any other override to every demo (e.g.
``perception.self_filter_enabled=false`` for the same-run baseline without the self-filter).

    .venv/bin/python bench/demo_sweep.py [--robots ur5 panda ... | --set bundled|development|held-out]
                                         [--episodes N] [--seed S]
                                         [--arm-color R,G,B] [--param NODE.NAME=VALUE ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from robot_brain.embodiment.catalog import DEVELOPMENT_ARMS, HELD_OUT_ARMS, SWEEP_ARMS, sweep_arm_path

ROBOTS = ("ur5", "panda", "xarm7", "iiwa", "xarm6", "so101")
#: ``--set``: the bundled arms, the sweep's development arms, or its held-out arms (final numbers only).
SETS = {"bundled": ROBOTS, "development": DEVELOPMENT_ARMS, "held-out": tuple(sorted(HELD_OUT_ARMS))}


def run_demo(robot: str, episodes: int, seed: int, output: Path, params: list[str]) -> dict[str, object]:
    arm = ["--urdf", str(sweep_arm_path(robot))] if robot in SWEEP_ARMS else ["--robot", robot]
    command = [sys.executable, "-m", "robot_brain.cli.main", "demo", *arm, "--episodes", str(episodes),
               "--seed", str(seed), "--json", "--output", str(output / robot)]
    for param in params:
        command += ["--param", param]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120 + 60 * episodes, check=False)
    if result.returncode not in (0, 1) or not result.stdout.strip():
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return {"robot": robot, "error": f"exit {result.returncode}: {tail}"}
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    summary["robot"] = robot
    keys = ("robot", "successes", "episodes", "success_rate", "time_to_success_mean_s", "latency_p50_ms",
            "latency_p99_ms", "control_p99_us", "real_time_factor", "wall_s", "path_ratio_median",
            "stalled_episodes", "branch_moves", "failures")
    return {key: summary.get(key) for key in keys}


def arm_color(text: str) -> str:
    """``0.9,0.1,0.1`` → the sim override ``sim.arm_color=[0.9,0.1,0.1]``."""
    values = [float(v) for v in text.split(",")]
    if len(values) != 3 or not all(0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"expected R,G,B in 0-1, found {text!r}")
    return "sim.arm_color=[" + ",".join(f"{v:g}" for v in values) + "]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", nargs="+", help="arms by name (bundled, presets or sweep arms)")
    parser.add_argument("--set", choices=sorted(SETS), default="bundled",
                        help="which arms when --robots is not given (default: bundled; held-out: final numbers only)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per arm (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    parser.add_argument("--output", type=Path, help="where each demo writes its outputs (default: a temporary folder)")
    parser.add_argument("--arm-color", type=arm_color, metavar="R,G,B",
                        help="paint every arm this colour in the sim, e.g. 0.9,0.1,0.1 (the object's red)")
    parser.add_argument("--param", action="append", default=[], metavar="NODE.NAME=VALUE",
                        help="another parameter override for every demo (repeatable)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    params = [*([args.arm_color] if args.arm_color else []), *args.param]
    with tempfile.TemporaryDirectory(prefix="robot_brain_demo_sweep_") as scratch:
        output = args.output or Path(scratch)
        robots = args.robots or list(SETS[args.set])
        rows = [run_demo(robot, args.episodes, args.seed, output, params) for robot in robots]
    if not args.json:
        keys = ["robot", "successes", "episodes", "time_to_success_mean_s", "path_ratio_median", "stalled_episodes",
                "branch_moves", "latency_p50_ms", "latency_p99_ms", "control_p99_us", "real_time_factor", "wall_s"]
        print(" | ".join(keys))
        print(" | ".join("---" for _ in keys))
        for row in rows:
            print(" | ".join(str(row.get(k, row.get("error", ""))) for k in keys))
        reasons = [(row["robot"], failure) for row in rows for failure in row.get("failures") or []]  # type: ignore[union-attr]
        for robot, failure in reasons:
            print(f"{robot}: episode {failure['episode']} (seed {failure['seed']}) failed: {failure['message']}")
        stalls: dict[str, int] = {}
        for _, failure in reasons:
            cause = re.sub(r" \([^)]*\)", "", (failure.get("stall") or "no stall reported").split(": ", 1)[-1])
            stalls[cause] = stalls.get(cause, 0) + 1
        for cause, count in sorted(stalls.items(), key=lambda item: -item[1]):
            print(f"failures by stall cause: {count} x {cause}")
    print(json.dumps({"benchmark": "demo_sweep", "set": None if args.robots else args.set,
                      "episodes": args.episodes, "seed": args.seed, "params": params,
                      "robots": rows}))


if __name__ == "__main__":
    main()
