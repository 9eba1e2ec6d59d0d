"""Model contract and model loading: every action space and input role, every bad-model case."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from onnx import helper

from robot_brain.errors import ModelContractError
from robot_brain.inference.builders import build_policy, cnn_contract, mlp_contract
from robot_brain.inference.contract import ACTION_SPACE_SIZES, METADATA_KEY, ModelContract
from robot_brain.inference.model import embed_contract, load_model
from robot_brain.inference.runtime import InferenceRuntime, RuntimeOptions

CPU = RuntimeOptions(providers=["cpu"], warmup_runs=1)


def all_roles_contract(action_space: str) -> dict[str, Any]:
    """A contract using every input role at once."""
    contract = mlp_contract(action_space, dof=6, horizon=4, gripper=True)
    contract["inputs"] = [
        {
            "name": "cam",
            "role": "image",
            "topic": "/camera/image_raw",
            "shape": [1, 32, 32, 3],
            "image": {"width": 32, "height": 32, "channel_order": "bgr", "layout": "hwc"},
        },
        {"name": "q", "role": "joint_positions", "shape": [1, 6]},
        {"name": "dq", "role": "joint_velocities", "shape": [1, 6]},
        {"name": "ee", "role": "ee_pose", "shape": [1, 7]},
        {"name": "grip", "role": "gripper_state", "shape": [1, 2]},
        {"name": "task", "role": "task_id", "dtype": "int64", "shape": [1, 1]},
        {"name": "target", "role": "target_point", "shape": [1, 3], "synchronized": False},
    ]
    contract["normalization"] = {"q": {"mean": [0.1], "std": [2.0]}, "actions": {"mean": [0.0], "std": [0.5]}}
    return contract


@pytest.mark.parametrize("action_space", list(ACTION_SPACE_SIZES))
def test_every_action_space_and_input_role_loads_and_runs(action_space: str) -> None:
    document = all_roles_contract(action_space)
    model = load_model(build_policy(document, hidden=(32,), conv_channels=(4,)).SerializeToString())
    contract = model.require_contract()
    assert contract.action_output.action_space == action_space
    assert {s.role for s in contract.inputs} == {
        "image",
        "joint_positions",
        "joint_velocities",
        "ee_pose",
        "gripper_state",
        "task_id",
        "target_point",
    }
    runtime = InferenceRuntime(model, CPU)
    rng = np.random.default_rng(1)
    feeds = {
        name: rng.random([d for d in info.shape]).astype(info.dtype)  # type: ignore[misc]
        for name, info in runtime.inputs.items()
    }
    out = runtime.run(feeds)["actions"]
    dim = contract.action_output.dim
    assert out.shape == (1, 4, dim)
    reference = runtime.session.run(None, feeds)[0]
    np.testing.assert_allclose(out, reference, rtol=1e-6)


def test_cnn_contract_round_trips_through_metadata() -> None:
    document = cnn_contract(size=64)
    model = build_policy(document, hidden=(16,), conv_channels=(4, 8))
    text = {p.key: p.value for p in model.metadata_props}[METADATA_KEY]
    assert ModelContract.from_dict(document) == load_model(model.SerializeToString()).contract
    assert '"channel_order":"rgb"' in text


def write(model: onnx.ModelProto, tmp_path: Path, name: str = "m.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelContractError, match=r"expected an ONNX file at .*missing\.onnx, found nothing"):
        load_model(tmp_path / "missing.onnx")


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    data = build_policy(mlp_contract(), hidden=(8,)).SerializeToString()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelContractError, match=r"corrupt"):
        load_model(path)
    path.write_bytes(b"not an onnx file at all \x00\xff" * 10)
    with pytest.raises(ModelContractError, match="expected"):
        load_model(path)


def test_sha256_checked(tmp_path: Path) -> None:
    path = write(build_policy(mlp_contract(), hidden=(8,)), tmp_path)
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_model(path, sha256=good.upper()).sha256 == good
    with pytest.raises(ModelContractError, match=f"expected SHA-256 {'0' * 64}, found {good}"):
        load_model(path, sha256="0" * 64)


def test_unsupported_opset(tmp_path: Path) -> None:
    model = build_policy(mlp_contract(), hidden=(8,))
    model.opset_import[0].version = 99
    with pytest.raises(ModelContractError, match=r"expected ONNX opset 7\.\.\d+, found opset 99"):
        load_model(write(model, tmp_path))


def test_missing_contract_says_how_to_give_one(tmp_path: Path) -> None:
    path = write(build_policy(mlp_contract(), hidden=(8,), embed=False), tmp_path)
    with pytest.raises(ModelContractError, match="expected a contract in metadata_props or a sidecar YAML"):
        load_model(path)
    assert load_model(path, require_contract=False).contract is None


def test_sidecar_supplies_and_overrides(tmp_path: Path) -> None:
    document = mlp_contract(horizon=16)
    plain = write(build_policy(document, hidden=(8,), embed=False), tmp_path)
    sidecar = tmp_path / "c.yaml"
    sidecar.write_text(yaml.safe_dump(document))
    assert load_model(plain, sidecar=sidecar).require_contract().name == "mlp_joint_position"
    embedded = write(build_policy(document, hidden=(8,)), tmp_path, "e.onnx")
    assert load_model(embedded, sidecar={"control_rate_hz": 7.5}).require_contract().control_rate_hz == 7.5


def mutated(change: dict[str, Any], where: str = "outputs") -> dict[str, Any]:
    document = copy.deepcopy(mlp_contract(horizon=8))
    if where == "outputs":
        document["outputs"][0].update(change)
    else:
        document["inputs"][0].update(change)
    return document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (mutated({"name": "act"}), "output 'act': expected in the graph, found outputs \\['actions'\\]"),
        (mutated({"name": "joints"}, "inputs"), "input 'joints': expected in the graph"),
        (mutated({"shape": [1, 8]}), "output 'actions': expected rank 2 \\[1, 8\\], found rank 3"),
        (mutated({"shape": [1, 9, 8]}), "expected size 9 on axis 1 \\[1, 9, 8\\], found 8"),
        (mutated({"dtype": "float64"}), "expected dtype float64, found float32 in the graph"),
        (mutated({"horizon": 4, "shape": None}), "expected horizon x dim = 4 x 8 = 32 values, found shape"),
    ],
)
def test_contract_graph_mismatches_say_expected_and_found(
    document: dict[str, Any], message: str, tmp_path: Path
) -> None:
    model = build_policy(mlp_contract(horizon=8), hidden=(8,))
    embed_contract(model, document)
    path = write(model, tmp_path)
    with pytest.raises(ModelContractError, match=message):
        load_model(path)
    assert load_model(path, require_contract=False).problems


def test_unfed_graph_input_is_a_mismatch(tmp_path: Path) -> None:
    document = mlp_contract(horizon=8)
    model = build_policy(document, hidden=(8,))
    embed_contract(model, {**document, "inputs": document["inputs"][:1]})
    with pytest.raises(ModelContractError, match="graph input 'qvel': expected a contract entry"):
        load_model(write(model, tmp_path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"action_space": "joint_torque"}, "action_space: expected one of joint_position"),
        ({"action_space": "ee_pose", "dim": 8, "gripper": False}, "dim: expected 7 for ee_pose, found 8"),
        ({"dt": 0}, "dt: expected a time step > 0 s"),
        ({"horizon": -1}, "horizon: expected a positive integer"),
        ({"role": "logits"}, "role: expected one of action_chunk"),
    ],
)
def test_contract_document_errors(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelContractError, match=message):
        ModelContract.from_dict(mutated(change))


def test_invalid_embedded_json_is_reported(tmp_path: Path) -> None:
    model = build_policy(mlp_contract(), hidden=(8,), embed=False)
    helper.set_model_props(model, {METADATA_KEY: "{not json"})
    with pytest.raises(ModelContractError, match="expected a JSON document, found invalid JSON"):
        load_model(write(model, tmp_path))
