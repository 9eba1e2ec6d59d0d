"""A minimal node on the real node skeleton, for the skeleton's own tests (a process or in-process).

``pulse`` publishes a counter from a supervised worker at 100 Hz while active. Its services
inject the faults the skeleton must survive: ``~/fail_worker`` (the worker raises),
``~/fail_callback`` (the service callback itself raises), ``~/hang_worker`` (the worker
ignores its stop event for a while). On deactivation it publishes -1, so a test can see the
node's own stopping work happen before the process ends.

Run as a process: ``python test/helpers/pulse_node.py --ros-args -p autostart:=true``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from rclpy.qos import QoSProfile
from std_msgs.msg import Int64
from std_srvs.srv import Trigger

from robot_brain.ros.node_skeleton import OK, BrainNode, run_node


class PulseNode(BrainNode):
    PARAMETERS = (("rate_hz", 100.0, "Pulses per second"),)
    DIAGNOSTIC_TASK = "pulse"

    def __init__(self, **kwargs: Any) -> None:
        self._publisher: Any = None
        self.count = 0
        self.fail_worker = threading.Event()
        self.hang_s = 0.0
        super().__init__("pulse", **kwargs)
        self.create_service(Trigger, "~/fail_worker", self._on_fail_worker)
        self.create_service(Trigger, "~/fail_callback", self._on_fail_callback)
        self.create_service(Trigger, "~/hang_worker", self._on_hang_worker)

    def configure_node(self) -> None:
        self._publisher = self.create_lifecycle_publisher(Int64, "/pulse", QoSProfile(depth=100))

    def activate_node(self) -> None:
        self.count = 0
        self.start_worker("pulse", self._pulse)

    def deactivate_node(self) -> None:
        if self._publisher is not None:
            self._publisher.publish(Int64(data=-1))

    def teardown_node(self) -> None:
        if self._publisher is not None:
            self.destroy_lifecycle_publisher(self._publisher)
            self._publisher = None

    def diagnostics(self) -> tuple[bytes, str, dict[str, object], str]:
        return OK, self.status, {"pulses": self.count}, "pulse"

    def _pulse(self, stop: threading.Event) -> None:
        period = 1.0 / float(self.get_parameter("rate_hz").value)
        while not stop.wait(period):
            if self.fail_worker.is_set():
                self.fail_worker.clear()
                raise RuntimeError("injected worker failure")
            self._publisher.publish(Int64(data=self.count))
            self.count += 1
        if self.hang_s:
            time.sleep(self.hang_s)

    def _on_fail_worker(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.fail_worker.set()
        response.success = True
        return response

    def _on_fail_callback(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        raise ValueError("injected callback failure")

    def _on_hang_worker(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.hang_s = 7.0
        response.success = True
        return response


def main(args: Sequence[str] | None = None) -> int:
    return run_node(PulseNode, args, program="pulse")


if __name__ == "__main__":
    sys.exit(main())
