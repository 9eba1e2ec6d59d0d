"""Teleop latency: joystick event → TwistStamped published → command leaving the arm controller, with the sim.

    .venv/bin/python bench/teleop_latency.py [--robot panda] [--trials 40] [--poll-rate 100] [--json]

What runs: the MuJoCo sim and the real arm controller as node processes (``robot-brain up``'s,
in a private DDS domain), the real teleop node in this process reading an SDL virtual game pad
(the only way to time the physical event: the pad is in this process). Per trial, with the
dead-man held, the left stick jumps from centre to full deflection at a known time (the
event); measured are the first TwistStamped with motion the teleop node publishes (event →
twist, in-process) and the first arm command the controller publishes afterwards (event →
command, across two DDS hops). Same-run baselines: the teleop poll period (a uniform wait of
up to 1/poll_rate is inherent to polling a pad) and a bare TwistStamped publish → receive in
this process (the DDS floor). Target (issue 9): p99 ≤ 20 ms from event to command.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def _percentiles(values: list[float]) -> dict[str, float]:
    array = np.asarray(values) * 1e3
    return {"p50_ms": round(float(np.median(array)), 2), "p99_ms": round(float(np.percentile(array, 99)), 2),
            "max_ms": round(float(array.max()), 2), "n": len(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robot", default="panda")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--poll-rate", type=float, default=100.0)
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args(argv)

    import os

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, qos_profile_sensor_data
    from std_msgs.msg import Float64MultiArray

    from robot_brain.bringup.isolation import isolate_dds
    from robot_brain.bringup.plan import sim_plan
    from robot_brain.bringup.processes import NodeProcesses
    from robot_brain.bringup.robots import resolve_robot
    from robot_brain.nodes.teleop import TeleopNode
    from robot_brain.teleop.virtual_pad import VirtualPad

    domain = isolate_dds()
    plan = sim_plan(resolve_robot(args.robot), overrides={"sim": {"camera_rate_hz": 0.0},
                                                           "arm_controller": {"realtime_priority": 0}})
    plan = type(plan)(robot=plan.robot, nodes=tuple(n for n in plan.nodes if n.name in ("sim", "arm_controller")),
                      arm=plan.arm, layout=plan.layout)
    folder = Path(tempfile.mkdtemp(prefix="robot_brain_bench_teleop_"))
    group = NodeProcesses(output=_Sink(), log_file=folder / "nodes.log")
    group.start(plan.commands(folder, sys.executable))
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    pad = VirtualPad("bench pad")
    pad.attach()
    teleop = TeleopNode(context=context, parameter_overrides=[
        Parameter("urdf_path", value=str(plan.robot.urdf)), Parameter("device_name", value="bench pad"),
        Parameter("poll_rate", value=float(args.poll_rate))])
    probe = rclpy.create_node("latency_probe", context=context)
    lock = threading.Lock()
    twists: list[tuple[float, float]] = []
    commands: list[float] = []
    echoes: list[float] = []
    probe.create_subscription(TwistStamped, "/teleop/twist",
                              lambda m: twists.append((time.monotonic(), m.twist.linear.y)), qos_profile_sensor_data)
    probe.create_subscription(Float64MultiArray, "/forward_position_controller/commands",
                              lambda m: commands.append(time.monotonic()), QoSProfile(depth=1000))
    echo_publisher = probe.create_publisher(TwistStamped, "/bench/echo", 10)
    probe.create_subscription(TwistStamped, "/bench/echo", lambda m: echoes.append(time.monotonic()), 10)
    executor = SingleThreadedExecutor(context=context)
    for node in (teleop, probe):
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    event_to_twist: list[float] = []
    event_to_command: list[float] = []
    dds_floor: list[float] = []
    misses: list[dict[str, object]] = []
    try:
        _wait(lambda: b"[arm_controller]: active" in (folder / "nodes.log").read_bytes(), 90.0, "the controller")
        teleop.trigger_configure()
        teleop.trigger_activate()
        _wait(lambda: teleop._intent is not None and teleop._intent.status.connected, 20.0, "the pad")
        # Discovery: twists sent before the controller's subscription matched are lost, not late.
        _wait(lambda: teleop._twists.get_subscription_count() >= 2, 20.0, "the controller's /teleop/twist subscription")
        pad.set_button(9, False)
        time.sleep(0.2)
        for trial in range(args.trials):
            direction = 1.0 if trial % 2 == 0 else -1.0  # left/right along y: the arm goes back and forth
            pad.set_button(9, True)  # the dead-man first, as an operator does
            time.sleep(0.3)
            _wait(lambda: not commands or time.monotonic() - commands[-1] > 0.2, 5.0, "the arm to rest")
            with lock:
                twists.clear()
                commands.clear()
            event = time.monotonic()
            pad.set_axis(0, direction)  # left stick x: linear y
            time.sleep(0.4)
            pad.set_axis(0, 0.0)
            pad.set_button(9, False)
            moving = [t for t, y in twists if t >= event and abs(y) > 0.0]
            after = [t for t in commands if t >= event]
            if moving and after:
                event_to_twist.append(moving[0] - event)
                event_to_command.append(after[0] - event)
            else:  # counted, never silently left out of the percentiles
                misses.append({"trial": trial, "twist_with_motion": bool(moving), "command": bool(after),
                               "twists": len(twists), "commands": len(commands)})
            sent = time.monotonic()
            echo_publisher.publish(TwistStamped())
            _wait(lambda start=sent: bool(echoes) and echoes[-1] >= start, 2.0, "the echo")
            dds_floor.append(echoes[-1] - sent)
            time.sleep(0.3)
    finally:
        executor.shutdown(timeout_sec=2.0)
        spinner.join(timeout=5.0)
        teleop.destroy_node()
        probe.destroy_node()
        context.try_shutdown()
        pad.detach()
        group.stop()
    report = {
        "robot": args.robot,
        "poll_rate_hz": args.poll_rate,
        "trials": args.trials,
        "event_to_twist": _percentiles(event_to_twist),
        "event_to_command": _percentiles(event_to_command),
        "baselines": {"poll_period_ms": round(1e3 / args.poll_rate, 2),
                      "dds_publish_to_receive": _percentiles(dds_floor)},
        "misses": misses,
        "slowest_ms": sorted(round(v * 1e3, 2) for v in event_to_command)[-5:],
        "target_p99_ms": 20.0,
        "target_met": bool(event_to_command) and float(np.percentile(event_to_command, 99)) * 1e3 <= 20.0,
    }
    if not args.json:
        print(f"{'measurement':<34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'n':>4}")
        for name, row in (("event -> twist (teleop node)", report["event_to_twist"]),
                          ("event -> controller command", report["event_to_command"]),
                          ("baseline: DDS publish -> receive", report["baselines"]["dds_publish_to_receive"])):
            print(f"{name:<34} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['max_ms']:>8} {row['n']:>4}")
        print(f"baseline: poll period {report['baselines']['poll_period_ms']} ms; target p99 <= 20 ms: "
              f"{'met' if report['target_met'] else 'NOT met'}")
    print(json.dumps(report))
    return 0


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"teleop_latency: timed out waiting for {what}")
        time.sleep(0.005)


class _Sink:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main())
