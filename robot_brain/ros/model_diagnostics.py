"""The model-running nodes' diagnostics (policy, perception): the same facts about each ONNX session.

Both nodes report the provider really in use, latency median/p99 and rejected outputs, so
dashboards read them the same way; the message itself is :mod:`robot_brain.ros.diagnostics`'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the type only: importing the runtime loads ONNX Runtime
    from robot_brain.inference.runtime import InferenceRuntime
    from robot_brain.inference.stats import LatencyStats


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
