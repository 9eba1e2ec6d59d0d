"""What ``robot-brain bench control`` measures: timing of the real arm_controller node against real DDS traffic.

Two processes: this one runs the ``arm_controller`` node (its loop thread, executor thread
and all); a *peer* process plays the cell and the policy over Fast DDS: it publishes
``/joint_states`` at 500 Hz (following the commands it receives, as a position-controlled
arm would) and an ``ee_pose_delta`` ActionChunk (horizon 10, dt 0.05 s) at 20 Hz, so IK,
blending and the safety filter all run while the clock is measured.

Same-run baselines: the node in the other ``loop_mode`` (cooperative or threaded), and a bare
rclpy timer at the same rate, in the same process, with the same subscriptions, under a
SingleThreadedExecutor and an EventsExecutor.

Period error is the wake-up time minus the absolute deadline (start + k·period); a missed
deadline is a period whose work ended after the next deadline began (or that was skipped).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

PEER_FLAG = "--control-bench-peer"
JOINT_STATE_HZ = 500.0
CHUNK_HZ = 20.0


@dataclass(frozen=True)
class ControlBenchOptions:
    """One ``bench control`` run (the CLI's options, with the same names)."""

    rate: float = 1000.0
    seconds: float = 10.0
    robot: str = "panda"
    realtime_priority: int = 80
    executor: str = "auto"
    loop_mode: str = "cooperative"
    set: tuple[str, ...] = ()
    no_baselines: bool = False


def _urdf(robot: str) -> str:
    if robot.endswith((".urdf", ".xacro")):
        return robot
    from robot_brain.embodiment.catalog import bundled_arm_path

    return str(bundled_arm_path(robot))


def run_control_benchmark(args: ControlBenchOptions) -> dict[str, Any]:
    """Run the controller and the baselines (rclpy initialised here); the result ``bench control`` prints."""
    import rclpy
    from rclpy.parameter import Parameter

    from robot_brain.errors import ConfigurationError
    from robot_brain.nodes.arm_controller import SWITCH_INTERVAL_S, ArmControllerNode

    if args.seconds <= 0 or args.rate <= 0:
        raise ConfigurationError(f"expected --rate and --seconds > 0, found {args.rate} and {args.seconds}")
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    urdf = _urdf(args.robot)
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    peer = subprocess.Popen(
        [sys.executable, "-m", "robot_brain.benchmarks.control_loop", PEER_FLAG, urdf],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert peer.stdout is not None
        if peer.stdout.readline().strip() != "ready":
            raise ConfigurationError("the DDS peer process did not start")
        rclpy.init()
        try:
            result = _bench_controller(args, urdf, ArmControllerNode, Parameter, args.loop_mode)
            if not args.no_baselines:
                other = "threaded" if args.loop_mode == "cooperative" else "cooperative"
                result["baselines"] = {
                    f"arm_controller_{other}": _bench_controller(args, urdf, ArmControllerNode, Parameter, other),
                    "timer_single_threaded": _bench_timer(args, "single"),
                    "timer_events": _bench_timer(args, "events"),
                }
        finally:
            rclpy.try_shutdown()
    finally:
        if peer.stdin is not None:
            peer.stdin.close()
        try:
            peer.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            peer.kill()
    return result


def _bench_controller(
    args: ControlBenchOptions, urdf: str, node_class: Any, parameter: Any, loop_mode: str
) -> dict[str, Any]:
    from rclpy.lifecycle import TransitionCallbackReturn

    from robot_brain.nodes.arm_controller import make_executor

    node = node_class(parameter_overrides=[
        parameter("urdf_path", value=urdf),
        parameter("control_rate", value=float(args.rate)),
        parameter("realtime_priority", value=int(args.realtime_priority)),
        parameter("chunk_timeout", value=1.0),
        parameter("loop_mode", value=loop_mode),
        *(parameter(name, value=yaml.safe_load(text)) for name, _, text in (item.partition(":=") for item in args.set)),
    ])
    executor = make_executor(node, args.executor)
    executor.add_node(node)
    # Transitions before spinning: rclpy's EventsExecutor deadlocks when another thread creates
    # entities while it spins (as the node's own autostart does it, before spin).
    success = TransitionCallbackReturn.SUCCESS
    if node.trigger_configure() != success or node.trigger_activate() != success:
        raise RuntimeError(f"arm_controller did not activate: {node._status}")
    stop = threading.Event()
    # As the arm_controller script: node.spin (in cooperative mode it runs the loop itself).
    spinner = threading.Thread(target=node.spin, args=(executor, stop), daemon=True)
    spinner.start()
    try:
        controller, loop = node.controller, node.loop
        deadline = time.monotonic() + 10.0
        while controller.counters.chunks_accepted < 5 or controller.source != "policy":
            if time.monotonic() > deadline:
                raise RuntimeError(f"no policy stream reached the controller (source {controller.source})")
            time.sleep(0.05)
        time.sleep(1.0)  # warm-up
        loop.stats.reset()
        cpu_start, wall_start = _process_cpu(), time.monotonic()
        chunks_start = controller.counters.chunks_accepted
        time.sleep(args.seconds)
        cpu = _process_cpu() - cpu_start
        wall = time.monotonic() - wall_start
        summary = loop.stats.summary()
        summary.update({
            "process_cpu_percent": round(100.0 * cpu / wall, 1),
            "realtime": loop.realtime,
            "timer_slack_1ns": loop.timer_slack,
            "executor": type(executor).__name__,
            "loop_mode": loop_mode,
            "parameters": list(args.set),
            "robot": controller.spec.name,
            "dof": controller.spec.dof,
            "chunks_per_s": round((controller.counters.chunks_accepted - chunks_start) / wall, 1),
            "source": controller.source,
            "seconds": args.seconds,
            "cores": os.cpu_count(),
        })
        node.trigger_deactivate()
        return summary
    finally:
        stop.set()
        spinner.join(timeout=2.0)
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()


def _spin_until(executor: Any, stop: threading.Event) -> None:
    """Spin in short slices so the executor can be shut down from another thread (EventsExecutor cannot)."""
    while not stop.is_set():
        executor.spin_once(timeout_sec=0.1)


def _bench_timer(args: ControlBenchOptions, kind: str) -> dict[str, Any]:
    """A bare rclpy timer at the same rate with the same subscriptions: how far it wakes from its deadlines."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.experimental import EventsExecutor
    from rclpy.qos import QoSProfile, qos_profile_sensor_data
    from robot_brain_msgs.msg import ActionChunk
    from sensor_msgs.msg import JointState

    period = 1.0 / args.rate
    period_ns = round(period * 1e9)
    capacity = int(args.seconds * args.rate * 1.2) + 16
    wakes = np.zeros(capacity)
    lateness = np.zeros(capacity)
    count = [0]
    timer: Any = None
    node = rclpy.create_node(f"timer_baseline_{kind}")
    node.create_subscription(JointState, "/joint_states", lambda msg: None, qos_profile_sensor_data)
    node.create_subscription(ActionChunk, "/policy/action_chunk", lambda msg: None, QoSProfile(depth=10))

    def tick() -> None:
        # rcl has already advanced the timer to its next absolute deadline: what is left of
        # the period is how late this call is (below one period; skipped periods are missed).
        if count[0] < capacity:
            lateness[count[0]] = (period_ns - timer.time_until_next_call()) * 1e-3
            wakes[count[0]] = time.monotonic()
            count[0] += 1

    executor = SingleThreadedExecutor() if kind == "single" else EventsExecutor()
    executor.add_node(node)
    stop = threading.Event()
    thread = threading.Thread(target=_spin_until, args=(executor, stop), daemon=True)
    timer = node.create_timer(period, tick)
    thread.start()
    try:
        time.sleep(1.0)
        count[0] = 0
        cpu_start, wall_start = _process_cpu(), time.monotonic()
        time.sleep(args.seconds)
        cycles = count[0]
        cpu = _process_cpu() - cpu_start
        wall = time.monotonic() - wall_start
    finally:
        stop.set()
        thread.join(timeout=2.0)
        executor.shutdown(timeout_sec=2.0)
        node.destroy_timer(timer)
        node.destroy_node()
    stamps = wakes[:cycles]
    errors = lateness[:cycles]
    expected = round((stamps[-1] - stamps[0]) / period) + 1
    return {
        "rate_hz": args.rate,
        "cycles": int(cycles),
        "missed": int(max(expected - cycles, 0)),
        "p50_us": round(float(np.percentile(errors, 50)), 1),
        "p99_us": round(float(np.percentile(errors, 99)), 1),
        "max_us": round(float(errors.max()), 1),
        "compute_p50_us": 0.0,
        "cpu_percent": round(100.0 * cpu / wall, 1),
    }


def _process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _peer(urdf: str) -> int:
    """The cell and the policy: joint states following the commands, ee_pose_delta chunks at 20 Hz."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile
    from robot_brain_msgs.msg import ActionChunk
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from robot_brain.embodiment import load_arm

    spec = load_arm(urdf).spec
    rclpy.init()
    node = rclpy.create_node("control_bench_peer")
    position = spec.middle_configuration()
    lock = threading.Lock()

    def on_command(msg: Float64MultiArray) -> None:
        nonlocal position
        with lock:
            position = np.array(msg.data)

    node.create_subscription(Float64MultiArray, "/forward_position_controller/commands", on_command, 10)
    states = node.create_publisher(JointState, "/joint_states", 10)
    chunks = node.create_publisher(ActionChunk, "/policy/action_chunk", QoSProfile(depth=10))
    state = JointState()
    state.name = list(spec.joint_names)
    step = [0]

    def publish_state() -> None:
        state.header.stamp = node.get_clock().now().to_msg()
        with lock:
            state.position = position.tolist()
        states.publish(state)

    def publish_chunk() -> None:
        msg = ActionChunk()
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = spec.base_link
        msg.model_id = "bench@circle"
        msg.step = step[0]
        msg.action_space = "ee_pose_delta"
        msg.horizon, msg.dt, msg.dim = 10, 0.05, 7
        t = step[0] / CHUNK_HZ + 0.05 * np.arange(1, 11)
        # A 3 cm circle at 0.25 Hz, relative to the observed pose: the arm keeps moving.
        dx = 0.03 * (np.cos(2 * np.pi * 0.25 * t) - np.cos(2 * np.pi * 0.25 * (t - 0.05 * np.arange(1, 11))))
        dy = 0.03 * (np.sin(2 * np.pi * 0.25 * t) - np.sin(2 * np.pi * 0.25 * (t - 0.05 * np.arange(1, 11))))
        actions = np.zeros((10, 7))
        actions[:, 0], actions[:, 1], actions[:, 6] = dx, dy, 1.0
        msg.actions = actions.ravel().tolist()
        chunks.publish(msg)
        step[0] += 1

    node.create_timer(1.0 / JOINT_STATE_HZ, publish_state)
    node.create_timer(1.0 / CHUNK_HZ, publish_chunk)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    print("ready", flush=True)
    try:
        while not done.is_set():
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == PEER_FLAG:
    sys.exit(_peer(sys.argv[2]))
