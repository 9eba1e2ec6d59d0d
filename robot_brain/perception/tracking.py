"""Holding a target through partial occlusion.

When a tool closes in on an object, the tool hides part of it from the camera; the visible
blob shrinks and its centroid slides away from the tool, so the perceived point walks away
exactly when precision matters most. ``OcclusionGate`` keeps the last full view of a target
while the blob is much smaller than the largest one seen for that target, and lets a new
target (a blob that appears far from the held one) replace it at once.
"""

from __future__ import annotations

import math

from robot_brain.errors import ConfigurationError
from robot_brain.perception.detector import Detection


class OcclusionGate:
    """Passes full views of a target through and holds the last one while it is partly hidden.

    Args:
        min_area_ratio: a detection smaller than this fraction of the target's largest area is
            treated as occluded (0 disables the gate).
        new_target_distance: a detection farther than this many blob diameters from the held
            one is a new target, accepted whatever its size.
    """

    def __init__(self, min_area_ratio: float = 0.6, new_target_distance: float = 1.5) -> None:
        if not 0.0 <= min_area_ratio < 1.0:
            raise ConfigurationError(f"occlusion_hold_ratio: expected a value in [0, 1), found {min_area_ratio}")
        self.min_area_ratio = min_area_ratio
        self.new_target_distance = new_target_distance
        self._held: Detection | None = None
        self._reference_area = 0.0
        self.held_frames = 0

    def reset(self) -> None:
        self._held = None
        self._reference_area = 0.0

    def update(self, detection: Detection) -> Detection:
        """The detection to use for this frame: ``detection`` itself, or the held full view."""
        held = self._held
        if held is None or self.min_area_ratio == 0.0 or self._is_new_target(detection, held):
            self._accept(detection, detection.area)
            return detection
        if detection.area >= self.min_area_ratio * self._reference_area:
            self._accept(detection, max(self._reference_area, detection.area))
            return detection
        self.held_frames += 1
        return held

    def hold_for(self, hidden: Detection) -> Detection | None:
        """The held full view for a blob too small to be accepted on its own, or None.

        The detector's size check turns down a target the tool almost hides (it shows less
        than its smallest plausible area); when that blob lies where the held target is, the
        target is still there: keep publishing its last full view. A small blob elsewhere is
        a speck, not the target (None).
        """
        held = self._held
        if held is None or self.min_area_ratio == 0.0 or self._is_new_target(hidden, held):
            return None
        self.held_frames += 1
        return held

    def _is_new_target(self, detection: Detection, held: Detection) -> bool:
        diameter = 2.0 * math.sqrt(held.area / math.pi)
        return math.hypot(detection.u - held.u, detection.v - held.v) > self.new_target_distance * diameter

    def _accept(self, detection: Detection, reference_area: float) -> None:
        self._held = detection
        self._reference_area = reference_area
