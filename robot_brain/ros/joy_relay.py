"""A one-way relay of ``sensor_msgs/Joy`` from the user's DDS domain into a simulated cell's private one.

``robot-brain teleop --sim --input joy`` runs its cell in a private domain (so it can never
reach a real cell's controllers), but the pad's ``joy_node``/``game_controller_node`` runs in
the user's own domain. This relay subscribes to the Joy topic there and republishes each
message in the private domain: only Joy messages cross, in one direction; nothing that
commands an arm, and nothing from the cell, goes the other way.

Two rclpy contexts in this process, one per domain, each with its own executor thread.
"""

from __future__ import annotations

import threading

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Joy


class JoyRelay:
    """Joy messages on ``topic`` in ``source_domain`` republished on ``topic`` in ``target_domain``."""

    def __init__(self, topic: str, source_domain: int, target_domain: int) -> None:
        if source_domain == target_domain:
            raise ValueError(f"a Joy relay needs two domains, found {source_domain} twice")
        self.topic = topic
        self.source_domain, self.target_domain = source_domain, target_domain
        self.relayed = 0
        self._contexts: list[Context] = []
        self._nodes: list[Node] = []
        self._executors: list[SingleThreadedExecutor] = []
        self._threads: list[threading.Thread] = []
        target = self._node(target_domain, "joy_relay_out")
        # Reliable, as joy_node publishes: it matches the teleop node's subscription whatever its QoS.
        self._publisher = target.create_publisher(Joy, topic, QoSProfile(depth=10))
        source = self._node(source_domain, "joy_relay_in")
        # Best effort matches a reliable or a best-effort pad publisher alike.
        source.create_subscription(Joy, topic, self._forward, qos_profile_sensor_data)

    def _node(self, domain: int, name: str) -> Node:
        context = Context()
        rclpy.init(context=context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
        node = rclpy.create_node(name, context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        thread = threading.Thread(target=executor.spin, name=f"{name}-{domain}", daemon=True)
        thread.start()
        self._contexts.append(context)
        self._nodes.append(node)
        self._executors.append(executor)
        self._threads.append(thread)
        return node

    def _forward(self, message: Joy) -> None:
        self._publisher.publish(message)
        self.relayed += 1

    def close(self) -> None:
        """Stop both executors and shut both contexts down (idempotent)."""
        for executor in self._executors:
            executor.shutdown(timeout_sec=2.0)
        for thread in self._threads:
            thread.join(timeout=2.0)
        for node in self._nodes:
            node.destroy_node()
        for context in self._contexts:
            context.try_shutdown()
        self._nodes.clear()
        self._executors.clear()
        self._threads.clear()
        self._contexts.clear()
