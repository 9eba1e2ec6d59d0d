"""The MuJoCo scene built from real URDFs: actuators, frames, gains, environment, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import mujoco
import numpy as np
import pytest
from conftest import arm

from robot_brain.embodiment import load_arm
from robot_brain.errors import DescriptionError
from robot_brain.sim import build_simulation
from robot_brain.sim.scene import build_scene
from robot_brain.sim.workspace import compute_layout


@pytest.mark.parametrize("name", ["panda", "ur5", "iiwa"])
def test_scene_matches_the_brains_kinematics_and_holds_still(name: str) -> None:
    sim = build_simulation(arm(name))
    scene, layout = sim.scene, sim.layout
    assert scene.model.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert scene.model.nu == scene.arm.spec.dof + len(scene.gripper_joints)
    assert scene.state_joints[: scene.arm.spec.dof] == scene.arm.spec.joint_names
    # MuJoCo's tool site and Pinocchio's FK agree at home: the sim and the brain share one URDF.
    np.testing.assert_allclose(sim.simulator.tool_position(), layout.home_tool_pose[:3, 3], atol=1e-6)
    start = sim.simulator.joint_state().position[: scene.arm.spec.dof]
    sim.simulator.step(500)  # 1 s with no command: drives and gravity compensation hold the pose
    held = sim.simulator.joint_state().position[: scene.arm.spec.dof]
    assert np.max(np.abs(held - start)) < 1e-3


def test_panda_gripper_is_driven_and_its_mimic_follows() -> None:
    sim = build_simulation(arm("panda"))
    assert sim.scene.gripper_joints == ("panda_finger_joint1",)
    assert "panda_finger_joint2" in sim.scene.state_joints
    sim.simulator.command_gripper([0.03])
    sim.simulator.step(500)
    state = dict(zip(sim.scene.state_joints, sim.simulator.joint_state().position, strict=True))
    assert state["panda_finger_joint1"] == pytest.approx(0.03, abs=2e-3)
    assert state["panda_finger_joint2"] == pytest.approx(0.03, abs=2e-3)


def test_undecodable_visual_meshes_fall_back_to_collision_geometry() -> None:
    sim = build_simulation(arm("panda"))  # example-robot-data's Panda ships COLLADA visuals
    assert any("panda_link3" in w and "link3.dae" in w for w in sim.scene.warnings)
    model = sim.scene.model
    link3 = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "panda_link3")
    groups = {int(model.geom_group[g]) for g in range(model.ngeom) if model.geom_bodyid[g] == link3}
    assert groups == {0}  # its collision mesh is the one shown


def test_gains_scale_with_the_arm() -> None:
    small, large = build_simulation(arm("so101")).scene, build_simulation(arm("ur5")).scene
    assert small.gains["shoulder_pan"][0] * 20 < large.gains["shoulder_pan_joint"][0]


def _copy_robot(tmp_path: Path, name: str) -> Path:
    """A writable copy of a pybullet arm (URDF + meshes) to break on purpose."""
    source = arm(name).description.base_dir
    assert source is not None
    target = tmp_path / "robot"
    shutil.copytree(source, target)
    return target / Path(arm(name).description.source).name


def test_missing_mesh_names_the_file_and_the_link(tmp_path: Path) -> None:
    urdf = _copy_robot(tmp_path, "iiwa")
    (urdf.parent / "meshes" / "link_3.stl").unlink()
    broken = load_arm(urdf)
    with pytest.raises(DescriptionError, match=r"lbr_iiwa_link_3.*collision mesh.*link_3\.stl.*not found"):
        build_scene(broken, compute_layout(broken))


def test_corrupt_collision_mesh_names_the_file_and_the_link(tmp_path: Path) -> None:
    urdf = _copy_robot(tmp_path, "iiwa")
    (urdf.parent / "meshes" / "link_5.stl").write_bytes(b"solid nothing\nendsolid\n")
    broken = load_arm(urdf)
    with pytest.raises(DescriptionError, match=r"model\.urdf: MuJoCo cannot compile.*link_5\.stl.*lbr_iiwa_link_5"):
        build_scene(broken, compute_layout(broken))


def test_corrupt_visual_mesh_falls_back_with_a_warning(tmp_path: Path) -> None:
    urdf = _copy_robot(tmp_path, "iiwa")
    (urdf.parent / "meshes" / "link_2.obj").write_text("this is not a mesh\n")
    broken = load_arm(urdf)
    scene = build_scene(broken, compute_layout(broken))
    assert any("lbr_iiwa_link_2" in w and "link_2.obj" in w for w in scene.warnings)


def test_collada_collision_mesh_is_an_error_naming_the_link(tmp_path: Path) -> None:
    urdf = _copy_robot(tmp_path, "iiwa")
    text = urdf.read_text().replace('filename="meshes/link_4.stl"', 'filename="meshes/link_4.dae"')
    (urdf.parent / "meshes" / "link_4.dae").write_text("<COLLADA/>")
    urdf.write_text(text)
    broken = load_arm(urdf)
    with pytest.raises(DescriptionError, match=r"lbr_iiwa_link_4.*collision mesh.*cannot be decoded"):
        build_scene(broken, compute_layout(broken))
