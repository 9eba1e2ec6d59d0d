"""``diagnostic_msgs`` for the model-running nodes (policy, perception): one status per node.

Both nodes report the same facts about their ONNX session (provider really in use,
latency median/p99, rejected outputs) so dashboards read them the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.time import Time

from robot_brain.inference.runtime import InferenceRuntime
from robot_brain.inference.stats import LatencyStats

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def _text(value: object) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def runtime_values(runtime: InferenceRuntime, latency: LatencyStats) -> dict[str, object]:
    """Provider, warm-up time, latency percentiles (ms) and rejected-output counts."""
    median, p99 = latency.percentiles()
    counters = runtime.counters
    return {
        "provider": runtime.providers.primary,
        "providers_active": ",".join(runtime.providers.active),
        "providers_requested": ",".join(runtime.providers.requested),
        "gpu": runtime.providers.on_gpu,
        "warmup_s": runtime.warmup_s,
        "inference_ms_median": median * 1e3,
        "inference_ms_p99": p99 * 1e3,
        "inferences": counters.total,
        "rejected_non_finite": counters.non_finite,
        "rejected_bad_shape": counters.bad_shape,
        "last_rejection": counters.last_reason,
    }


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
