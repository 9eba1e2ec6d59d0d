"""The demo's report without ROS: a contact sheet with perception's annotated frames, failures with their reasons."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from robot_brain.demo.report import DemoSummary, EpisodeRecord, contact_sheet


def frame(value: int) -> np.ndarray:
    return np.full((24, 32, 3), value, np.uint8)


def record(episode: int, success: bool, frames: int, debug: bool, located: bool = True) -> EpisodeRecord:
    result = EpisodeRecord(episode=episode, seed=episode, success=success, time_to_success=1.0 if success else math.nan,
                           final_distance=0.01, target=np.zeros(3), message="" if success else "why", located=located)
    result.frames = [frame(10 * (i + 1)) for i in range(frames)]
    # Perception's debug image of every frame but the second (a frame its worker dropped).
    result.debug_frames = [(np.full((24, 32, 3), (200, 0, 0), np.uint8) if debug and i != 1 else None)
                           for i in range(frames)]
    return result


def test_contact_sheet_puts_the_debug_image_beside_each_raw_frame(tmp_path: Path) -> None:
    episodes = [record(0, True, 6, debug=True), record(1, False, 2, debug=False, located=False)]
    sheet = cv2.imread(str(contact_sheet(episodes, tmp_path / "sheet.png", columns=4)))
    # Row 0: three raw|debug pairs (64 px each); row 1: no debug images, four raw frames, padded to the width.
    assert sheet.shape == (48, 3 * 64, 3)
    first_pair = sheet[19:24, :64]  # below the label
    assert first_pair[:, 32:, 2].min() == 200 and first_pair[:, 32:, 0].max() == 0  # debug half: red
    assert np.all(sheet[30:, 128:] == 0)  # the second row's two frames and padding


def test_a_frame_without_its_debug_image_gets_a_grey_placeholder(tmp_path: Path) -> None:
    episode = record(0, True, 3, debug=True)
    sheet = cv2.imread(str(contact_sheet([episode], tmp_path / "sheet.png", columns=4)))
    assert sheet.shape == (24, 3 * 64, 3)
    assert int(np.median(sheet[16:, 64 + 32:128])) == 40  # the middle pair: frame 1 had no debug image


def test_failures_carry_their_reasons_into_the_summary() -> None:
    reason = "perception did not locate the object in 5 s (no blob of the target's colour); the arm held still"
    failed = record(1, False, 0, debug=False, located=False)
    failed.message = reason
    summary = DemoSummary(robot="xarm6", model="builtin:reach", episodes=[record(0, True, 0, False), failed],
                          latencies_ms=[5.0], control_p99_us=100.0, real_time_factor=1.0, tolerance=0.03, wall_s=9.0)
    data = summary.as_dict()
    assert data["successes"] == 1 and data["success_rate"] == 0.5
    assert data["failures"] == [{"episode": 1, "seed": 1, "message": reason, "stall": ""}]
    assert f"failed: episode 1 (seed 1): {reason}" in summary.table()


def test_stalls_and_branch_moves_are_counted_in_the_summary() -> None:
    stall = "stalled 12.5 cm short of the commanded tool position: shoulder_pan_joint at its lower limit (-0.280)"
    stuck = record(1, False, 0, debug=False)
    stuck.stall, stuck.message = stall, f"timeout after 8.0 s (closest 28.0 cm); the arm controller reported: {stall}"
    freed = record(2, True, 0, debug=False)
    freed.stall, freed.branch_moves = stall, 1
    summary = DemoSummary(robot="ur5", model="builtin:reach", episodes=[record(0, True, 0, False), stuck, freed],
                          latencies_ms=[5.0], control_p99_us=100.0, real_time_factor=1.0, tolerance=0.03, wall_s=9.0)
    data = summary.as_dict()
    assert data["stalled_episodes"] == 2 and data["branch_moves"] == 1
    assert data["failures"] == [{"episode": 1, "seed": 1, "message": stuck.message, "stall": stall}]
    assert "2 episodes stalled, 1 moves to another IK branch" in summary.table()


def test_path_ratio_is_one_for_a_straight_path_and_grows_with_a_detour() -> None:
    straight = record(0, True, 0, debug=False)
    straight.tool_path = [(0.1 * k, 0.3 + 0.01 * k, 0.0, 0.2) for k in range(11)]
    detour = record(1, True, 0, debug=False)
    # Out 0.1 m sideways and back while travelling 0.1 m: sqrt(0.05² + 0.1²) twice over 0.1 m.
    detour.tool_path = [(0.0, 0.3, 0.0, 0.2), (0.5, 0.35, 0.1, 0.2), (1.0, 0.4, 0.0, 0.2)]
    still = record(2, False, 0, debug=False)
    still.tool_path = [(0.0, 0.3, 0.0, 0.2), (1.0, 0.3, 0.0, 0.2)]
    assert straight.path_ratio() == pytest.approx(1.0)
    assert detour.path_ratio() == pytest.approx(2 * math.hypot(0.05, 0.1) / 0.1)
    assert math.isnan(still.path_ratio())
    summary = DemoSummary(robot="ur5", model="builtin:reach", episodes=[straight, detour, still],
                          latencies_ms=[5.0], control_p99_us=100.0, real_time_factor=1.0, tolerance=0.03, wall_s=9.0)
    data = summary.as_dict()
    assert data["path_ratios"][2] is None
    assert data["path_ratio_median"] == pytest.approx((1.0 + 2 * math.hypot(0.05, 0.1) / 0.1) / 2, abs=1e-3)
