"""``diagnostic_msgs`` as every node publishes them: one status per node, values as text.

The node skeleton publishes each node's status through :func:`diagnostic_array`; the levels are
diagnostic_msgs' own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.time import Time

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def _text(value: object) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def diagnostic_array(
    stamp: Time, name: str, hardware_id: str, level: bytes, message: str, values: Mapping[str, object]
) -> DiagnosticArray:
    """One DiagnosticArray with one status whose key/values are ``values`` as text."""
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id)
    status.values = [KeyValue(key=str(k), value=_text(v)) for k, v in values.items()]
    array = DiagnosticArray()
    array.header.stamp = stamp.to_msg()
    array.status = [status]
    return array
