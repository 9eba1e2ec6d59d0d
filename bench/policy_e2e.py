"""End to end: observation published → ActionChunk received, across processes over DDS.

Starts the real ``policy`` node (``python -m robot_brain.nodes.policy``, the demo reach
controller on the Panda, CPU) in a child process; this process publishes ``/joint_states``
(every message newly stamped) and a target, and receives ``/policy/action_chunk``. Chunks
carry the stamp of the observation they were computed from, so each chunk's latency is
its receive time minus its header stamp (same host clock). Because the policy runs
asynchronously at ``--rate`` Hz, latency includes waiting for the next inference tick (on
average half a period): run a high rate to see the pipeline itself.

Usage: python bench/policy_e2e.py [--seconds S] [--rate HZ]  (set ROS_DOMAIN_ID to isolate)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import yaml
from geometry_msgs.msg import PointStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from robot_brain_msgs.msg import ActionChunk
from sensor_msgs.msg import JointState

from robot_brain.embodiment import load_arm
from robot_brain.ros.policy_io import stamp_to_nanoseconds

REPO = Path(__file__).resolve().parents[1]
PANDA = (
    Path(sysconfig.get_paths()["purelib"])
    / "cmeel.prefix/share/example-robot-data/robots/panda_description/urdf/panda.urdf"
)


class Client(Node):
    """Publishes observations and timestamps the chunks it receives."""

    def __init__(self, joint_names: list[str]) -> None:
        super().__init__("e2e_client")
        self.names = joint_names
        self.latencies_ms: list[float] = []
        self.seen: set[int] = set()
        self.joints = self.create_publisher(JointState, "/joint_states", 10)
        self.target = self.create_publisher(PointStamped, "/perception/target_point", 10)
        self.create_subscription(ActionChunk, "/policy/action_chunk", self.on_chunk, 10)

    def on_chunk(self, msg: ActionChunk) -> None:
        now = self.get_clock().now().nanoseconds
        stamp = stamp_to_nanoseconds(msg.header.stamp)
        if stamp not in self.seen:  # count each observation once
            self.seen.add(stamp)
            self.latencies_ms.append((now - stamp) * 1e-6)

    def publish(self, q: np.ndarray) -> None:
        point = PointStamped()
        point.point.x, point.point.z = 0.5, 0.3
        self.target.publish(point)
        msg = JointState(name=self.names, position=q.tolist())
        msg.header.stamp = self.get_clock().now().to_msg()
        self.joints.publish(msg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="policy inference rate, Hz")
    parser.add_argument("--publish-rate", type=float, default=250.0, help="joint_states rate, Hz")
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "config/policy.yaml").read_text())
    config["/**"]["ros__parameters"].update(
        {"urdf_path": str(PANDA), "autostart": True, "providers": ["cpu"], "rate_hz": args.rate}
    )
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(config, handle)
    child = subprocess.Popen(
        [sys.executable, "-m", "robot_brain.nodes.policy", "--ros-args", "--params-file", handle.name],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rclpy.init()
    client = Client(list(load_arm(PANDA).spec.joint_names))
    executor = SingleThreadedExecutor()
    executor.add_node(client)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    q = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.8])
    try:
        deadline = time.monotonic() + 30.0
        while not client.latencies_ms and time.monotonic() < deadline:  # start-up and discovery
            client.publish(q)
            time.sleep(0.02)
        client.latencies_ms.clear()
        period, end = 1.0 / args.publish_rate, time.monotonic() + args.seconds
        next_time = time.monotonic()
        while time.monotonic() < end:
            client.publish(q)
            next_time += period
            time.sleep(max(0.0, next_time - time.monotonic()))
    finally:
        child.terminate()
        child.wait(timeout=10)
        executor.shutdown()
        client.destroy_node()
        rclpy.try_shutdown()
        os.unlink(handle.name)
    latencies = np.array(client.latencies_ms)
    if latencies.size == 0:
        raise SystemExit("no ActionChunk received: is the policy node starting? (run tests/test_policy_node.py)")
    row = {
        "chunks": int(latencies.size),
        "median_ms": float(np.median(latencies)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "max_ms": float(latencies.max()),
    }
    print(f"{'observation -> ActionChunk (2 processes)':<44} {'chunks':>7} {'median ms':>10} {'p99 ms':>8}")
    print(
        f"{f'policy at {args.rate:g} Hz, joint_states at {args.publish_rate:g} Hz':<44} {row['chunks']:>7} "
        f"{row['median_ms']:>10.2f} {row['p99_ms']:>8.2f}"
    )
    print(json.dumps({"bench": "policy_e2e", "rate_hz": args.rate, "publish_rate_hz": args.publish_rate, **row}))


if __name__ == "__main__":
    main()
