"""Arm-chain, limit and gripper detection on real URDFs from pip packages."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from robots import ARMS

from robot_brain.embodiment import load_arm
from robot_brain.embodiment.description import load_description
from robot_brain.errors import DescriptionError

# name: (base, tip, dof, gripper joints, mimic joints)
EXPECTED = {
    "ur5": ("base_link", "tool0", 6, (), {}),
    "panda": (
        "panda_link0",
        "panda_hand_tcp",
        7,
        ("panda_finger_joint1", "panda_finger_joint2"),
        {"panda_finger_joint2": "panda_finger_joint1"},
    ),
    "xarm7": ("link_base", "link_eef", 7, (), {}),
    "so101": ("base_link", "gripper_frame_link", 5, ("gripper",), {}),
    "z1": ("link00", "gripperStator", 6, ("jointGripper",), {}),
    "panda_pybullet": (
        "panda_link0",
        "panda_grasptarget",
        7,
        ("panda_finger_joint1", "panda_finger_joint2"),
        {"panda_finger_joint2": "panda_finger_joint1"},
    ),
    "iiwa": ("lbr_iiwa_link_0", "lbr_iiwa_link_7", 7, (), {}),
    "xarm6": ("link_base", "link6", 6, (), {}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_chain_dof_and_gripper(name: str) -> None:
    base, tip, dof, gripper, mimic = EXPECTED[name]
    spec = load_arm(ARMS[name]).spec
    assert (spec.base_link, spec.tip_link, spec.dof) == (base, tip, dof)
    assert spec.gripper_joints == gripper
    assert spec.mimic_joints == mimic
    assert len(spec.joint_names) == len(spec.lower) == len(spec.upper) == len(spec.velocity) == len(spec.effort) == dof
    assert not set(spec.joint_names) & set(spec.gripper_joints)


def test_limits_are_read_from_the_urdf() -> None:
    spec = load_arm(ARMS["panda"]).spec
    assert spec.joint_names[3] == "panda_joint4"
    assert spec.lower[3] == pytest.approx(-3.0718) and spec.upper[3] == pytest.approx(-0.0698)
    assert spec.velocity[4] == pytest.approx(2.61) and spec.effort[0] == pytest.approx(87.0)
    assert spec.gripper_upper.tolist() == pytest.approx([0.04, 0.04])
    assert spec.warnings == ()


def test_xarm_gripper_mimic_joints_follow_the_drive_joint() -> None:
    spec = load_arm(ARMS["xarm6_gripper"]).spec
    assert spec.dof == 6 and spec.joint_names == tuple(f"joint{i}" for i in range(1, 7))
    assert "drive_joint" in spec.gripper_joints and len(spec.gripper_joints) == 6
    assert set(spec.mimic_joints.values()) == {"drive_joint"}


def test_base_and_tip_overrides_select_a_sub_chain() -> None:
    spec = load_arm(ARMS["panda"], base_link="panda_link2", tip_link="panda_link7").spec
    assert spec.joint_names == tuple(f"panda_joint{i}" for i in range(3, 8))
    assert spec.base_link == "panda_link2"


def test_two_armed_robot_needs_a_tip_and_then_works() -> None:
    from robots import BAXTER

    from robot_brain.errors import ChainError

    with pytest.raises(ChainError, match="candidate tips"):
        load_arm(BAXTER)
    spec = load_arm(BAXTER, tip_link="left_gripper").spec
    assert spec.dof == 7 and all(name.startswith("left_") for name in spec.joint_names)


MISSING_LIMITS_URDF = """<robot name="bare">
  <link name="base"/><link name="l1"/><link name="l2"/><link name="tool"/>
  <joint name="j1" type="continuous"><parent link="base"/><child link="l1"/><axis xyz="0 0 1"/></joint>
  <joint name="j2" type="revolute"><parent link="l1"/><child link="l2"/><axis xyz="0 1 0"/>
    <origin xyz="0 0 0.3"/></joint>
  <joint name="j3" type="prismatic"><parent link="l2"/><child link="tool"/><axis xyz="1 0 0"/>
    <origin xyz="0 0 0.3"/><limit lower="0" upper="0.2" effort="5" velocity="0.1"/></joint>
</robot>"""


def test_missing_limits_use_documented_defaults_and_warn() -> None:
    arm = load_arm(MISSING_LIMITS_URDF)
    spec = arm.spec
    assert spec.joint_names == ("j1", "j2", "j3")
    assert spec.continuous.tolist() == [True, False, False]
    assert math.isinf(spec.lower[0]) and math.isinf(spec.upper[0])
    assert (spec.lower[1], spec.upper[1]) == pytest.approx((-math.pi, math.pi))
    assert spec.velocity[1] == pytest.approx(1.0)
    assert any("j2" in w and "position limits" in w for w in spec.warnings)
    assert any("j1" in w and "velocity" in w for w in spec.warnings)
    # A continuous joint turns freely past 2*pi: kinematics sees one unbounded angle.
    q = np.array([7.0, 0.2, 0.1])
    pose = arm.kinematics.fk(q)
    assert np.allclose(pose, arm.kinematics.fk(q - [2 * math.pi, 0, 0]))


def test_gripper_open_is_the_limit_farther_from_zero_for_driven_joints_only() -> None:
    panda = load_arm(ARMS["panda"]).spec
    assert panda.driven_gripper_joints == ("panda_finger_joint1",)
    opened, closed = panda.gripper_open_closed()
    assert opened.tolist() == [0.04] and closed.tolist() == [0.0]
    z1 = load_arm(ARMS["z1"]).spec  # jointGripper in [-1.5707, 0]
    opened, closed = z1.gripper_open_closed()
    assert opened.tolist() == pytest.approx([-1.5707]) and closed.tolist() == [0.0]


def test_a_xacro_file_is_a_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the README and description.py say a xacro file can do, it can: read the environment and files,
    and reach every Python class loaded in the process through xacro's ``eval`` (the first step of the
    classic escape from an ``eval`` without builtins). A plain URDF with the same text is not expanded."""
    monkeypatch.setenv("ROBOT_BRAIN_XACRO_PROBE", "read-from-the-environment")
    (tmp_path / "secret.yaml").write_text("value: read-from-a-file\n", encoding="utf-8")
    every_class = "len(python.vars(python.type)['_'+'_subclasses__'](python.type(0).mro()[1]))"
    body = """<?xml version="1.0"?>
<robot xmlns:xacro="http://www.ros.org/wiki/xacro" name="probe">
  <xacro:property name="env" value="$(env ROBOT_BRAIN_XACRO_PROBE)"/>
  <xacro:property name="file" value="${xacro.load_yaml('secret.yaml')['value']}"/>
  <xacro:property name="classes" value="${EVERY_CLASS}"/>
  <link name="${env}"/><link name="${file}"/><link name="classes_${classes}"/>
</robot>
""".replace("EVERY_CLASS", every_class)
    xacro_file = tmp_path / "probe.urdf.xacro"
    xacro_file.write_text(body, encoding="utf-8")
    names = [link.get("name") for link in ET.fromstring(load_description(xacro_file).xml).iter("link")]
    assert names[:2] == ["read-from-the-environment", "read-from-a-file"]
    assert int(names[2].removeprefix("classes_")) > 100  # every loaded class, object's subclasses
    with pytest.raises(DescriptionError, match="unexpanded xacro"):  # an XML string is never expanded
        load_description(body)
