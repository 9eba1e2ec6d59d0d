"""The sweep arms (issue 17): every one loads, passes ``inspect`` and compiles in the simulator,
its chain and limits are what the URDF says, and the descriptions to refuse are refused.

The oracle is this file's own reading of each description with ElementTree (a xacro file is
expanded with the ``xacro`` library directly): the joints on the path from the root to the
tool link, their ``<limit>`` attributes, and the maker's joint count. It shares no code with
the loader. Where a URDF leaves a limit out, the loader's documented default and a warning
naming the joint are expected.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import xacro

from robot_brain.cli.main import main as cli_main
from robot_brain.embodiment import Arm, load_arm
from robot_brain.embodiment.catalog import (
    DEVELOPMENT_ARMS,
    HELD_OUT_ARMS,
    REFUSED_ARMS,
    SWEEP_ARMS,
    SWEEP_SPLIT_SEED,
    sweep_arm_path,
)
from robot_brain.errors import DescriptionError
from robot_brain.sim import LayoutOptions, Scene, build_scene, compute_layout

#: Actuated arm joints per the makers' data sheets (gripper excluded): an expectation that does
#: not come from the files at all. The Talos description starts below the arm's first joint.
MAKER_DOF = {
    "abb_irb140": 6, "fr3": 7, "kuka_kr120": 6, "kuka_kr16": 6, "kuka_kr210": 6, "kuka_lbr_iiwa14": 7,
    "lynxmotion_al5d": 4, "puma560": 6, "talos_left_arm": 6, "trossen_px100": 4, "trossen_px150": 5,
    "trossen_rx150": 5, "trossen_rx200": 5, "trossen_vx250": 5, "trossen_vx300": 5, "trossen_vx300s": 6,
    "trossen_wx200": 5, "trossen_wx250": 5, "trossen_wx250s": 6,
}
MOVABLE = ("revolute", "continuous", "prismatic")
# The loader's documented defaults for limits a URDF leaves out (README, "Any URDF arm").
DEFAULT_RANGE = {"revolute": (-math.pi, math.pi), "prismatic": (0.0, 0.1)}
DEFAULT_VELOCITY = {"revolute": 1.0, "continuous": 1.0, "prismatic": 0.1}


def scene_of(loaded: Arm) -> Scene:
    """The simulator's scene; the home is the middle of the ranges (no IK: nothing about reaching is tried)."""
    options = LayoutOptions(samples=200, home=tuple(float(v) for v in loaded.spec.middle_configuration()))
    return build_scene(loaded, compute_layout(loaded, options))


@cache
def arm(name: str) -> Arm:
    return load_arm(sweep_arm_path(name))


@cache
def urdf_root(path: Path) -> ET.Element:
    """The description as the oracle reads it: ElementTree, after plain xacro expansion.

    A ``.urdf`` file can be xacro too (roboplan's ``fr3.urdf`` includes ``fr3.xacro``).
    """
    if path.name.endswith(".xacro") or "<xacro:" in path.read_text(encoding="utf-8"):
        return ET.fromstring(xacro.process_file(str(path)).toxml())
    return ET.parse(path).getroot()


def oracle_chain(root: ET.Element, tip: str) -> tuple[list[ET.Element], dict[str, ET.Element]]:
    """Movable joints from the root link down to ``tip``, and every joint by name."""
    joints = {joint.get("name", ""): joint for joint in root.findall("joint")}
    parent_of = {joint.find("child").get("link"): joint for joint in joints.values()}  # type: ignore[union-attr]
    path = []
    link = tip
    while link in parent_of:
        joint = parent_of[link]
        path.append(joint)
        link = joint.find("parent").get("link")  # type: ignore[union-attr]
    return [joint for joint in reversed(path) if joint.get("type") in MOVABLE], joints


def test_the_catalog_is_split_with_its_recorded_seed() -> None:
    assert SWEEP_SPLIT_SEED == 17
    assert len(HELD_OUT_ARMS) >= 2 and HELD_OUT_ARMS <= set(SWEEP_ARMS)
    assert set(DEVELOPMENT_ARMS) | HELD_OUT_ARMS == set(SWEEP_ARMS) and not set(DEVELOPMENT_ARMS) & HELD_OUT_ARMS
    assert set(MAKER_DOF) == set(SWEEP_ARMS)
    assert not set(REFUSED_ARMS) & set(SWEEP_ARMS)


@pytest.mark.parametrize("name", sorted(SWEEP_ARMS))
def test_chain_and_limits_match_the_urdf(name: str) -> None:
    spec = arm(name).spec
    chain, joints = oracle_chain(urdf_root(sweep_arm_path(name)), spec.tip_link)
    assert spec.dof == MAKER_DOF[name]
    assert list(spec.joint_names) == [joint.get("name") for joint in chain]
    assert spec.base_link == chain[0].find("parent").get("link")  # type: ignore[union-attr]
    # Nothing movable is dropped silently: every other movable joint is the gripper's, or a
    # continuous one in the hand, left passive with a warning.
    warnings = " | ".join(spec.warnings)
    others = {n for n, joint in joints.items() if joint.get("type") in MOVABLE} - set(spec.joint_names)
    passive = {n for n in others if joints[n].get("type") == "continuous"}
    assert others - passive == set(spec.gripper_joints)
    assert all(f"gripper joint '{n}' has no finite range" in warnings for n in passive)
    for index, joint in enumerate(chain):
        joint_name, kind, limit = joint.get("name"), joint.get("type", ""), joint.find("limit")
        attributes = {} if limit is None else limit.attrib
        if kind == "continuous":
            low, high = -math.inf, math.inf
        elif float(attributes.get("lower", "nan")) < float(attributes.get("upper", "nan")):
            low, high = float(attributes["lower"]), float(attributes["upper"])
        else:
            low, high = DEFAULT_RANGE[kind]
            assert f"joint '{joint_name}' has no usable position limits" in warnings
        velocity = float(attributes.get("velocity", "0"))
        if velocity <= 0:
            velocity = DEFAULT_VELOCITY[kind]
            assert f"joint '{joint_name}' has no velocity limit" in warnings
        assert (spec.lower[index], spec.upper[index], spec.velocity[index]) == pytest.approx((low, high, velocity))


@pytest.mark.parametrize("name", sorted(SWEEP_ARMS))
def test_inspect_passes(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["inspect", str(sweep_arm_path(name)), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    spec = arm(name).spec
    assert summary["dof"] == MAKER_DOF[name] and summary["joints"] == list(spec.joint_names)
    assert summary["tip_link"] == spec.tip_link and summary["warnings"] == list(spec.warnings)


@pytest.mark.parametrize("name", sorted(SWEEP_ARMS))
def test_the_simulator_builds_its_scene(name: str) -> None:
    loaded = arm(name)
    scene = scene_of(loaded)
    assert len(scene.arm_actuators) == loaded.spec.dof and np.all(scene.arm_actuators >= 0)


@pytest.mark.parametrize("name", sorted(SWEEP_ARMS))
def test_gripper_open_and_closed_positions_are_finite(name: str) -> None:
    """Trossen's ``gripper`` joint (the servo horn) is continuous: left passive, its fingers driven."""
    spec = arm(name).spec
    opened, closed = spec.gripper_open_closed()
    assert np.all(np.isfinite(opened)) and np.all(np.isfinite(closed))
    if name.startswith("trossen_"):
        assert "gripper" not in spec.gripper_joints and "left_finger" in spec.driven_gripper_joints
        assert any("'gripper' has no finite range" in warning for warning in spec.warnings)


@pytest.mark.parametrize("name", sorted(REFUSED_ARMS))
def test_descriptions_to_refuse_are_refused_with_their_reason(name: str) -> None:
    refused = REFUSED_ARMS[name]
    path = sweep_arm_path(name)
    if refused.stage == "load":
        with pytest.raises(DescriptionError, match=refused.reason) as error:
            load_arm(path)
    else:
        loaded = load_arm(path)
        with pytest.raises(DescriptionError, match=refused.reason) as error:
            scene_of(loaded)
    message = str(error.value)
    assert "\n" not in message  # one line, as the CLI prints it
    if refused.stage == "scene":
        assert path.name in message  # and it names the file


def test_the_cli_refuses_in_one_line_with_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "robot_brain.cli.main", "inspect", str(sweep_arm_path("dual_fr3"))],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "2 chains of movable joints" in lines[0] and "candidate tips are" in lines[0]
