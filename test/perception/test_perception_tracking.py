"""OcclusionGate: full views pass, shrunken (occluded) views hold the last full one, new targets replace it."""

from __future__ import annotations

import pytest

from robot_brain.errors import ConfigurationError
from robot_brain.perception.detector import Detection
from robot_brain.perception.tracking import OcclusionGate


def blob(u: float, v: float, area: float) -> Detection:
    return Detection(u=u, v=v, area=area, circularity=0.8)


def test_a_shrinking_blob_near_the_held_one_is_held() -> None:
    gate = OcclusionGate(min_area_ratio=0.6)
    full = blob(100.0, 80.0, 400.0)
    assert gate.update(full) is full
    # The tool covers half the cube: the centroid slides 5 px, the area halves.
    assert gate.update(blob(95.0, 84.0, 200.0)) is full
    assert gate.held_frames == 1
    # Uncovered again: the new full view is used.
    back = blob(101.0, 80.0, 390.0)
    assert gate.update(back) is back


def test_a_blob_far_away_is_a_new_target_whatever_its_size() -> None:
    gate = OcclusionGate(min_area_ratio=0.6)
    gate.update(blob(100.0, 80.0, 400.0))
    moved = blob(220.0, 150.0, 150.0)  # the next episode's object, farther from the camera
    assert gate.update(moved) is moved
    assert gate.update(blob(221.0, 150.0, 140.0)).area == 140.0  # its own reference now


def test_ratio_zero_disables_the_gate_and_bad_ratios_are_refused() -> None:
    gate = OcclusionGate(min_area_ratio=0.0)
    gate.update(blob(100.0, 80.0, 400.0))
    small = blob(99.0, 80.0, 50.0)
    assert gate.update(small) is small
    with pytest.raises(ConfigurationError, match=r"occlusion_hold_ratio: expected a value in \[0, 1\)"):
        OcclusionGate(min_area_ratio=1.5)


def test_a_blob_too_small_for_the_size_check_keeps_the_held_view_only_where_the_target_was() -> None:
    gate = OcclusionGate(min_area_ratio=0.6)
    assert gate.hold_for(blob(100.0, 80.0, 20.0)) is None  # nothing held yet
    full = blob(100.0, 80.0, 400.0)
    gate.update(full)
    # The gripper hides nearly all of it: the size check rejected the sliver, the full view stays.
    assert gate.hold_for(blob(103.0, 84.0, 25.0)) is full
    assert gate.held_frames == 1
    assert gate.hold_for(blob(250.0, 200.0, 25.0)) is None  # a speck elsewhere is not the target
    assert OcclusionGate(min_area_ratio=0.0).hold_for(full) is None  # the gate disabled holds nothing
