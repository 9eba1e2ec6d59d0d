"""The teleop plan (``robot-brain teleop``, ``teleop.launch.py``): nodes, parameters, the CLI's consent gate."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from rcl_params import rcl_parameters

from robot_brain.bringup.plan import brain_plan, record_parameters, sim_plan, teleop_plan
from robot_brain.bringup.robots import resolve_robot
from robot_brain.cli.main import main
from robot_brain.cli.teleop import _record_parameters
from robot_brain.consent.registry import ConsentRegistry
from robot_brain.errors import ConfigurationError


def test_the_plan_drops_the_policy_and_adds_teleop_and_the_recorder_last() -> None:
    robot = resolve_robot("ur5")
    plan = teleop_plan(sim_plan(robot), teleop={"device_name": "xbox"},
                       record={"operator": "op-0123456789abcdef", "task": "reach", "data_root": "/tmp/d"})
    assert plan.names == ("sim", "perception", "arm_controller", "teleop", "recorder")
    teleop = plan.node("teleop").parameters
    assert teleop["device_name"] == "xbox" and teleop["autostart"] is True and teleop["urdf_path"] == str(robot.urdf)
    recorder = plan.node("recorder").parameters
    assert recorder["operator"] == "op-0123456789abcdef" and recorder["task"] == "reach"
    cell = teleop_plan(brain_plan(robot), teleop={"input": "joy"})
    assert cell.names == ("perception", "arm_controller", "teleop")


def test_teleop_overrides_reach_the_nested_mapping_parameters_typed_as_declared() -> None:
    overrides = {"teleop": {"scale_linear.x": 1, "enable_button": 4}}
    plan = teleop_plan(brain_plan(resolve_robot("panda")), overrides=overrides)
    parameters = plan.node("teleop").parameters
    assert parameters["scale_linear.x"] == 1.0 and isinstance(parameters["scale_linear.x"], float)
    assert parameters["enable_button"] == 4


def test_every_params_file_of_the_teleop_plan_is_read_by_rcl(tmp_path: Path) -> None:
    plan = teleop_plan(sim_plan(resolve_robot("panda")), teleop={"device_id": 1},
                       record={"operator": "scripted", "task": "reach", "data_root": str(tmp_path)})
    files = plan.write_params(tmp_path / "params")
    for spec in plan.nodes:
        values = rcl_parameters(spec.params_files(files[spec.name]), node_name=spec.name)
        assert values["autostart"] is True, spec.name
    teleop = rcl_parameters(plan.node("teleop").params_files(files["teleop"]), node_name="teleop")
    assert teleop["device_id"] == 1 and teleop["axis_linear.x"] == 1


def test_record_without_consent_is_refused_before_anything_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOT_BRAIN_DATA_ROOT", str(tmp_path))
    assert main(["teleop", "--sim", "--record", "--operator", "Ada Lovelace"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "recording refused" in error and "Ada" not in error
    ConsentRegistry(tmp_path).enroll("Ada Lovelace", "train")  # consent, but not to be recorded
    assert main(["teleop", "--sim", "--record", "--operator", "Ada Lovelace"]) == 2
    assert "record" in capsys.readouterr().err
    with pytest.raises(ConfigurationError, match="--record needs --operator"):
        _record_parameters(argparse.Namespace(record=True, operator="", task="", data_root=str(tmp_path)))


def test_teleop_help_lists_the_operator_options() -> None:
    result = subprocess.run([sys.executable, "-m", "robot_brain.cli.main", "teleop", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--sim", "--input", "--device", "--record", "--operator", "--task"):
        assert option in result.stdout


def test_a_pad_session_is_recorded_only_as_an_enrolled_person_never_as_a_label(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """What drives the arm decides who is recorded: a person on a pad cannot call themselves scripted."""
    monkeypatch.setenv("ROBOT_BRAIN_DATA_ROOT", str(tmp_path))
    for label in ("scripted", "scripted:expert", "policy:" + "ab" * 8):
        assert main(["teleop", "--sim", "--record", "--operator", label]) == 2, label
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "a person drives this arm" in error, error
    pseudonym = ConsentRegistry(tmp_path).enroll("Ada Lovelace", "record").operator.pseudonym
    for name in ("Ada Lovelace", pseudonym):
        assert record_parameters(name, "reach", str(tmp_path), driven_by="pad")["operator"] == pseudonym


def test_the_scripted_operators_episodes_are_never_recorded_under_a_person(tmp_path: Path) -> None:
    pseudonym = ConsentRegistry(tmp_path).enroll("Ada Lovelace", "record").operator.pseudonym
    for person in ("Ada Lovelace", pseudonym):
        with pytest.raises(ConfigurationError, match="never under a person") as refused:
            record_parameters(person, "reach", str(tmp_path), driven_by="scripted")
        assert "Ada" not in str(refused.value) and pseudonym not in str(refused.value)
    assert record_parameters("scripted", "reach", str(tmp_path), driven_by="scripted")["operator"] == "scripted"
    with pytest.raises(ConfigurationError, match="enrolled person's name"):
        record_parameters("scripted:Ada_Lovelace", "reach", str(tmp_path), driven_by="scripted")
