"""``robot-brain bench control``: the arm_controller node's loop timing over real DDS, with same-run baselines.

What is measured, and how, is :mod:`robot_brain.benchmarks.control_loop`'s; this module parses
the options and prints the table and the JSON line.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench`` with its ``control`` subcommand."""
    bench = subparsers.add_parser("bench", help="benchmarks")
    kinds = bench.add_subparsers(dest="bench", metavar="BENCH")
    control = kinds.add_parser("control", help="control loop timing over real DDS, with rclpy timer baselines")
    control.add_argument("--rate", type=float, default=1000.0, help="control rate, Hz (default 1000)")
    control.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run (default 10)")
    control.add_argument("--robot", default="panda", help="bundled arm name or URDF path (default panda)")
    control.add_argument("--realtime-priority", type=int, default=80, help="SCHED_FIFO priority (0: do not ask)")
    control.add_argument("--executor", choices=("auto", "single", "events"), default="auto",
                         help="executor of the node's callbacks (default auto, as the arm_controller script: "
                              "events for cooperative, single for threaded)")
    control.add_argument("--loop-mode", choices=("cooperative", "threaded"), default="cooperative",
                         help="the node's loop_mode (default cooperative, the node's default)")
    control.add_argument("--set", action="append", default=[], metavar="NAME:=VALUE",
                         help="extra arm_controller parameter (YAML value), e.g. --set wake_spin_us:=100.0")
    control.add_argument("--no-baselines", action="store_true",
                         help="skip the baselines (rclpy timers, and the node in the other loop_mode)")
    control.add_argument("--json", action="store_true", help="print only the JSON line")
    control.set_defaults(func=run_control)
    bench.set_defaults(func=lambda args: (bench.print_help(), 2)[1])


def run_control(args: argparse.Namespace) -> int:
    """Run the controller and the baselines; print a table and one JSON line."""
    from robot_brain.benchmarks.control_loop import ControlBenchOptions, run_control_benchmark

    options = ControlBenchOptions(rate=args.rate, seconds=args.seconds, robot=args.robot,
                                  realtime_priority=args.realtime_priority, executor=args.executor,
                                  loop_mode=args.loop_mode, set=tuple(args.set), no_baselines=args.no_baselines)
    result = run_control_benchmark(options)
    if not args.json:
        _print_table(result)
    print(json.dumps(result))
    return 0


def _print_table(result: dict[str, Any]) -> None:
    rows = [(f"arm_controller {result['loop_mode']}", result)]
    for name, baseline in result.get("baselines", {}).items():
        rows.append((name.replace("_", " "), baseline))
    print(f"{result['robot']} ({result['dof']} joints), {result['rate_hz']:g} Hz for {result['seconds']:g} s, "
          f"{result['chunks_per_s']:g} chunks/s, realtime: {result['realtime']}, {result['cores']} cores")
    header = f"{'method':<26}{'cycles':>8}{'missed':>8}{'p50 µs':>9}{'p99 µs':>9}{'max µs':>10}" \
             f"{'compute p50 µs':>16}{'CPU %':>8}"
    print(header)
    print("-" * len(header))
    for name, row in rows:
        cpu = row.get("process_cpu_percent", row["cpu_percent"])
        print(f"{name:<26}{row['cycles']:>8}{row['missed']:>8}{row['p50_us']:>9}{row['p99_us']:>9}"
              f"{row['max_us']:>10}{row['compute_p50_us']:>16}{cpu:>8}")
    print(f"(loop thread alone: {result['cpu_percent']}% CPU; compute p99 {result['compute_p99_us']} µs, "
          f"publish p50 {result['publish_p50_us']} µs)")


# ----------------------------------------------------------------------------- peer process
