"""The bundled demo policy: a hand-written proportional end-effector reach controller, as ONNX.

It is NOT learned. It exists so the whole pipeline (perception → policy node → ActionChunk →
arm controller) runs out of the box on any URDF arm with the same contract a trained
model would carry, and so the simulator's reach task has a policy to score.

Graph (opset 17, built with ``onnx.helper``)::

    target_point [1,3], ee_pose [1,7]  →  actions [1, H, 7]   (action_space ee_pose_delta)

    d      = target - ee_pose[:3]
    gain   = min(kp, v_max / max(|d|, eps))        # proportional, speed capped at v_max
    off_k  = d * min(1, gain * k * dt),  k = 1..H  # never overshoots the target
    wp_k   = [off_k, 0, 0, 0, 1]                   # orientation unchanged (identity delta)

Why ``ee_pose_delta`` rather than ``ee_twist``: a delta chunk is a sequence of *positions*
relative to the pose at observation time, so the controller turns waypoint k into an
absolute target at ``header.stamp + k*dt`` and a late or dropped chunk cannot make the
arm drift; a twist chunk must be integrated, so latency and tracking error accumulate, and
the safety filter can bound a position target directly but not an integrated velocity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from robot_brain.inference.builders import GraphBuilder, value_info
from robot_brain.inference.model import embed_contract

DEFAULT_HORIZON = 10
DEFAULT_DT = 0.05
DEFAULT_MAX_SPEED = 0.25
DEFAULT_GAIN = 2.0
NAME = "reach_p_controller"


def reach_contract(
    horizon: int = DEFAULT_HORIZON,
    dt: float = DEFAULT_DT,
    max_speed: float = DEFAULT_MAX_SPEED,
    gain: float = DEFAULT_GAIN,
    target_topic: str = "/perception/target_point",
) -> dict[str, Any]:
    """The demo policy's contract document."""
    return {
        "name": NAME,
        "description": (
            f"Hand-written proportional end-effector reach controller (NOT a learned policy): moves the "
            f"tool toward target_point at gain {gain} 1/s, speed capped at {max_speed} m/s, "
            "orientation unchanged."
        ),
        "learned": False,
        "control_rate_hz": 10.0,
        "inputs": [
            {
                "name": "target_point",
                "role": "target_point",
                "topic": target_topic,
                "shape": [1, 3],
                "synchronized": False,
            },
            {"name": "ee_pose", "role": "ee_pose", "shape": [1, 7]},
        ],
        "outputs": [
            {
                "name": "actions",
                "role": "action_chunk",
                "action_space": "ee_pose_delta",
                "shape": [1, horizon, 7],
                "horizon": horizon,
                "dt": dt,
                "dim": 7,
                "gripper": False,
            },
        ],
    }


def build_reach_policy(
    horizon: int = DEFAULT_HORIZON,
    dt: float = DEFAULT_DT,
    max_speed: float = DEFAULT_MAX_SPEED,
    gain: float = DEFAULT_GAIN,
) -> onnx.ModelProto:
    """Build the reach controller graph with its contract embedded."""
    for key, value in (("horizon", horizon), ("dt", dt), ("max_speed", max_speed), ("gain", gain)):
        if value <= 0:
            raise ValueError(f"reach policy {key}: expected > 0, found {value}")
    g = GraphBuilder()
    position = g.op(
        "Slice",
        ["ee_pose", g.const([0], dtype=np.int64), g.const([3], dtype=np.int64), g.const([1], dtype=np.int64)],
    )
    delta = g.op("Sub", ["target_point", position])  # [1,3]
    distance = g.op("Max", [g.op("ReduceL2", [delta], axes=[1], keepdims=1), g.const(1e-9)])  # [1,1]
    speed_gain = g.op("Min", [g.const(gain), g.op("Div", [g.const(max_speed), distance])])  # [1,1]
    times = g.const(np.arange(1, horizon + 1, dtype=np.float32).reshape(horizon, 1) * dt)  # [H,1]
    fraction = g.op("Min", [g.op("Mul", [times, speed_gain]), g.const(1.0)])  # [H,1]
    offsets = g.op("Mul", [fraction, delta])  # [H,3]
    identity = g.const(np.tile(np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32), (horizon, 1)))  # [H,4]
    waypoints = g.op("Concat", [offsets, identity], axis=1)  # [H,7]
    g.op("Unsqueeze", [waypoints, g.const([0], dtype=np.int64)], output="actions")
    model = g.model(
        [value_info("target_point", "float32", [1, 3]), value_info("ee_pose", "float32", [1, 7])],
        [value_info("actions", "float32", [1, horizon, 7])],
        NAME,
    )
    return embed_contract(model, reach_contract(horizon, dt, max_speed, gain))


def write_reach_policy(path: str | Path, **kwargs: float) -> Path:
    """Write the demo policy to ``path`` (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build_reach_policy(**kwargs), str(path))  # type: ignore[arg-type]
    return path


def reach_policy_bytes() -> bytes:
    """The default demo policy, serialized (what ``model_path: builtin:reach`` loads)."""
    return build_reach_policy().SerializeToString()
