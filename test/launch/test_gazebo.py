"""The robot description ``gazebo.launch.py`` sends to gz sim and gz_ros2_control, checked as data.

Gazebo does not install here; these are the properties gz and ros2_control need from the
string they receive: a fixed base, no other simulator's plugins, meshes that resolve
without the URDF's folder, and a ``<ros2_control>`` block the Jazzy/Kilted component parser
accepts (mimic joints without command interfaces, their leader in the same block).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from robot_brain.bringup.gazebo import gazebo_plan
from robot_brain.bringup.robots import resolve_robot
from robot_brain.embodiment import load_arm
from robot_brain.embodiment.arm import UrdfTree
from robot_brain.embodiment.description import load_description

PRESETS = ["panda", "ur5", "xarm7", "iiwa", "xarm6", "so101"]


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return {name: gazebo_plan(resolve_robot(name), tmp_path_factory.mktemp(name)) for name in PRESETS}


@pytest.mark.parametrize("name", PRESETS)
def test_every_arm_is_fixed_to_the_world(name: str, plans: dict) -> None:
    plan = plans[name]
    root = ET.fromstring(plan.robot_description)
    tree = UrdfTree.from_element(root, name)
    assert tree.root == "world"
    (joint,) = (tree.joints[j] for j in tree.child_joints["world"])
    assert joint.type == "fixed"
    # The arm is unchanged below: the same chain is found in the generated description.
    assert load_arm(plan.robot_description).spec.joint_names == plan.brain.arm.spec.joint_names


def test_arms_without_a_world_link_get_one_and_the_others_keep_theirs(plans: dict) -> None:
    assert {name for name in PRESETS if plans[name].brain.arm.tree.root != "world"} == {"panda", "iiwa", "so101"}
    panda = ET.fromstring(plans["panda"].robot_description)
    joint = next(j for j in panda.findall("joint") if j.find("parent").get("link") == "world")
    assert (joint.get("name"), joint.get("type"), joint.find("child").get("link")) == (
        "world_to_panda_link0", "fixed", "panda_link0")
    ur5 = ET.fromstring(plans["ur5"].robot_description)
    assert [link.get("name") for link in ur5.findall("link")].count("world") == 1


@pytest.mark.parametrize("name", ["ur5", "xarm6", "xarm7", "so101"])
def test_other_simulators_plugins_and_transmissions_are_gone(name: str, plans: dict) -> None:
    source = ET.fromstring(load_description(resolve_robot(name).urdf).xml)
    assert source.findall("transmission") or any(g.iter("plugin") for g in source.findall("gazebo"))
    root = ET.fromstring(plans[name].robot_description)
    assert root.findall("transmission") == []
    plugins = [p.get("filename") for g in root.findall("gazebo") for p in g.iter("plugin")]
    assert plugins == ["gz_ros2_control-system"]
    assert len(root.findall("ros2_control")) == 1  # xarm7 ships its own block: replaced, not doubled
    # Per-link properties gz also reads (self-collision) are kept.
    kept = [g for g in source.findall("gazebo") if g.get("reference")]
    assert len([g for g in root.findall("gazebo") if g.get("reference")]) == len(kept)


@pytest.mark.parametrize("name", PRESETS)
def test_meshes_are_absolute_file_uris_of_existing_files(name: str, plans: dict) -> None:
    plan = plans[name]
    uris = [m.get("filename") for m in ET.fromstring(plan.robot_description).iter("mesh")]
    assert uris and plan.notes == ()
    for uri in uris:
        parsed = urlparse(uri)
        assert parsed.scheme == "file" and Path(unquote(parsed.path)).is_absolute(), uri
        assert Path(unquote(parsed.path)).is_file(), uri


def test_relative_and_package_meshes_become_file_uris(plans: dict) -> None:
    # iiwa (pybullet_data) has paths relative to its URDF; panda has package://example-robot-data/...
    for name, pattern in (("iiwa", "meshes/"), ("panda", "package://example-robot-data/")):
        source = [m.get("filename") for m in ET.fromstring(load_description(resolve_robot(name).urdf).xml).iter("mesh")]
        assert all(uri.startswith(pattern) for uri in source)
        generated = [m.get("filename") for m in ET.fromstring(plans[name].robot_description).iter("mesh")]
        assert len(generated) == len(source)
        assert all(Path(unquote(urlparse(uri).path)).name == Path(old).name
                   for uri, old in zip(generated, source, strict=True))


def test_an_unresolvable_mesh_is_kept_and_noted(tmp_path: Path) -> None:
    source = resolve_robot("iiwa").urdf
    text = source.read_text(encoding="utf-8").replace('"meshes/', f'"{source.parent}/meshes/')
    urdf = tmp_path / "iiwa_missing_mesh.urdf"
    urdf.write_text(text.replace("link_3.obj", "gone.obj"), encoding="utf-8")
    plan = gazebo_plan(resolve_robot(urdf=urdf), tmp_path / "gz")
    assert plan.notes == (f"mesh '{source.parent}/meshes/gone.obj' not found: Gazebo shows that link without it",)


def test_panda_ros2_control_block_follows_the_mimic_rules(plans: dict) -> None:
    root = ET.fromstring(plans["panda"].robot_description)
    (control,) = root.findall("ros2_control")
    assert control.find("hardware/plugin").text == "gz_ros2_control/GazeboSimSystem"
    joints = {j.get("name"): j for j in control.findall("joint")}
    assert list(joints) == [*(f"panda_joint{i}" for i in range(1, 8)), "panda_finger_joint1", "panda_finger_joint2"]
    mimic = joints["panda_finger_joint2"]
    # ros2_control's component parser: a joint with a URDF <mimic> must have no command interface
    # (unless mimic="false"), and the joint it mimics must be in the same block.
    assert mimic.findall("command_interface") == [] and mimic.get("mimic") is None
    assert [s.get("name") for s in mimic.findall("state_interface")] == ["position", "velocity"]
    urdf_joint = next(j for j in root.findall("joint") if j.get("name") == "panda_finger_joint2")
    assert urdf_joint.find("mimic").get("joint") == "panda_finger_joint1"
    leader = joints["panda_finger_joint1"]
    assert [c.get("name") for c in leader.findall("command_interface")] == ["position"]
    limits = {p.get("name"): float(p.text) for p in leader.find("command_interface").findall("param")}
    assert limits == {"min": 0.0, "max": pytest.approx(0.04)}
    # Only the leader is commanded by the gripper controller.
    assert plans["panda"].controllers == ("joint_state_broadcaster", "forward_position_controller",
                                          "gripper_controller")
