"""End to end over real DDS: the demo on arms re-painted the object's red, and an object perception cannot see.

With the arm painted exactly the object's colour (``--param sim.arm_color=[0.9,0.1,0.1]``),
the plain colour detector takes the arm for the object (the demo used to stop with "timed out
waiting for perception to locate the new object"); with the robot's self-filter and the
apparent-size check that the launch plan wires, every episode reaches the object. An episode
whose object is out of the camera's view is a failed episode with perception's reason, and
the run goes on to the next one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

pytestmark = [pytest.mark.dds, pytest.mark.slow]

RED = "[0.9,0.1,0.1]"


def demo(tmp_path: Path, *arguments: str) -> dict[str, object]:
    process = subprocess.run(
        [sys.executable, "-m", "robot_brain.cli.main", "demo", *arguments, "--json", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=150, env={**os.environ},
    )
    log = tmp_path / "nodes.log"
    assert process.returncode == 0, process.stderr[-2000:] + (log.read_text()[-3000:] if log.exists() else "")
    return json.loads(process.stdout)


# example-robot-data's Panda (7 + gripper) and UR5 show collision meshes in the sim (self_filter_geometry: both);
# pybullet_data's xArm6 shows its visuals.
@pytest.mark.parametrize("robot", ["panda", "ur5", "xarm6"])
def test_the_demo_reaches_the_object_beside_an_arm_painted_its_colour(robot: str, tmp_path: Path) -> None:
    result = demo(tmp_path, "--robot", robot, "--episodes", "2", "--seed", "0", "--param", f"sim.arm_color={RED}")
    assert result["episodes"] == 2 and result["success_rate"] == 1.0, result
    # The contact sheet shows perception's annotated frame (mask, detection, point) beside each raw frame:
    # three pairs of 320x240 tiles per row.
    sheet = cv2.imread(str(tmp_path / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] == 3 * 2 * 320


def test_an_object_out_of_view_fails_its_episode_with_the_reason_and_the_run_goes_on(tmp_path: Path) -> None:
    # A 15 degree camera: seed 0 places the object inside the image, seed 1 above it.
    result = demo(tmp_path, "--robot", "xarm6", "--episodes", "2", "--seed", "0",
                  "--param", "sim.camera_fovy_deg=15", "--param", f"sim.arm_color={RED}")
    assert result["episodes"] == 2 and result["successes"] == 1, result
    [failure] = result["failures"]  # type: ignore[misc]
    assert failure["seed"] == 1
    assert failure["message"].startswith("perception did not locate the object in 5 s (")
    assert "the arm held still" in failure["message"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failures"] == result["failures"]
