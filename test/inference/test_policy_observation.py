"""Observation assembly (missing, stale, misaligned inputs), action decoding and arm compatibility."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ros_fixtures import PANDA, UR5

from robot_brain.cli.main import main as cli
from robot_brain.embodiment import load_arm
from robot_brain.inference.builders import build_policy, mlp_contract
from robot_brain.inference.contract import ModelContract
from robot_brain.inference.observation import (
    ObservationAssembler,
    Skip,
    check_arm_compatibility,
    decode_chunk,
)
from robot_brain.inference.reach_policy import reach_contract, write_reach_policy


def assembler() -> ObservationAssembler:
    contract = ModelContract.from_dict(
        {**reach_contract(), "normalization": {"ee_pose": {"mean": [1.0], "std": [2.0]}}}
    )
    identity = {
        "target_point": lambda p: np.asarray(p, np.float32).reshape(1, 3),
        "ee_pose": lambda p: np.asarray(p, np.float32).reshape(1, 7),
    }
    return ObservationAssembler(contract, identity, sync_tolerance=0.05, max_age=0.5)


def test_missing_input_skips_and_counts() -> None:
    obs = assembler()
    obs.update("ee_pose", np.zeros(7), stamp_ns=10000000000)
    result = obs.assemble(now_ns=10100000000)
    assert isinstance(result, Skip) and "missing input 'target_point'" in result.reason
    assert sum(obs.skips.values()) == 1


def test_stale_observation_skips() -> None:
    obs = assembler()
    obs.update("ee_pose", np.zeros(7), stamp_ns=10000000000)
    obs.update("target_point", np.ones(3), stamp_ns=1000000000)  # unsynchronized: old is fine
    assert isinstance(obs.assemble(now_ns=10200000000), Skip) is False
    result = obs.assemble(now_ns=11000000000)
    assert isinstance(result, Skip) and "older than 0.500 s" in result.reason


def test_assembled_observation_is_normalised_and_stamped() -> None:
    obs = assembler()
    obs.update("ee_pose", np.full(7, 3.0), stamp_ns=10000000000)
    obs.update("target_point", np.ones(3), stamp_ns=9000000000)
    result = obs.assemble(now_ns=10250000000)
    assert not isinstance(result, Skip)
    assert result.stamp_ns == 10_000_000_000 and result.age == pytest.approx(0.25)
    np.testing.assert_allclose(result.feeds["ee_pose"], np.full((1, 7), 1.0))  # (3 - 1) / 2


def test_synchronized_inputs_must_align() -> None:
    contract = ModelContract.from_dict(mlp_contract())
    vector = {"qpos": lambda p: p, "qvel": lambda p: p}
    obs = ObservationAssembler(contract, vector, sync_tolerance=0.05, max_age=1.0)
    obs.update("qpos", np.zeros((1, 7)), stamp_ns=5000000000)
    obs.update("qvel", np.zeros((1, 7)), stamp_ns=5200000000)
    result = obs.assemble(now_ns=5300000000)
    assert isinstance(result, Skip) and "not aligned within 0.050 s" in result.reason


def test_decode_chunk_unnormalises_clips_gripper_and_normalises_quaternions() -> None:
    contract = ModelContract.from_dict(
        {
            **mlp_contract("ee_pose", horizon=2, gripper=True),
            "normalization": {"actions": {"mean": [0.0], "std": [2.0]}},
        }
    )
    spec = contract.action_output
    raw = np.array([[[0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 1.0, 0.7], [0, 0, 0, 0, 0, 1.0, 1.0, -0.4]]], np.float32)
    chunk = decode_chunk(raw, spec, contract.normalization["actions"])
    np.testing.assert_allclose(chunk[0, :3], [0.2, 0.4, 0.6], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(chunk[:, 3:7], axis=1), 1.0)
    assert chunk[0, 7] == 1.0 and chunk[1, 7] == 0.0
    with pytest.raises(ValueError, match="expected 2 x 8 action values"):
        decode_chunk(raw[:, :1], spec, None)
    raw[0, 0, 3:7] = 0.0
    with pytest.raises(ValueError, match="zero quaternion"):
        decode_chunk(raw, spec, None)


def test_arm_compatibility_joint_and_ee_spaces() -> None:
    panda, ur5 = load_arm(PANDA), load_arm(UR5)
    joint7 = ModelContract.from_dict(mlp_contract("joint_position", dof=7, gripper=True))
    assert check_arm_compatibility(joint7, panda.spec.joint_names, panda.spec.gripper_joints) == []
    problems = check_arm_compatibility(joint7, ur5.spec.joint_names, ur5.spec.gripper_joints)
    assert any("expected 6 values per waypoint" in p and "found 7" in p for p in problems)
    assert any("gripper channel: expected the arm to have gripper joints" in p for p in problems)
    reach = ModelContract.from_dict(reach_contract())
    assert check_arm_compatibility(reach, ur5.spec.joint_names, ()) == []


def test_cli_inspect_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reach = write_reach_policy(tmp_path / "reach.onnx")
    assert cli(["model", "inspect", str(reach), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["contract"]["outputs"][0]["action_space"] == "ee_pose_delta" and report["mismatches"] == []
    assert cli(["model", "validate", str(reach), "--urdf", str(UR5)]) == 0
    assert "can drive the 6-DOF arm" in capsys.readouterr().out
    joint7 = tmp_path / "joint7.onnx"
    joint7.write_bytes(build_policy(mlp_contract(dof=7), hidden=(8,)).SerializeToString())
    assert cli(["model", "validate", str(joint7), "--urdf", str(UR5)]) == 1
    assert "expected 6 values per waypoint" in capsys.readouterr().out
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(build_policy(mlp_contract(), hidden=(8,), embed=False).SerializeToString())
    assert cli(["model", "inspect", str(bare)]) == 1
    assert "expected metadata 'robot_brain.contract' or a sidecar, found none" in capsys.readouterr().out
    assert cli(["model", "inspect", str(tmp_path / "nope.onnx")]) == 2
    assert "found nothing" in capsys.readouterr().err
