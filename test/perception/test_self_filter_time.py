"""Time matching: a moving arm is masked where it was when the frame was exposed; stale states mask nothing.

The arm moves under the real simulator (position actuators following a trajectory), joint
states stream at the sim node's 250 Hz, and the frame is taken between two samples and
processed 60 ms later, as a camera's latency would have it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from self_filter_cells import Segmenter, cell, fresh_cell, iou, self_filter

from robot_brain.errors import ConfigurationError
from robot_brain.perception.joint_history import JointStateHistory, SampleStatus
from robot_brain.perception.self_filter import SelfFilter
from robot_brain.sim import Simulator

NS = 1_000_000_000
JOINT_STATE_STEPS = 2  # 250 Hz at the 2 ms physics step


def _stream(filt: SelfFilter, simulator: Simulator, steps: int) -> None:
    """Step the physics, publishing joint states at 250 Hz as the sim node does."""
    for _ in range(steps // JOINT_STATE_STEPS):
        simulator.step(JOINT_STATE_STEPS)
        state = simulator.joint_state()
        filt.add_joint_state(round(state.time * NS), simulator.scene.state_joints, state.position)


def test_a_moving_arm_is_masked_where_it_was_at_the_frames_stamp() -> None:
    sim_cell = fresh_cell("xarm7")
    simulator = sim_cell.sim.simulator
    filt = self_filter("xarm7", margin_px=0.0)
    spec = sim_cell.sim.arm.spec
    home = sim_cell.sim.layout.home
    swing = home.copy()
    swing[0] += 1.2  # the first joint sweeps the whole arm sideways
    simulator.command_trajectory(spec.joint_names, [0.6], [swing.tolist()])
    _stream(filt, simulator, 150)  # 0.3 s in: the arm is moving fast
    simulator.step(1)  # the frame's exposure falls between two joint samples
    frame_time = simulator.copy_kinematics(sim_cell.data)
    segmenter = Segmenter(sim_cell)
    try:
        truth = segmenter.robot()
    finally:
        segmenter.close()
    _stream(filt, simulator, 31)  # the frame reaches perception 60 ms later
    matched = filt.mask_at(round(frame_time * NS), sim_cell.camera, sim_cell.camera_pose)
    assert matched.ok and matched.status is SampleStatus.OK and matched.detail == ""
    assert abs(matched.offset_s) <= 0.002 + 1e-9
    at_frame = iou(matched.mask > 0, truth)
    newest = simulator.joint_state()
    latest = filt.render(np.array([dict(zip(simulator.scene.state_joints, newest.position, strict=True))[name]
                                   for name in filt.joint_names]), sim_cell.camera, sim_cell.camera_pose) > 0
    print(f"IoU at the frame's stamp {at_frame:.3f}, with the newest joint state {iou(latest, truth):.3f}")
    assert at_frame >= 0.9
    assert iou(latest, truth) < at_frame - 0.1  # without time matching the mask trails the arm


def test_stale_and_missing_joint_states_mask_nothing_and_say_why() -> None:
    sim_cell = cell("panda")
    filt = self_filter("panda", max_joint_state_age_s=0.05)
    camera, pose = sim_cell.camera, sim_cell.camera_pose
    nothing = filt.mask_at(5 * NS, camera, pose)
    assert nothing.mask is None and nothing.status is SampleStatus.NO_JOINT_STATES and not nothing.ok
    assert math.isnan(nothing.offset_s) and "no joint state" in nothing.detail

    # Only the gripper's driver has spoken: the arm's joints are unknown.
    filt.add_joint_state(5 * NS, ["panda_finger_joint1"], [0.02])
    missing = filt.mask_at(5 * NS, camera, pose)
    assert missing.mask is None and missing.status is SampleStatus.MISSING_JOINTS
    assert "panda_joint1" in missing.detail

    arm_joints = list(sim_cell.sim.arm.spec.joint_names)
    filt.add_joint_state(5 * NS, arm_joints, sim_cell.sim.layout.home)
    assert filt.mask_at(5 * NS + NS // 100, camera, pose).ok
    late = filt.mask_at(6 * NS, camera, pose)  # a frame 1 s after the last joint state
    assert late.mask is None and late.status is SampleStatus.STALE
    assert late.offset_s == pytest.approx(1.0) and "newest joint state is 1.000 s from the frame" in late.detail
    early = filt.mask_at(4 * NS, camera, pose)  # older than anything kept
    assert early.status is SampleStatus.STALE and "oldest" in early.detail


def test_garbage_joint_states_never_crash() -> None:
    sim_cell = cell("panda")
    filt = self_filter("panda")
    names = list(sim_cell.sim.scene.state_joints)
    home = np.concatenate([sim_cell.sim.layout.home, [0.04, 0.04]])
    filt.add_joint_state(NS, names, home)
    filt.add_joint_state(NS + 4_000_000, names, home[:3])  # positions shorter than names: ignored
    filt.add_joint_state(NS + 8_000_000, ["nobody", "panda_joint1"], [1.0, float("nan")])  # unknown, NaN: ignored
    filt.add_joint_state(NS + 12_000_000, [], [])
    result = filt.mask_at(NS + 10_000_000, sim_cell.camera, sim_cell.camera_pose)
    assert result.ok and np.count_nonzero(result.mask) > 1000
    np.testing.assert_allclose(filt._positions[:7], sim_cell.sim.layout.home)  # the NaN did not get in


def history(**kwargs: object) -> JointStateHistory:
    return JointStateHistory(["a", "b", "wrist"], required=["a", "b"], continuous=[False, False, True], **kwargs)


def test_interpolation_partial_messages_and_continuous_joints() -> None:
    joints = history()
    out = np.zeros(3)
    joints.add(0, ["a", "b", "wrist"], [0.0, 1.0, 3.0])
    joints.add(10_000_000, ["a", "b", "wrist"], [1.0, 3.0, -3.0])  # the wrist crossed +pi
    assert joints.sample(2_500_000, 0.1, out).status is SampleStatus.OK
    wrapped = 3.0 + 0.25 * (2.0 * math.pi - 6.0)
    np.testing.assert_allclose(out[:2], [0.25, 1.5])
    assert math.remainder(out[2] - wrapped, 2.0 * math.pi) == pytest.approx(0.0, abs=1e-12)
    joints.add(20_000_000, ["b"], [5.0])  # a publisher of one joint: the others keep their last values
    joints.sample(20_000_000, 0.1, out)
    np.testing.assert_allclose(out[:2], [1.0, 5.0])
    joints.add(25_000_000, ["a"], [2.0])
    joints.add(25_000_000, ["b"], [6.0])  # same stamp, another publisher: merged into one sample
    joints.sample(25_000_000, 0.1, out)
    np.testing.assert_allclose(out[:2], [2.0, 6.0])
    assert len(joints) == 4


def test_out_of_order_samples_clock_jumps_and_a_full_window() -> None:
    joints = history(capacity=8)
    out = np.zeros(3)
    for i in range(40):  # five times around the window
        joints.add(i * 1_000_000, ["a", "b"], [float(i), -float(i)])
    assert len(joints) == 8
    joints.sample(35_500_000, 0.01, out)
    np.testing.assert_allclose(out[:2], [35.5, -35.5])
    assert joints.sample(20_000_000, 0.001, out).status is SampleStatus.STALE  # fell out of the window
    joints.add(30_000_000, ["a", "b"], [0.0, 0.0])  # late sample from a slow publisher: not inserted
    assert joints.out_of_order == 1 and len(joints) == 8
    joints.add(1_000_000, ["a", "b"], [7.0, 7.0])  # the clock went back 38 ms: late, not a jump
    joints.add(0, ["a", "b"], [7.0, 7.0])
    assert joints.clock_jumps == 0
    joints.add(5 * NS, ["a", "b"], [1.0, 1.0])
    joints.add(1 * NS, ["a", "b"], [2.0, 2.0])  # 4 s back: a restarted sim, start over
    assert joints.clock_jumps == 1 and len(joints) == 1
    joints.sample(1 * NS, 0.01, out)
    np.testing.assert_allclose(out[:2], [2.0, 2.0])
    with pytest.raises(ConfigurationError, match="required joints"):
        JointStateHistory(["a"], required=["z"])
