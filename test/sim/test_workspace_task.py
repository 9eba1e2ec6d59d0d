"""The layout and the reach task are derived from each arm's own workspace and are seeded."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import arm

from robot_brain.errors import ConfigurationError
from robot_brain.sim import LayoutOptions, ReachTask, compute_layout


def test_a_desktop_arm_and_an_industrial_arm_each_get_a_task_their_size() -> None:
    small, large = compute_layout(arm("so101")), compute_layout(arm("ur5"))
    assert small.reach < 0.6 * large.reach
    for layout in (small, large):
        inner, outer = layout.region_radius
        assert 0.3 * layout.reach < inner < outer < 0.8 * layout.reach
        assert layout.object_z == pytest.approx(0.5 * layout.object_size)
        assert 0.02 <= layout.tolerance <= 0.1
    assert small.object_size < large.object_size


@pytest.mark.parametrize("name", ["panda", "xarm6"])
def test_home_points_the_tool_down_above_the_task_region(name: str) -> None:
    layout = compute_layout(arm(name))
    tool = layout.home_tool_pose
    assert tool[2, 2] == pytest.approx(-1.0, abs=1e-2)  # tool z axis down
    np.testing.assert_allclose(tool[:2, 3], layout.region_center[:2], atol=2e-3)


def test_layout_is_deterministic_so_launch_plan_and_sim_agree() -> None:
    first, second = compute_layout(arm("panda")), compute_layout(arm("panda"))
    np.testing.assert_array_equal(first.camera_pose, second.camera_pose)
    np.testing.assert_array_equal(first.home, second.home)


def test_camera_looks_at_the_task_region() -> None:
    layout = compute_layout(arm("panda"))
    camera = layout.camera_pose
    to_region = layout.region_center - camera[:3, 3]
    assert np.dot(camera[:3, 2], to_region / np.linalg.norm(to_region)) > 0.999
    assert camera[2, 3] > 0.3  # above the table


def test_seeded_placements_are_repeatable_reachable_and_on_the_table() -> None:
    panda = arm("panda")
    layout = compute_layout(panda)
    task = ReachTask(panda, layout)
    points = [task.place_object(seed) for seed in range(8)]
    np.testing.assert_array_equal(points[3], task.place_object(3))
    assert len({tuple(p) for p in points}) == 8
    inner, outer = layout.region_radius
    for point in points:
        assert inner - 1e-9 <= np.hypot(point[0], point[1]) <= outer + 1e-9
        assert abs(np.arctan2(point[1], point[0])) <= layout.region_yaw + 1e-9
        target = layout.home_tool_pose.copy()
        target[:3, 3] = point
        assert panda.kinematics.ik(target, layout.home).success


def test_success_and_timeout() -> None:
    panda = arm("panda")
    layout = compute_layout(panda)
    task = ReachTask(panda, layout, time_limit=2.0)
    state = task.start(seed=1, now=10.0)
    state = task.update(state, 10.5, state.target + np.array([0.0, 0.0, 0.2]))
    assert not state.done and state.final_distance == pytest.approx(0.2)
    state = task.update(state, 11.0, state.target + np.array([0.0, 0.0, 0.5 * layout.tolerance]))
    assert state.done and state.success and state.time_to_success == pytest.approx(1.0)
    assert task.update(state, 20.0, state.target + 1.0) is state  # frozen once done
    missed = task.start(seed=2, now=0.0)
    missed = task.update(missed, 2.5, missed.target + np.array([0.0, 0.0, 0.3]))
    assert missed.done and not missed.success and "timeout" in missed.message
    assert missed.episode == state.episode + 1


def test_bad_layout_options_say_what_was_expected() -> None:
    with pytest.raises(ConfigurationError, match="region_radius: expected 0 < inner < outer <= 1"):
        LayoutOptions(region_radius=(0.8, 0.4))
    with pytest.raises(ConfigurationError, match=r"home: expected 7 joint positions"):
        compute_layout(arm("panda"), LayoutOptions(home=(0.0, 0.0)))
