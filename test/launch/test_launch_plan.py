"""The launch plan: the nodes, parameters and wiring every launch file and `robot-brain up` use."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from robot_brain.bringup.gazebo import gazebo_plan
from robot_brain.bringup.params_files import parse_bool, parse_overrides
from robot_brain.bringup.plan import brain_plan, sim_plan
from robot_brain.bringup.robots import config_dir, preset_names, resolve_robot
from robot_brain.embodiment.catalog import bundled_arm_path
from robot_brain.errors import ConfigurationError
from robot_brain.sim import compute_layout

REPO = Path(__file__).resolve().parents[2]


def test_presets_cover_the_test_arms_and_resolve_to_real_files() -> None:
    assert {"panda", "ur5", "xarm7", "iiwa", "xarm6", "so101"} <= set(preset_names())
    for name in ("panda", "iiwa"):
        robot = resolve_robot(name)
        assert robot.urdf == bundled_arm_path(name) and robot.preset is not None
    assert resolve_robot().name == "panda"


def test_a_urdf_needs_no_preset_and_unknown_robots_are_refused() -> None:
    robot = resolve_robot(urdf=bundled_arm_path("ur10"))
    assert robot.preset is None and robot.parameters == {}
    with pytest.raises(ConfigurationError, match=r"robot 'nope': expected a preset \(.*panda.*\) or a bundled arm"):
        resolve_robot("nope")


def test_brain_plan_contents() -> None:
    robot = resolve_robot("ur5")
    plan = brain_plan(robot, command_mode="trajectory", controller_name="scaled_joint_trajectory_controller",
                      camera_pose=[0, 0, 1, 0, 0, 0, 1], plane=[0, 0, 1, 0.02])
    assert plan.names == ("perception", "policy", "arm_controller")
    controller, policy, perception = (plan.node(n).parameters for n in ("arm_controller", "policy", "perception"))
    assert controller["command_mode"] == "trajectory"
    assert controller["controller_name"] == "scaled_joint_trajectory_controller"
    assert controller["urdf_path"] == policy["urdf_path"] == str(robot.urdf)
    assert policy["model_path"] == "builtin:reach"
    assert all(plan.node(n).parameters["autostart"] for n in plan.names)
    assert perception["camera_pose"] == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert perception["target_frame"] == "base_link"
    with pytest.raises(ConfigurationError, match="command mode: expected one of forward_position, trajectory"):
        brain_plan(robot, command_mode="velocity")
    with pytest.raises(ConfigurationError, match=r"model: /no/model\.onnx: no such file"):
        brain_plan(robot, model="/no/model.onnx")


def test_sim_plan_hands_perception_the_sims_camera_and_table() -> None:
    robot = resolve_robot("panda")
    plan = sim_plan(robot)
    assert plan.names == ("sim", "perception", "policy", "arm_controller")
    sim, perception = plan.node("sim").parameters, plan.node("perception").parameters
    layout = compute_layout(robot.load())
    assert sim["camera_pose"] == perception["camera_pose"] == pytest.approx(layout.camera_pose_list())
    assert perception["plane"] == [0.0, 0.0, 1.0, pytest.approx(layout.object_z)]
    assert perception["target_frame"] == "panda_link0"
    assert not any(plan.node(n).parameters["use_sim_time"] for n in plan.names)


def test_sim_plan_follows_overrides_speed_and_controller_names() -> None:
    robot = resolve_robot("xarm6")
    overrides = parse_overrides(["sim.camera_fovy_deg=40", "arm_controller.controller_name=my_position_controller",
                                 "arm_controller.gripper_topic=/hand/commands"])
    plan = sim_plan(robot, real_time_factor=3.0, overrides=overrides)
    sim = plan.node("sim").parameters
    assert sim["camera_fovy_deg"] == 40 and sim["real_time_factor"] == 3.0
    assert sim["position_controller"] == "my_position_controller"
    assert sim["gripper_controller"] == "hand"
    assert all(plan.node(n).parameters["use_sim_time"] for n in plan.names)
    with pytest.raises(ConfigurationError, match=r"expected NODE\.NAME=VALUE"):
        parse_overrides(["camera_rate_hz=3"])
    with pytest.raises(ConfigurationError, match="unknown node"):
        sim_plan(robot, overrides={"simulator": {"x": 1}})


def test_commands_and_params_files(tmp_path: Path) -> None:
    plan = sim_plan(resolve_robot("iiwa"))
    commands = plan.commands(tmp_path, "/usr/bin/python3")
    sim = commands["sim"]
    assert sim[:3] == ["/usr/bin/python3", "-m", "robot_brain.nodes.sim"]
    assert "__node:=sim" in sim and str(config_dir() / "sim.yaml") in sim
    params = yaml.safe_load((tmp_path / "sim.params.yaml").read_text())
    assert params["/**"]["ros__parameters"]["urdf_path"] == str(bundled_arm_path("iiwa"))
    # config defaults come first so the generated values win
    files = [sim[i + 1] for i, arg in enumerate(sim) if arg == "--params-file"]
    assert files == [str(config_dir() / "sim.yaml"), str(tmp_path / "sim.params.yaml")]


def test_gazebo_plan_generates_ros2_control_pieces(tmp_path: Path) -> None:
    plan = gazebo_plan(resolve_robot("panda"), tmp_path)
    controllers = yaml.safe_load(plan.controllers_file.read_text())
    assert controllers["forward_position_controller"]["ros__parameters"]["joints"] == [
        f"panda_joint{i}" for i in range(1, 8)
    ]
    assert controllers["gripper_controller"]["ros__parameters"]["joints"] == ["panda_finger_joint1"]
    assert plan.controllers == ("joint_state_broadcaster", "forward_position_controller", "gripper_controller")
    root = ET_fromstring(plan.robot_description)
    joints = [j.get("name") for j in root.find("ros2_control").findall("joint")]
    assert joints == [*(f"panda_joint{i}" for i in range(1, 8)), "panda_finger_joint1", "panda_finger_joint2"]
    assert root.find("gazebo/plugin/parameters").text == str(plan.controllers_file)
    assert all(plan.brain.node(n).parameters["use_sim_time"] for n in plan.brain.names)


def ET_fromstring(text: str):  # noqa: N802 - mirrors ElementTree's name
    import xml.etree.ElementTree as ET

    return ET.fromstring(text)


@pytest.mark.parametrize("name", ["brain", "sim", "gazebo", "teleop"])
def test_launch_files_are_thin_wrappers_over_the_plan(name: str) -> None:
    source = (REPO / "launch" / f"{name}.launch.py").read_text()
    tree = ast.parse(source)
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("robot_brain.bringup.") for alias in node.names}
    plans = {"brain": "brain_plan", "sim": "sim_plan", "gazebo": "gazebo_plan", "teleop": "teleop_plan"}
    assert plans[name] in imported


def _launch_arguments(name: str) -> dict[str, tuple[str, str]]:
    tree = ast.parse((REPO / "launch" / f"{name}.launch.py").read_text())
    (assignment,) = (node for node in tree.body if isinstance(node, ast.Assign)
                     and any(isinstance(t, ast.Name) and t.id == "ARGUMENTS" for t in node.targets))
    return ast.literal_eval(assignment.value)


def test_brain_launch_takes_use_sim_time() -> None:
    assert _launch_arguments("brain")["use_sim_time"][0] == "false"
    source = (REPO / "launch" / "brain.launch.py").read_text()
    assert 'use_sim_time=parse_bool("use_sim_time", value["use_sim_time"])' in source
    plan = brain_plan(resolve_robot("ur5"), use_sim_time=parse_bool("use_sim_time", "True"))
    assert all(plan.node(n).parameters["use_sim_time"] is True for n in plan.names)
    with pytest.raises(ConfigurationError, match="use_sim_time: expected true or false, found 'maybe'"):
        parse_bool("use_sim_time", "maybe")


@pytest.mark.parametrize("name", ["brain", "sim", "gazebo", "teleop"])
def test_launch_files_write_params_into_a_folder_removed_at_shutdown(name: str) -> None:
    """Every launch file gets its folder from launch_actions (an OnShutdown handler removes it), none from tempfile."""
    source = (REPO / "launch" / f"{name}.launch.py").read_text()
    assert "tempfile" not in source
    assert "plan_actions(" in source or ("params_folder(" in source and "cleanup" in source)
