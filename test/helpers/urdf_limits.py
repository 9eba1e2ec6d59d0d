"""Joint limits read straight from a URDF file with ElementTree: an oracle independent of robot_brain.embodiment.

The safety property tests check every command against these, beside the filter's own (tighter)
limits, so a mistake in how the code under test reads or derives limits cannot hide itself.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class UrdfLimits:
    """Per joint, in the order asked for: position bounds (±inf for continuous joints) and the velocity limit."""

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray  # nan where the URDF gives none (or 0, which URDF tools read as "not set")


def read_urdf_limits(urdf: str | Path, joint_names: list[str] | tuple[str, ...]) -> UrdfLimits:
    joints = {joint.get("name"): joint for joint in ET.parse(urdf).getroot().findall("joint")}  # not <transmission>s
    lower, upper, velocity = [], [], []
    for name in joint_names:
        joint = joints[name]
        limit = joint.find("limit")
        if joint.get("type") == "continuous" or limit is None:
            low, high = -math.inf, math.inf
        else:
            low, high = float(limit.get("lower", "0")), float(limit.get("upper", "0"))
        speed = float(limit.get("velocity", "0")) if limit is not None else 0.0
        lower.append(low)
        upper.append(high)
        velocity.append(speed if speed > 0 else math.nan)
    return UrdfLimits(np.array(lower), np.array(upper), np.array(velocity))


def assert_within_urdf_limits(commands: np.ndarray, limits: UrdfLimits, dt: float, tolerance: float = 1e-9) -> None:
    """Every command inside the URDF's position bounds, every step within the URDF's velocity limits."""
    assert np.all(commands >= limits.lower - tolerance), "a command below the URDF's lower limit"
    assert np.all(commands <= limits.upper + tolerance), "a command above the URDF's upper limit"
    speeds = np.abs(np.diff(commands, axis=0)) / dt
    known = np.isfinite(limits.velocity)
    excess = speeds[:, known] - limits.velocity[known] * (1 + 1e-9)
    assert np.all(excess <= 1e-9), f"a step faster than the URDF's velocity limit by {excess.max():.3g}"
