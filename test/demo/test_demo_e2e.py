"""End to end over real DDS: sim + perception + policy + arm_controller as processes, one episode per arm.

The same command as `make demo`, shortened: the camera sees the object, perception locates
it, the policy publishes chunks, the controller drives the simulated arm to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.dds, pytest.mark.slow]


@pytest.mark.parametrize("robot", ["panda", "xarm6"])  # example-robot-data (7 + gripper) and pybullet_data (6)
def test_one_reach_episode_end_to_end(robot: str, tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "robot_brain.cli.main", "demo", "--robot", robot, "--episodes", "1", "--seed", "3",
         "--json", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=150, env={**os.environ},
    )
    assert process.returncode == 0, process.stderr[-2000:] + (tmp_path / "nodes.log").read_text()[-3000:]
    result = json.loads(process.stdout)
    assert result["episodes"] == 1 and result["success_rate"] == 1.0, result
    assert 0.0 < result["time_to_success_mean_s"] < 8.0
    assert result["latency_samples"] > 0 and 0.0 < result["latency_p50_ms"] < 200.0
    assert 0.5 < result["real_time_factor"] < 1.5
    for name in ("summary.json", "trajectories.png", "contact_sheet.png", "nodes.log"):
        assert (tmp_path / name).stat().st_size > 0
    assert "[sim" not in process.stdout  # node logs go to nodes.log, stdout stays one JSON object
