"""Child process for test_interfaces: publish one ActionChunk repeatedly over real DDS.

Usage: python action_chunk_publisher.py TOPIC SPEC_JSON [TIMEOUT_S]

Publishes the chunk described by SPEC_JSON on TOPIC at 20 Hz (reliable QoS) until stdin is
closed, then shuts rclpy down and exits 0; exits 3 if never told to stop within TIMEOUT_S.
Repeating (rather than publishing once) makes delivery independent of discovery timing.
"""

from __future__ import annotations

import json
import sys

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from robot_brain_msgs.msg import ActionChunk
from robot_brain_msgs_samples import make_action_chunk, run_until_stdin_closes


def main(argv: list[str]) -> int:
    """Publish until the parent closes stdin; returns the exit status."""
    topic, spec = argv[1], json.loads(argv[2])
    timeout_s = float(argv[3]) if len(argv) > 3 else 60.0
    msg = make_action_chunk(spec)
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("action_chunk_publisher", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        publisher = node.create_publisher(ActionChunk, topic, 10)
        node.create_timer(0.05, lambda: publisher.publish(msg))
        print("ready", flush=True)
        stopped = run_until_stdin_closes(lambda t: executor.spin_once(timeout_sec=t), timeout_s)
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
    return 0 if stopped else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
