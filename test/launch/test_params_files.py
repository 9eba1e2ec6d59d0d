"""Every params file the launch plan writes is read by rcl's own parser, with the values the plan meant.

PyYAML is not the judge here: rcl refuses anchors/aliases and lists that mix integers and
floats, both of which PyYAML writes and reads happily.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rcl_params import RclParseError, rcl_parameters

from robot_brain.bringup.gazebo import gazebo_plan
from robot_brain.bringup.params_files import dump_params_yaml, parse_overrides, write_params_file
from robot_brain.bringup.plan import brain_plan, sim_plan
from robot_brain.bringup.robots import Robot, resolve_robot
from robot_brain.cli.main import main
from robot_brain.errors import ConfigurationError

OVERRIDES = ["sim.region_radius=[0.4, 1]", "sim.camera_rate_hz=10", "policy.rate_hz=30",
             "arm_controller.controller_name=my_position_controller", "perception.plane=[0, 0, 1, 0.02]"]


def _check_plan_files(plan, folder: Path) -> None:
    """Each node's files, in the order the node gets them, parse in rcl and carry the planned values.

    The node is declared the way the real one is (its defaults file mirrors its declarations,
    a test in each node's folder checks that), so a value of another type fails here as it
    would fail the node at start-up.
    """
    files = plan.write_params(folder)
    for spec in plan.nodes:
        declared = yaml.safe_load(spec.defaults_file.read_text())["/**"]["ros__parameters"]
        declared.pop("use_sim_time", None)  # every rclpy node declares it itself
        parsed = rcl_parameters(spec.params_files(files[spec.name]), spec.name, declared=declared)
        for name, value in spec.parameters.items():
            if name not in declared and name != "use_sim_time":  # e.g. a preset's own key: rcl reads it too
                parsed[name] = rcl_parameters([files[spec.name]], spec.name)[name]
            expected = [float(v) for v in value] if isinstance(value, list) and any(
                isinstance(v, float) for v in value) else value
            assert parsed[name] == expected, f"{spec.name}.{name}"


@pytest.mark.parametrize("robot", ["panda", "so101", "xarm6"])
def test_brain_params_files_parse_in_rcl(robot: str, tmp_path: Path) -> None:
    plan = brain_plan(resolve_robot(robot), camera_pose=[0, 0, 1, 0, 0, 0, 1], plane=[0, 0, 1, 0.02],
                      use_sim_time=True, overrides=parse_overrides(OVERRIDES))
    _check_plan_files(plan, tmp_path)


@pytest.mark.parametrize(("robot", "overrides"), [
    ("panda", []), ("iiwa", OVERRIDES), ("ur5", ["sim.home=[0, -1.2, 1.5, -1.9, -1.57, 0]"]),
])
def test_sim_params_files_parse_in_rcl(robot: str, overrides: list[str], tmp_path: Path) -> None:
    plan = sim_plan(resolve_robot(robot), real_time_factor=2.0, overrides=parse_overrides(overrides))
    _check_plan_files(plan, tmp_path)
    if overrides == OVERRIDES:  # the mixed list became floats, which is what rcl and the sim node need
        assert rcl_parameters([tmp_path / "sim.params.yaml"], "sim")["region_radius"] == [0.4, 1.0]


@pytest.mark.parametrize("robot", ["panda", "ur5", "iiwa", "so101"])
def test_gazebo_files_parse_in_rcl(robot: str, tmp_path: Path) -> None:
    plan = gazebo_plan(resolve_robot(robot), tmp_path, command_mode="trajectory")
    arm = plan.brain.arm
    joints = list(arm.spec.joint_names)
    # The controller manager reads this file; its controllers read their own sections of it.
    manager = rcl_parameters([plan.controllers_file], "controller_manager")
    assert manager["update_rate"] == 500
    assert manager["joint_trajectory_controller.type"] == "joint_trajectory_controller/JointTrajectoryController"
    for controller in ("forward_position_controller", "joint_trajectory_controller"):
        assert rcl_parameters([plan.controllers_file], controller)["joints"] == joints
    publisher = rcl_parameters([plan.state_publisher_file], "robot_state_publisher")
    assert publisher == {"robot_description": plan.robot_description, "use_sim_time": True,
                         "start_type_description_service": True}
    _check_plan_files(plan.brain, tmp_path / "brain")


def test_shared_objects_are_written_twice_not_aliased(tmp_path: Path) -> None:
    joints = ["a", "b"]
    document = {"/**": {"ros__parameters": {"left": joints, "right": joints}}}
    assert "&id" not in dump_params_yaml(document) and "*id" not in dump_params_yaml(document)
    aliased = tmp_path / "aliased.yaml"
    aliased.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(RclParseError, match="Will not support aliasing"):  # rcl on PyYAML's default output
        rcl_parameters([aliased])
    parsed = rcl_parameters([write_params_file(tmp_path / "ok.yaml", document)])
    assert parsed["left"] == parsed["right"] == joints


def test_lists_mixing_integers_and_floats_become_floats(tmp_path: Path) -> None:
    document = {"/**": {"ros__parameters": {"gains": {"kp": [1, 2.5]}}}}
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(RclParseError, match="Sequence should be of same type"):
        rcl_parameters([mixed])
    assert rcl_parameters([write_params_file(tmp_path / "ok.yaml", document)])["gains.kp"] == [1.0, 2.5]


def test_a_preset_with_yaml_anchors_still_gives_rcl_readable_files(tmp_path: Path) -> None:
    parameters = yaml.safe_load("sim: {region_radius: &r [0.3, 0.6], home: &h [0.0, -0.5, 0.0, -2.0, 0.0, 1.6, 0.8]}\n"
                                "arm_controller: {home_a: *h, home_b: *h}\n")
    base = resolve_robot("panda")
    robot = Robot(name="anchored", urdf=base.urdf, parameters=parameters)
    _check_plan_files(sim_plan(robot), tmp_path)


def test_values_rcl_cannot_hold_are_one_line_errors(tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigurationError, match=r"parameter 'home': expected a non-empty list"):
        dump_params_yaml({"/**": {"ros__parameters": {"home": []}}})
    with pytest.raises(ConfigurationError, match=r"parameter 'mixed': expected a list of one type"):
        dump_params_yaml({"/**": {"ros__parameters": {"mixed": [1, "a"]}}})
    assert main(["up", "--robot", "xarm6", "--sim", "--dry-run", "--params-dir", str(tmp_path), "--param",
                 "sim.home=[]"]) == 2
    assert "parameter 'home': expected a non-empty list" in capsys.readouterr().err


def test_overrides_take_the_type_the_node_declares(tmp_path: Path, capsys) -> None:
    """``--param sim.camera_rate_hz=30`` (the README's example) must not kill the sim (rclpy: int is not float)."""
    overrides = parse_overrides(["sim.camera_rate_hz=30", "sim.home=[0, 0, 0, 0, 0, 0]", "policy.warmup_runs=2.0",
                                 "sim.timestep=1e-3"])
    plan = sim_plan(resolve_robot("xarm6"), overrides=overrides)
    assert plan.node("sim").parameters["camera_rate_hz"] == 30.0 and isinstance(
        plan.node("sim").parameters["camera_rate_hz"], float)
    assert plan.node("sim").parameters["home"] == [0.0] * 6
    assert plan.node("sim").parameters["timestep"] == 0.001  # YAML 1.1 reads 1e-3 as a string
    assert plan.node("policy").parameters["warmup_runs"] == 2 and isinstance(
        plan.node("policy").parameters["warmup_runs"], int)
    _check_plan_files(plan, tmp_path)
    assert main(["up", "--robot", "xarm6", "--sim", "--dry-run", "--param", "sim.camera_rate_hz=fast"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "parameter 'sim.camera_rate_hz': expected a number (the node declares 15.0)" in err
