"""Simulated cells for the self-filter tests: real URDFs, the sim's own scene and camera, MuJoCo's segmentation.

The ground truth of "which pixels are the robot" is MuJoCo's segmentation rendering (geom
ids per pixel) of the same scene the sim node publishes, with the scene's own geoms
(table, floor, object) hidden so a link behind the table still counts as robot.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import mujoco
import numpy as np

from robot_brain.embodiment import Arm, load_arm
from robot_brain.embodiment.catalog import SWEEP_ARMS, bundled_arm_path, sweep_arm_path
from robot_brain.perception.geometry import CameraModel
from robot_brain.perception.robot_geometry import RobotShape, load_robot_shape
from robot_brain.perception.self_filter import SelfFilter, SelfFilterOptions
from robot_brain.sim import Simulation, build_simulation
from robot_brain.sim.rendering import camera_matrix
from robot_brain.sim.scene import GROUP_HIDDEN, GROUP_SCENE, OBJECT_BODY, SceneOptions
from robot_brain.sim.workspace import LayoutOptions

WIDTH, HEIGHT = 640, 480
#: The tolerance test/sim/test_rendering.py holds perception to: half the task's success radius.
PERCEPTION_TOLERANCE = 0.5


@cache
def arm(name: str) -> Arm:
    """A bundled arm, or one of the sweep's arms from other description packages."""
    return load_arm(sweep_arm_path(name) if name in SWEEP_ARMS else bundled_arm_path(name))


@cache
def shape(name: str, geometry: str = "visual") -> RobotShape:
    return load_robot_shape(arm(name), geometry)


def self_filter(name: str, geometry: str = "visual", **options: object) -> SelfFilter:
    """A self-filter of a bundled or sweep arm (its geometry loaded once per test session)."""
    return SelfFilter(arm(name), SelfFilterOptions(geometry=geometry, **options), shape(name, geometry))  # type: ignore[arg-type]


@dataclass
class Cell:
    """One simulated cell: the sim, its task camera as a CameraModel, and scratch MuJoCo data."""

    sim: Simulation
    camera: CameraModel
    data: mujoco.MjData

    @property
    def model(self) -> mujoco.MjModel:
        return self.sim.scene.model

    @property
    def camera_pose(self) -> np.ndarray:
        """The optical frame in the arm's base frame: what the launch plan hands perception."""
        return self.sim.layout.camera_pose

    def joint_address(self, name: str) -> int:
        joint = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name)
        assert joint >= 0, name
        return int(self.model.jnt_qposadr[joint])

    def pose(self, names: tuple[str, ...], positions: np.ndarray) -> None:
        """Put the robot at ``positions`` (by joint name) in ``data``; mimic joints follow MuJoCo's equality data."""
        self.sim.simulator.copy_kinematics(self.data)
        for name, value in zip(names, positions, strict=True):
            self.data.qpos[self.joint_address(name)] = value
        model = self.model
        for eq in range(model.neq):
            if int(model.eq_type[eq]) == int(mujoco.mjtEq.mjEQ_JOINT) and model.eq_obj2id[eq] >= 0:
                follower = model.jnt_qposadr[model.eq_obj1id[eq]]
                leader = model.jnt_qposadr[model.eq_obj2id[eq]]
                offset, multiplier = model.eq_data[eq][0], model.eq_data[eq][1]
                self.data.qpos[follower] = offset + multiplier * self.data.qpos[leader]
        mujoco.mj_kinematics(model, self.data)
        mujoco.mj_camlight(model, self.data)

    def place_object(self, target_in_base: np.ndarray) -> None:
        self.data.mocap_pos[self.sim.scene.object_mocap] = self.sim.scene.world_from_base(target_in_base)
        mujoco.mj_kinematics(self.model, self.data)

    def robot_geoms(self) -> np.ndarray:
        """Per geom id: whether it belongs to the robot (not the world, the task frame or the object)."""
        model = self.model
        scene_bodies = {0, mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "task_frame"),
                        mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, OBJECT_BODY)}
        robot = np.array([int(model.geom_bodyid[g]) not in scene_bodies for g in range(model.ngeom)])
        world_robot = (model.geom_bodyid == 0) & (model.geom_group != GROUP_SCENE)  # a root link's own geoms
        return robot | world_robot


def fresh_cell(name: str, arm_rgba: tuple[float, float, float, float] | None = None,
               layout: LayoutOptions | None = None, width: int = WIDTH, height: int = HEIGHT) -> Cell:
    """A new cell (its simulator may be stepped); its camera model is the task camera at ``width x height``."""
    sim = build_simulation(arm(name), layout, SceneOptions(arm_rgba=arm_rgba, camera_width=width, camera_height=height))
    k = camera_matrix(sim.scene.model, sim.scene.task_camera, width, height)
    camera = CameraModel.from_values(width, height, k.reshape(9).tolist())
    return Cell(sim=sim, camera=camera, data=mujoco.MjData(sim.scene.model))


#: A shared cell per arguments, for tests that only pose the robot in ``Cell.data`` (never step its simulator).
cell = cache(fresh_cell)


class Segmenter:
    """MuJoCo's segmentation rendering of the task camera: which pixels are robot, which the object."""

    def __init__(self, cell: Cell) -> None:
        self.cell = cell
        self.renderer = mujoco.Renderer(cell.model, cell.camera.height, cell.camera.width)
        self.renderer.enable_segmentation_rendering()
        self._robot_geoms = cell.robot_geoms()
        self._object_geom = mujoco.mj_name2id(cell.model, mujoco.mjtObj.mjOBJ_GEOM, "task_object_geom")

    def _ids(self, hide_scene: bool) -> np.ndarray:
        option = mujoco.MjvOption()
        option.geomgroup[GROUP_HIDDEN] = 0
        if hide_scene:
            option.geomgroup[GROUP_SCENE] = 0
        self.renderer.update_scene(self.cell.data, camera=self.cell.sim.scene.task_camera, scene_option=option)
        segmentation = self.renderer.render()
        ids = segmentation[..., 0]
        is_geom = (segmentation[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)) & (ids >= 0)
        return np.where(is_geom, ids, -1)

    def robot(self) -> np.ndarray:
        """Pixels the robot covers, whatever stands in front of it (scene geoms hidden)."""
        ids = self._ids(hide_scene=True)
        return (ids >= 0) & self._robot_geoms[np.clip(ids, 0, None)]

    def visible_object(self) -> np.ndarray:
        """Pixels where the camera really sees the object (the robot may hide part of it)."""
        return self._ids(hide_scene=False) == self._object_geom

    def close(self) -> None:
        self.renderer.close()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0
