"""The whole brain on each simulated arm: ``robot-brain demo`` per arm, one table (docs/benchmarks.md).

Runs ``robot-brain demo --robot R --episodes N --seed S --json`` for each arm, one after the
other (each in a private DDS domain: the demo isolates itself), and tabulates what each
printed: successes, mean time to success, observation→action latency p50/p99, the arm
controller's p99 period error (its own diagnostics), the sim's real-time factor and wall time.
With the defaults it is the sweep in docs/benchmarks.md (about 45 s per arm on 2 cores).

    .venv/bin/python bench/demo_sweep.py [--robots ur5 panda ...] [--episodes N] [--seed S] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROBOTS = ("ur5", "panda", "xarm7", "iiwa", "xarm6", "so101")


def run_demo(robot: str, episodes: int, seed: int, output: Path) -> dict[str, object]:
    command = [sys.executable, "-m", "robot_brain.cli.main", "demo", "--robot", robot, "--episodes", str(episodes),
               "--seed", str(seed), "--json", "--output", str(output / robot)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120 + 60 * episodes, check=False)
    if result.returncode not in (0, 1) or not result.stdout.strip():
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return {"robot": robot, "error": f"exit {result.returncode}: {tail}"}
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    keys = ("robot", "successes", "episodes", "success_rate", "time_to_success_mean_s", "latency_p50_ms",
            "latency_p99_ms", "control_p99_us", "real_time_factor", "wall_s")
    return {key: summary.get(key) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", nargs="+", default=list(ROBOTS))
    parser.add_argument("--episodes", type=int, default=20, help="episodes per arm (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    parser.add_argument("--output", type=Path, help="where each demo writes its outputs (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="robot_brain_demo_sweep_") as scratch:
        output = args.output or Path(scratch)
        rows = [run_demo(robot, args.episodes, args.seed, output) for robot in args.robots]
    if not args.json:
        keys = ["robot", "successes", "episodes", "time_to_success_mean_s", "latency_p50_ms", "latency_p99_ms",
                "control_p99_us", "real_time_factor", "wall_s"]
        print(" | ".join(keys))
        print(" | ".join("---" for _ in keys))
        for row in rows:
            print(" | ".join(str(row.get(k, row.get("error", ""))) for k in keys))
    print(json.dumps({"benchmark": "demo_sweep", "episodes": args.episodes, "seed": args.seed, "robots": rows}))


if __name__ == "__main__":
    main()
