"""Stalls: detected and explained on a target behind a joint limit, and left by a move to another IK branch.

The arm is a UR5 whose shoulder pan this test narrows to [-0.3, 3.0] rad in its own copy of
the URDF. The target sits 1 rad of yaw clockwise from the start: following the tool in a
straight line pins the pan at its lower limit, while the same point is reachable reaching
back over the shoulder (pan near 2.8). The policy is the reach controller's law (10 waypoints
of ee_pose_delta, 0.25 m/s), recomputed from where the tool is every 0.1 s, and the arm
follows its commands exactly, so only the controller's kinematics decide.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from robot_brain.control.chunks import RawChunk
from robot_brain.control.controller import ArmController, ControllerConfig
from robot_brain.control.safety import SafetyLimits
from robot_brain.control.stall import StallMonitor
from robot_brain.embodiment import Arm, load_arm
from robot_brain.embodiment.catalog import bundled_arm_path, sweep_arm_path
from robot_brain.sim.workspace import reachable_from

PAN_LOWER, PAN_UPPER = -0.3, 3.0
START = np.array([0.3, -1.2, 1.4, -1.8, -1.57, 0.0])
PERIOD = 0.002


@pytest.fixture(scope="module")
def narrowed_ur5(tmp_path_factory: pytest.TempPathFactory) -> tuple[Arm, Path]:
    text = bundled_arm_path("ur5").read_text()
    pan = re.search(r'<joint name="shoulder_pan_joint".*?</joint>', text, re.S)
    assert pan is not None
    narrowed = re.sub(r'upper="[^"]*"', f'upper="{PAN_UPPER}"', re.sub(r'lower="[^"]*"', f'lower="{PAN_LOWER}"',
                                                                        pan.group(0)))
    path = tmp_path_factory.mktemp("arm") / "ur5_narrow_pan.urdf"
    path.write_text(text.replace(pan.group(0), narrowed))
    return load_arm(str(path)), path


def run_reach(arm: Arm, resolve: bool, seconds: float = 8.0, start: np.ndarray = START,
              target: np.ndarray | None = None) -> tuple[ArmController, float, list[str]]:
    """Drive the controller core toward the target; returns it, the final distance and each stall report seen.

    The default target is the start's tool position turned 1 rad clockwise about the base.
    """
    spec = arm.spec
    controller = ArmController(arm, SafetyLimits.from_spec(spec.lower, spec.upper, spec.velocity),
                               ControllerConfig(resolve_on_stall=resolve))
    fk = arm.kinematics.fk
    if target is None:
        yaw = -1.0
        rotation = np.array([[math.cos(yaw), -math.sin(yaw), 0.0], [math.sin(yaw), math.cos(yaw), 0.0],
                             [0.0, 0.0, 1.0]])
        target = rotation @ fk(start)[:3, 3]
    q, t, next_chunk, reports = start.copy(), 0.0, 0.0, []
    controller.on_joint_state(q, t, t)
    for _ in range(int(seconds / PERIOD)):
        t += PERIOD
        if t >= next_chunk:
            next_chunk += 0.1
            gap = target - fk(q)[:3, 3]
            gain = min(2.0, 0.25 / max(float(np.linalg.norm(gap)), 1e-9))
            waypoints = [[*(gap * min(1.0, gain * k * 0.05)), 0.0, 0.0, 0.0, 1.0] for k in range(1, 11)]
            controller.on_chunk(RawChunk(t, "ee_pose_delta", 10, 0.05, 7, (), False, np.ravel(waypoints)), t)
            if controller.mapper.stall is not None:
                reports.append(controller.mapper.stall.describe())
            if controller.singularity_hold(t):
                reports.append(controller.singularity_hold(t))
        command = controller.cycle(t)
        if command.positions is not None:
            q = np.array(command.positions)
        controller.on_joint_state(q, t, t)
    return controller, float(np.linalg.norm(target - fk(q)[:3, 3])), reports


def test_a_target_behind_a_joint_limit_is_reported_as_a_stall_naming_the_joint_and_limit(
    narrowed_ur5: tuple[Arm, Path],
) -> None:
    arm, path = narrowed_ur5
    # The oracle: the limit as this test wrote it, read back from the file.
    joint = next(j for j in ET.parse(path).getroot().iter("joint") if j.get("name") == "shoulder_pan_joint")
    limit = joint.find("limit")
    assert limit is not None and float(limit.get("lower", "nan")) == PAN_LOWER
    controller, distance, reports = run_reach(arm, resolve=False)
    assert distance > 0.2, "the local step alone was expected to stop short of this target"
    assert reports, "the arm stopped short and no stall was reported"
    assert "shoulder_pan_joint at its lower limit" in reports[-1], reports[-1]
    stall = controller.mapper.stall
    assert stall is not None and stall.residual > 0.05
    value = stall.at_limits[0].value
    assert PAN_LOWER <= value <= PAN_LOWER + 0.05  # the pan sits at the limit the file gives


def test_the_resolve_reaches_the_target_the_local_step_cannot(narrowed_ur5: tuple[Arm, Path]) -> None:
    arm, _ = narrowed_ur5
    controller, distance, _ = run_reach(arm, resolve=True)
    assert controller.mapper.branch_moves == 1
    assert "shoulder_pan_joint at its lower limit" in controller.mapper.last_branch_move_reason
    assert distance < 0.01, f"the other branch did not reach the target: {distance * 100:.1f} cm short"
    assert controller.mapper.stall is None


def test_the_stall_monitor_tells_a_closing_gap_from_a_stuck_one() -> None:
    monitor = StallMonitor(window=1.0, min_residual=0.01, min_progress=0.1)
    assert all(monitor.observe(t * 0.1, 0.3 - 0.02 * t) is None for t in range(15))  # closing: no stall
    monitor.clear()
    for t in range(10):
        assert monitor.observe(t * 0.1, 0.3) is None  # not a whole window yet
    stall = monitor.observe(1.0, 0.29)
    assert stall is not None and stall.since == 0.0 and stall.residual == 0.29
    assert monitor.observe(1.1, 0.005) is None and monitor.stall is None  # following again
    with pytest.raises(ValueError, match="min_progress"):
        StallMonitor(min_progress=1.5)


def test_a_reach_held_at_a_wrist_singularity_is_reported_and_no_longer_placed() -> None:
    """A 2.9 m six-axis arm (rtb-data's "irb140") whose tool-down path crosses its wrist singularity.

    From this start (wrist angle 0.14 rad), keeping the tool's orientation on the way to the
    target drives joint 5 to zero: the singularity guard holds the arm 60 cm short while the
    IK reaches every waypoint. The hold is reported with the condition number, and the task's
    placement (a path's condition number must stay below the guard's lower threshold) no
    longer asks for that target from there.
    """
    arm = load_arm(str(sweep_arm_path("abb_irb140")))
    start = np.array([0.0, 0.8, 0.62, -0.01, 0.14, -3.14])
    target = np.array([1.6, -0.6, 0.05])
    controller, distance, reports = run_reach(arm, resolve=True, seconds=6.0, start=start, target=target)
    assert distance > 0.3 and reports, "the arm was expected to be held short at the singularity"
    assert "held at a singularity" in reports[-1] and "singularity_hard_threshold (200)" in reports[-1], reports[-1]
    assert controller.counters.singularity_stops > 0
    start_pose = arm.kinematics.fk(start)
    assert reachable_from(arm, start, start_pose, target, max_condition=math.inf), "reachable, ignoring singularities"
    assert not reachable_from(arm, start, start_pose, target), "placed across a singularity"
