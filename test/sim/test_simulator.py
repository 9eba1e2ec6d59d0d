"""Stepping under ros2_control-style commands, episodes, and the real-time lock (no ROS)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import arm

from robot_brain.errors import ConfigurationError
from robot_brain.sim import RealTimeLock, StateStamps, build_simulation


@pytest.fixture(scope="module")
def ur5():
    return build_simulation(arm("ur5"))


def test_position_command_moves_the_arm_and_is_clipped_to_limits(ur5) -> None:
    sim = ur5.simulator
    sim.reset(0)
    names = ur5.arm.spec.joint_names
    target = ur5.layout.home + 0.2
    sim.command_positions(sim.joint_indices(names), target)
    sim.step(1000)
    np.testing.assert_allclose(sim.joint_state().position[:6], target, atol=5e-3)
    with pytest.raises(ConfigurationError, match="expected 6 finite positions"):
        sim.command_positions(sim.joint_indices(names), [0.0] * 5)
    with pytest.raises(ConfigurationError, match="unknown joint"):
        sim.joint_indices(["not_a_joint"])


def test_trajectory_is_followed_in_time_and_reaches_the_last_point(ur5) -> None:
    sim = ur5.simulator
    sim.reset(0)
    names = ur5.arm.spec.joint_names[:2]  # joints it does not name hold their targets
    start = ur5.layout.home[:2]
    sim.command_trajectory(names, [1.0, 2.0], [start + 0.1, start + 0.3])
    sim.step(250)  # 0.5 s: about halfway to the first point
    halfway = sim.joint_state().position[:2]
    assert np.all(halfway > start + 0.02) and np.all(halfway < start + 0.09)
    sim.step(1000)
    final = sim.joint_state().position
    np.testing.assert_allclose(final[:2], start + 0.3, atol=5e-3)
    np.testing.assert_allclose(final[2:6], ur5.layout.home[2:], atol=2e-3)
    with pytest.raises(ConfigurationError, match="increasing time_from_start"):
        sim.command_trajectory(names, [1.0, 0.5], [start, start])


def test_reaching_the_object_succeeds_and_reset_restores_home(ur5) -> None:
    sim = ur5.simulator
    state = sim.reset(5)
    goal = ur5.layout.home_tool_pose.copy()
    goal[:3, 3] = state.target
    solution = ur5.arm.kinematics.ik(goal, ur5.layout.home)
    sim.command_trajectory(ur5.arm.spec.joint_names, [1.5], [solution.q])
    for _ in range(100):
        sim.step(10)
        if sim.result().done:
            break
    result = sim.result()
    assert result.success and 1.0 < result.time_to_success < 2.5
    again = sim.reset(5)
    assert again.episode == result.episode + 1 and not again.done
    np.testing.assert_array_equal(again.target, state.target)
    np.testing.assert_allclose(sim.joint_state().position[:6], ur5.layout.home)


def test_real_time_lock_paces_sim_time_to_the_wall_clock() -> None:
    lock = RealTimeLock(timestep=0.002, factor=1.0)
    sim_time = 0.0
    lock.restart(sim_time)
    started = time.perf_counter()
    while time.perf_counter() - started < 0.5:
        sim_time += lock.steps_due(sim_time, 2) * 0.002
        lock.record(sim_time)
        time.sleep(0.004)
    assert lock.measured == pytest.approx(1.0, abs=0.1)
    assert sim_time == pytest.approx(time.perf_counter() - started, abs=0.03)
    assert RealTimeLock(0.002, factor=0.0).steps_due(0.0, 5) == 5  # as fast as possible
    with pytest.raises(ConfigurationError, match="real_time_factor"):
        RealTimeLock(0.002, factor=-1.0)


def test_a_frame_of_a_state_gets_the_stamp_its_joint_state_carries() -> None:
    stamps = StateStamps(timestep=0.002)
    second = 1_000_000_000
    # A catch-up after a stall: states 0.004 s of sim time apart published 1 ms apart, ending now.
    for k, sim_time in enumerate((0.004, 0.008, 0.012)):
        stamps.record(sim_time, 10 * second + k * 1_000_000)
    now = 10 * second + 2_000_000
    assert stamps.stamp_ns(0.008 + 1e-12, now, 1.0) == 10 * second + 1_000_000  # exactly its state's stamp
    assert stamps.stamp_ns(0.012, now, 1.0) == now
    # A state not recorded (stepped unpublished) is placed from the newest recorded one before it.
    assert stamps.stamp_ns(0.010, now, 1.0) == now  # 0.008's stamp + 2 ms is after now: never in the future
    assert stamps.stamp_ns(0.010, 20 * second, 1.0) == 10 * second + 3_000_000
    assert stamps.stamp_ns(0.010, 20 * second, 2.0) == 10 * second + 2_000_000  # twice real time: half the wall time
    assert stamps.stamp_ns(0.010, 20 * second, 0.0) == 20 * second  # as fast as possible: no wall-clock relation
    assert stamps.stamp_ns(0.002, 20 * second, 1.0) == 20 * second  # before every record: now
    # Time going back (an episode reset) forgets the old episode's stamps.
    stamps.record(0.004, 30 * second)
    assert stamps.stamp_ns(0.008, 40 * second, 1.0) == 30 * second + 4_000_000
    stamps.clear()
    assert stamps.stamp_ns(0.004, 40 * second, 1.0) == 40 * second
