"""What a terminal shows of a teleop session: the teleop node's status line and the recorder's answers.

A listener node of its own on a background executor thread; it hands plain text to the
callbacks, so the CLI that prints it never touches rclpy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import rclpy
import rclpy.signals
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile
from robot_brain_msgs.msg import EpisodeEvent
from std_msgs.msg import String


class TeleopStatusListener:
    """Calls ``on_status(line)`` for each ``/teleop/status`` and ``on_event(event, message)`` for each episode event."""

    def __init__(self, on_status: Callable[[str], None], on_event: Callable[[str, str], None]) -> None:
        self._on_status = on_status
        self._on_event = on_event
        self._owns = not rclpy.ok()
        if self._owns:  # signals are the CLI's (stop_on_signals): rclpy must not shut the context down on its own
            rclpy.init(signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = rclpy.create_node("teleop_display")
        self.node.create_subscription(String, "/teleop/status", self._status, 10)
        self.node.create_subscription(EpisodeEvent, "/episode/events", self._event, QoSProfile(depth=50))
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def _status(self, msg: Any) -> None:
        self._on_status(str(msg.data))

    def _event(self, msg: Any) -> None:
        self._on_event(str(msg.event), str(msg.message))

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=2.0)
        self.node.destroy_node()
        if self._owns:
            rclpy.try_shutdown()
