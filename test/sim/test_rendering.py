"""Offscreen camera images: the object is where the published intrinsics and extrinsics say."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from conftest import arm

from robot_brain.errors import ConfigurationError
from robot_brain.perception.detector import ColorTargetDetector
from robot_brain.perception.geometry import CameraModel, point_on_plane
from robot_brain.sim import build_simulation
from robot_brain.sim.rendering import OffscreenRenderer, camera_matrix


@pytest.mark.parametrize("name", ["panda", "xarm6"])
def test_object_projects_where_the_camera_model_says_and_perception_finds_it(name: str) -> None:
    sim = build_simulation(arm(name))
    scene, layout = sim.scene, sim.layout
    data = mujoco.MjData(scene.model)
    width, height = 320, 240
    k = camera_matrix(scene.model, scene.task_camera, width, height)
    with OffscreenRenderer(scene.model, width, height) as renderer:
        for seed in (1, 2):
            target = sim.simulator.reset(seed).target
            sim.simulator.copy_kinematics(data)
            image = renderer.render(data, scene.task_camera)
            assert image.shape == (height, width, 3) and image.dtype == np.uint8
            detection = ColorTargetDetector([0, 120, 70], [10, 255, 255]).detect(image, "rgb8")
            assert detection is not None
            camera = CameraModel.from_values(width, height, k.reshape(9).tolist())
            # Same plane and extrinsics the launch plan hands the perception node.
            found = point_on_plane(camera, detection.u, detection.v, layout.camera_pose,
                                   [0.0, 0.0, 1.0, layout.object_z])
            assert np.linalg.norm(found - target) < 0.5 * layout.tolerance


def test_renderer_refuses_sizes_beyond_the_offscreen_buffer_and_closes_twice() -> None:
    scene = build_simulation(arm("xarm6")).scene
    with pytest.raises(ConfigurationError, match="camera size: expected at most"):
        OffscreenRenderer(scene.model, 4000, 3000)
    renderer = OffscreenRenderer(scene.model, 64, 48)
    renderer.close()
    renderer.close()
    with pytest.raises(RuntimeError, match="closed"):
        renderer.render(mujoco.MjData(scene.model), scene.task_camera)
