"""`robot-brain inspect`: readable and JSON output on real arms; exit 2 and one line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from robots import ARMS, BAXTER

JSON_KEYS = {
    "name",
    "base_link",
    "tip_link",
    "dof",
    "joints",
    "lower",
    "upper",
    "velocity",
    "effort",
    "gripper_joints",
    "mimic_joints",
    "warnings",
}


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "robot_brain.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("name", ["ur5", "panda", "xarm7", "so101", "iiwa", "xarm6", "panda_pybullet", "z1", "kinova"])
def test_inspect_json_has_exactly_the_documented_keys(name: str) -> None:
    result = run_cli("inspect", ARMS[name], "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) == JSON_KEYS
    assert summary["dof"] == len(summary["joints"]) == len(summary["lower"]) == len(summary["effort"])


def test_inspect_prints_a_readable_table() -> None:
    result = run_cli("inspect", ARMS["panda"])
    assert result.returncode == 0
    assert "panda_link0 -> panda_hand_tcp (7 joints)" in result.stdout
    assert "panda_finger_joint2 follows panda_finger_joint1" in result.stdout


def test_inspect_with_base_and_tip() -> None:
    result = run_cli("inspect", BAXTER, "--base", "torso", "--tip", "right_gripper", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tip_link"] == "right_gripper"


XACRO = """<?xml version="1.0"?>
<robot name="desk_arm" xmlns:xacro="http://www.ros.org/wiki/xacro">
  <xacro:arg name="prefix" default=""/>
  <xacro:property name="length" value="0.12"/>
  <xacro:macro name="segment" params="name parent axis">
    <link name="$(arg prefix)${name}"/>
    <joint name="$(arg prefix)${name}_joint" type="revolute">
      <parent link="$(arg prefix)${parent}"/><child link="$(arg prefix)${name}"/>
      <origin xyz="0 0 ${length}"/><axis xyz="${axis}"/>
      <limit lower="-2" upper="2" effort="3" velocity="4"/>
    </joint>
  </xacro:macro>
  <link name="$(arg prefix)base"/>
  <xacro:segment name="l1" parent="base" axis="0 0 1"/>
  <xacro:segment name="l2" parent="l1" axis="0 1 0"/>
  <xacro:segment name="l3" parent="l2" axis="0 1 0"/>
  <xacro:segment name="l4" parent="l3" axis="0 1 0"/>
</robot>
"""


def test_inspect_xacro_with_arguments(tmp_path: Path) -> None:
    path = tmp_path / "desk_arm.urdf.xacro"
    path.write_text(XACRO)
    result = run_cli("inspect", path, "--xacro-arg", "prefix:=left_", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["dof"] == 4 and summary["joints"][0] == "left_l1_joint" and summary["tip_link"] == "left_l4"


BAD_INPUTS = {
    "missing_file": (None, "no such file"),
    "malformed_xml": ("<robot name='x'><link name='a'></robot>", "malformed XML at line 1"),
    "not_a_robot": ("<sdf version='1.6'/>", "expected a <robot> root element"),
    "no_movable_joint": (
        "<robot name='statue'><link name='a'/><link name='b'/>"
        "<joint name='j' type='fixed'><parent link='a'/><child link='b'/></joint></robot>",
        "has no movable joint",
    ),
    "xacro_error": (
        "XACRO:<robot xmlns:xacro='http://www.ros.org/wiki/xacro' name='x'>${undefined_thing}</robot>",
        "xacro error",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(case: str, tmp_path: Path) -> None:
    content, expected = BAD_INPUTS[case]
    if content is None:
        path = tmp_path / "nowhere.urdf"
    elif content.startswith("XACRO:"):
        path = tmp_path / "broken.xacro"
        path.write_text(content.removeprefix("XACRO:"))
    else:
        path = tmp_path / f"{case}.urdf"
        path.write_text(content)
    result = run_cli("inspect", path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_ambiguous_tree_lists_candidate_tips() -> None:
    result = run_cli("inspect", BAXTER)
    assert result.returncode == 2
    assert "candidate tips" in result.stderr and "left_" in result.stderr and "right_" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_link_is_named() -> None:
    result = run_cli("inspect", ARMS["ur5"], "--tip", "gripper_tcp")
    assert result.returncode == 2
    assert "unknown tip_link 'gripper_tcp'" in result.stderr
