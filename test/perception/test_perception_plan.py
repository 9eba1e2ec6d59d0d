"""What the launch plan hands perception for its self-filter: description, base frame, object size, geometry."""

from __future__ import annotations

import pytest

from robot_brain.bringup.plan import brain_plan, sim_plan
from robot_brain.bringup.robots import resolve_robot


def test_a_real_cell_gets_the_description_and_the_base_frame_and_keeps_visual_geometry() -> None:
    plan = brain_plan(resolve_robot("xarm6"), camera_pose=[0.5, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    perception = plan.node("perception").parameters
    assert perception["urdf_path"] == str(resolve_robot("xarm6").urdf)
    assert perception["target_frame"] == plan.arm.spec.base_link  # type: ignore[union-attr]
    assert "self_filter_geometry" not in perception and "object_size" not in perception  # the node's defaults


@pytest.mark.parametrize(("robot", "geometry"), [("panda", "both"), ("ur5", "both"), ("xarm6", "visual")])
def test_the_sim_plan_masks_what_the_sim_draws_and_sizes_the_object(robot: str, geometry: str) -> None:
    # example-robot-data's Panda and UR5 have COLLADA visuals the sim cannot decode: it draws their collision meshes.
    plan = sim_plan(resolve_robot(robot))
    perception = plan.node("perception").parameters
    assert plan.layout is not None
    assert perception["self_filter_geometry"] == geometry
    assert perception["object_size"] == pytest.approx(plan.layout.object_size)  # metres, the sim's own cube


def test_a_preset_or_an_override_beats_what_the_sim_plan_derives() -> None:
    plan = sim_plan(resolve_robot("panda"), overrides={"perception": {"self_filter_geometry": "collision",
                                                                      "object_size": 0}})
    perception = plan.node("perception").parameters
    assert perception["self_filter_geometry"] == "collision"
    assert perception["object_size"] == 0.0 and isinstance(perception["object_size"], float)  # typed as declared
