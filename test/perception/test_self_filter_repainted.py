"""Arms painted like the object: the plain colour detector reaches for the arm, the self-filtered one finds the object.

Each bundled arm is re-painted in the sim (``SceneOptions.arm_rgba``) in the object's red
and in near colours, and posed by IK with its tool beside the object (a few object sizes to
the side in the image, just above the table), so red links fill the view next to it. The
frames are the sim's own camera images at its default 320x240. Success is the tolerance
``test/sim/test_rendering.py`` holds perception to: half the task's success radius.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from self_filter_cells import PERCEPTION_TOLERANCE, Cell, Segmenter, fresh_cell, self_filter

from robot_brain.embodiment import IKOptions
from robot_brain.errors import ConfigurationError
from robot_brain.perception.detector import ApparentSize, ColorTargetDetector
from robot_brain.perception.geometry import point_on_plane
from robot_brain.sim import SceneOptions
from robot_brain.sim.rendering import OffscreenRenderer

WIDTH, HEIGHT = 320, 240
RED_HSV = ([0, 120, 70], [10, 255, 255])  # perception's default: the object's red
#: name -> (arm colour, HSV range of a detector loose enough to accept that colour as well as the object's red).
PAINTS = {
    "red": ((0.9, 0.1, 0.1, 1.0), RED_HSV),
    "dark red": ((0.5, 0.05, 0.05, 1.0), RED_HSV),
    "orange": ((1.0, 0.4, 0.0, 1.0), ([170, 120, 70], [20, 255, 255])),
    "yellow": ((0.95, 0.8, 0.1, 1.0), ([170, 120, 70], [35, 255, 255])),
}
SEEDS = (1, 2)


def error_in_tolerances(sim_cell: Cell, detection: object, target: np.ndarray) -> float:
    """Distance from the object of the detection's point on the plane, in task tolerances (inf: nothing found)."""
    if detection is None:
        return float("inf")
    layout = sim_cell.sim.layout
    point = point_on_plane(sim_cell.camera, detection.u, detection.v, sim_cell.camera_pose,  # type: ignore[attr-defined]
                           [0.0, 0.0, 1.0, layout.object_z])
    return float("inf") if point is None else float(np.linalg.norm(point - target) / layout.tolerance)


def beside_the_object(sim_cell: Cell, target: np.ndarray, segmenter: Segmenter, names: tuple[str, ...]) -> np.ndarray:
    """An IK pose with the tool beside the object (to its left or right in the image) that leaves it in view."""
    layout, arm = sim_cell.sim.layout, sim_cell.sim.arm
    view = sim_cell.camera_pose[:3, 2].copy()
    view[2] = 0.0
    sideways = np.cross([0.0, 0.0, 1.0], view / np.linalg.norm(view))
    sim_cell.pose(names, np.concatenate([layout.home, np.zeros(len(names) - arm.spec.dof)]))
    sim_cell.place_object(target)
    in_full_view = np.count_nonzero(segmenter.visible_object())
    for lateral in (2.5, -2.5, 3.5, -3.5):
        goal = layout.home_tool_pose.copy()
        goal[:3, 3] = target + (lateral * sideways + [0.0, 0.0, 1.5]) * layout.object_size
        result = arm.kinematics.ik(goal, layout.home, IKOptions(restarts=5), np.random.default_rng(0))
        if not result.success:
            continue
        q = np.concatenate([result.q, np.zeros(len(names) - arm.spec.dof)])
        sim_cell.pose(names, q)
        sim_cell.place_object(target)
        if np.count_nonzero(segmenter.visible_object()) >= 0.9 * in_full_view:
            return q
    raise AssertionError(f"no pose beside the object at {target} leaves it in view")


@pytest.mark.parametrize("paint", list(PAINTS))
@pytest.mark.parametrize("name", ["panda", "ur5", "xarm7", "so101"])
def test_self_filter_finds_the_object_next_to_an_arm_of_its_colour(name: str, paint: str) -> None:
    rgba, (hsv_lower, hsv_upper) = PAINTS[paint]
    sim_cell = fresh_cell(name, rgba, width=WIDTH, height=HEIGHT)
    layout = sim_cell.sim.layout
    # The sim shows collision meshes where it cannot decode a COLLADA visual: "both" masks whichever it shows.
    filt = self_filter(name, "both")
    plain = ColorTargetDetector(hsv_lower, hsv_upper)
    size = ApparentSize(layout.object_size, sim_cell.camera_pose, [0.0, 0.0, 1.0, layout.object_z])
    checked = ColorTargetDetector(hsv_lower, hsv_upper, size_check=size)
    segmenter = Segmenter(sim_cell)
    try:
        with OffscreenRenderer(sim_cell.model, WIDTH, HEIGHT) as renderer:
            for seed in SEEDS:
                target = sim_cell.sim.simulator.reset(seed).target
                q = beside_the_object(sim_cell, target, segmenter, filt.joint_names)
                image = renderer.render(sim_cell.data, sim_cell.sim.scene.task_camera)
                mask = filt.render(q, sim_cell.camera, sim_cell.camera_pose)
                fooled = error_in_tolerances(sim_cell, plain.detect(image, "rgb8"), target)
                found = error_in_tolerances(
                    sim_cell, checked.detect(image, "rgb8", ignore=mask, camera=sim_cell.camera), target
                )
                print(f"{name} painted {paint}, seed {seed}: plain detector off by {fooled:.2f} tolerances, "
                      f"self-filter + size check off by {found:.2f}")
                assert fooled > PERCEPTION_TOLERANCE, "the plain detector must be fooled for the test to mean something"
                assert found < PERCEPTION_TOLERANCE
    finally:
        segmenter.close()


def test_size_check_alone_never_reaches_for_the_arm() -> None:
    """Joint states stale, nothing masked: the arm's blobs are far too large for the object, so they are rejected."""
    sim_cell = fresh_cell("xarm7", PAINTS["red"][0], width=WIDTH, height=HEIGHT)
    layout = sim_cell.sim.layout
    filt = self_filter("xarm7", "both")
    size = ApparentSize(layout.object_size, sim_cell.camera_pose, [0.0, 0.0, 1.0, layout.object_z])
    checked = ColorTargetDetector(*RED_HSV, size_check=size)
    segmenter = Segmenter(sim_cell)
    try:
        with OffscreenRenderer(sim_cell.model, WIDTH, HEIGHT) as renderer:
            for seed in SEEDS:
                target = sim_cell.sim.simulator.reset(seed).target
                beside_the_object(sim_cell, target, segmenter, filt.joint_names)
                image = renderer.render(sim_cell.data, sim_cell.sim.scene.task_camera)
                detection = checked.detect(image, "rgb8", camera=sim_cell.camera)
                assert checked.last_rejected_by_size >= 1  # the arm's blob
                assert error_in_tolerances(sim_cell, detection, target) < PERCEPTION_TOLERANCE
    finally:
        segmenter.close()


def test_arm_colour_paints_every_robot_geom_and_nothing_else() -> None:
    sim_cell = fresh_cell("panda", (1.0, 0.4, 0.0, 1.0), width=WIDTH, height=HEIGHT)
    model = sim_cell.model
    robot = sim_cell.robot_geoms()
    np.testing.assert_allclose(model.geom_rgba[robot], np.tile([1.0, 0.4, 0.0, 1.0], (int(robot.sum()), 1)))
    assert np.all(model.geom_matid[robot] == -1)
    obj = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "task_object_geom")
    np.testing.assert_allclose(model.geom_rgba[obj], SceneOptions().object_rgba)
    with pytest.raises(ConfigurationError, match=r"arm colour: expected \[r g b a\] in 0-1"):
        SceneOptions(arm_rgba=(1.0, 0.0, 0.0))  # type: ignore[arg-type]
