"""The state policy trained on real-arm reach demonstrations: labels, consent screening, export, contract, runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers.training_support import (
    ADA,
    BOB,
    ReachData,
    cli,
    copy_data_root,
    make_reach_data,
    reach_episode,
    write_reach_dataset,
)
from robots import ARMS

from robot_brain.consent.registry import ConsentRegistry
from robot_brain.control.actions import quaternion_to_matrix
from robot_brain.datasets.dataset_provenance import dataset_content_hash
from robot_brain.datasets.lerobot_reader import STALE_MARKER
from robot_brain.erasure.purge import purge_operator
from robot_brain.inference.contract import METADATA_KEY as CONTRACT_KEY
from robot_brain.inference.model import load_model
from robot_brain.inference.observation import apply_normalization, decode_chunk
from robot_brain.inference.runtime import InferenceRuntime, RuntimeOptions
from robot_brain.learning import training_data as td
from robot_brain.learning.model_provenance import METADATA_KEY
from robot_brain.learning.onnx_export import ExportError, export_policy, policy_contract
from robot_brain.learning.policies import StateConstants, StatePolicy
from robot_brain.learning.training import TrainConfig, TrainResult, train
from robot_brain.storage.paths import DataLayout


def test_labels_are_the_commands_as_the_arm_controller_applies_ee_pose_delta() -> None:
    columns = reach_episode("panda", seed=5, length=16)
    observed, commanded = columns["observation.ee_pose"], columns["action.ee_pose"]
    labels = td.chunk_labels(observed, commanded, horizon=6, stride=2)
    assert labels.shape == (16, 6, 7)
    for t in range(16):
        observed_rotation = quaternion_to_matrix(observed[t, 3:7])
        for i in range(6):
            k = min(t + 2 * i, 15)  # waypoint i is the command i*stride frames on; the last one repeats
            np.testing.assert_allclose(observed[t, :3] + labels[t, i, :3], commanded[k, :3], atol=1e-12)
            np.testing.assert_allclose(  # R = R_delta · R_obs, as robot_brain.control.actions applies it
                quaternion_to_matrix(labels[t, i, 3:7]) @ observed_rotation,
                quaternion_to_matrix(commanded[k, 3:7]),
                atol=1e-9,
            )
    assert np.all(labels[..., 6] >= 0.0)
    np.testing.assert_allclose(labels[:, 0, :3], commanded[:, :3] - observed[:, :3])  # waypoint 0: the command at t


def test_labels_refuse_a_zero_quaternion() -> None:
    columns = reach_episode("ur5", seed=1, length=5)
    commanded = columns["action.ee_pose"].copy()
    commanded[3, 3:7] = 0.0
    with pytest.raises(td.TrainingDataError, match="frame 3 has a zero quaternion"):
        td.chunk_labels(columns["observation.ee_pose"], commanded, horizon=4)


@pytest.fixture(scope="module")
def reach_data(tmp_path_factory: pytest.TempPathFactory) -> ReachData:
    return make_reach_data(tmp_path_factory.mktemp("reach") / "data")


@pytest.fixture(scope="module")
def state_model(reach_data: ReachData, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    out = tmp_path_factory.mktemp("state") / "reach_state.onnx"
    config = TrainConfig(steps=300, val_fraction=0.2)
    result = train(reach_data.datasets, out, config, data_root=reach_data.root, log=lambda _line: None)
    assert result is not None
    return result


def test_revoked_operator_is_excluded_and_the_rest_is_traced(state_model: TrainResult, reach_data: ReachData) -> None:
    selection = state_model.selection
    assert [(selection.datasets[e.dataset].name, e.episode_index, e.operator) for e in selection.excluded] == [
        ("reach-ur5", 1, reach_data.bob)
    ]
    assert "'train' of consent" in selection.excluded[0].reason and "revoked" in selection.excluded[0].reason
    provenance = state_model.provenance
    assert {e["operator"] for e in provenance["episodes"]} == {reach_data.ada, "scripted"}
    assert len(provenance["episodes"]) == 11 and provenance["excluded"][0]["operator"] == reach_data.bob
    ada = provenance["operators"][reach_data.ada]
    assert ada["episodes"] == 4 and ada["frames"] == 120 and ada["kind"] == "human"
    assert ada["consent_ids"] == [reach_data.ada_consent]
    assert ada["scopes_at_training"] == ["export", "record", "train"]
    assert provenance["operators"]["scripted"]["consent_ids"] == []
    assert [d["content_hash"] for d in provenance["datasets"]] == [
        dataset_content_hash(reach_data.panda),
        dataset_content_hash(reach_data.ur5),
    ]
    episode = next(e for e in provenance["episodes"] if e["operator"] == reach_data.ada)
    assert episode["consent_at_recording"] == {"id": reach_data.ada_consent, "scopes": ["record", "train", "export"]}
    assert episode["consent_at_training"]["consent_id"] == reach_data.ada_consent
    assert episode["robot"] in ("panda", "ur5") and episode["episode_id"]
    assert {e["split"] for e in provenance["episodes"]} == {"train", "validation"}
    training = provenance["training"]
    assert (training["seed"], training["steps"], training["horizon"], training["policy"]) == (0, 300, 10, "state")
    software = provenance["software"]
    assert software["package"] == "robot_brain" and software["torch"] == torch.__version__
    assert "git_commit" in software and software["onnxruntime"] == ort.__version__
    assert provenance["result"]["steps"] == 300 and np.isfinite(provenance["result"]["final_loss"])
    text = json.dumps(provenance)
    assert ADA not in text and BOB not in text and "Lovelace" not in text  # pseudonyms only


def test_exported_model_carries_contract_and_provenance(state_model: TrainResult) -> None:
    assert state_model.model.is_file() and state_model.loss_curve.is_file()
    assert state_model.loss_curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not state_model.model.with_name("reach_state.checkpoint.pt").exists()
    assert state_model.export.max_abs_diff <= 1e-4 and state_model.export.frames > 0
    assert state_model.export.runtime_max_abs_diff <= 1e-4
    model = onnx.load(str(state_model.model))
    assert len(model.graph.initializer) > 0 and not list(state_model.model.parent.glob("*.data"))  # one file
    metadata = {p.key: p.value for p in model.metadata_props}
    embedded = json.loads(metadata[METADATA_KEY])
    assert embedded["result"]["onnx_check"]["max_abs_diff"] <= 1e-4
    assert embedded["episodes"] == state_model.provenance["episodes"]
    contract = json.loads(metadata[CONTRACT_KEY])
    assert contract["learned"] is True and contract["control_rate_hz"] == 10.0
    assert [(i["name"], i["role"]) for i in contract["inputs"]] == [
        ("target_point", "target_point"),
        ("ee_pose", "ee_pose"),
    ]
    (action,) = contract["outputs"]
    assert (action["action_space"], action["horizon"], action["dt"], action["shape"]) == (
        "ee_pose_delta",
        10,
        0.1,
        [1, 10, 7],
    )


@pytest.mark.parametrize("arm", ["panda", "ur5", "xarm7"])
def test_model_validates_on_arms_seen_and_unseen(state_model: TrainResult, arm: str) -> None:
    status, out, _ = cli("model", "validate", str(state_model.model), "--urdf", str(ARMS[arm]))
    assert status == 0, out
    assert out.startswith("OK: reach_state_bc@") and "through IK" in out


def test_model_inspect_shows_the_normalisation(state_model: TrainResult) -> None:
    status, out, _ = cli("model", "inspect", str(state_model.model), "--json")
    report = json.loads(out)
    assert status == 0 and report["mismatches"] == []
    normalization = report["contract"]["normalization"]
    assert set(normalization) == {"target_point", "ee_pose", "actions"}
    stats = json.loads((state_model.selection.datasets[0].root / "meta/stats.json").read_text())
    # Bob's episode is excluded: the input statistics aggregate the included episodes only.
    assert normalization["target_point"]["mean"] != pytest.approx(stats["observation.target_point"]["mean"])
    assert len(normalization["actions"]["std"]) == 7 and min(normalization["actions"]["std"]) >= 1e-3


def test_policy_runtime_runs_it_and_it_learned_to_reach(state_model: TrainResult, reach_data: ReachData) -> None:
    loaded = load_model(state_model.model)
    contract = loaded.require_contract()
    runtime = InferenceRuntime(loaded, RuntimeOptions(providers="cpu", warmup_runs=1))
    layout = DataLayout.resolve(reach_data.root)
    datasets = td.open_datasets(reach_data.datasets, layout)
    held_out = [e for e in state_model.provenance["episodes"] if e["split"] == "validation"]
    assert held_out
    errors, baseline = [], []
    action = contract.action_output
    for entry in held_out:
        frames = datasets[entry["dataset"]].episode_frames(entry["episode_index"])
        labels = td.chunk_labels(frames["observation.ee_pose"], frames["action.ee_pose"], action.horizon)
        for t in range(0, len(labels), 3):
            feeds = {  # what the policy node's observation assembly feeds
                "target_point": apply_normalization(
                    frames["observation.target_point"][t : t + 1], contract.normalization["target_point"]
                ),
                "ee_pose": apply_normalization(
                    frames["observation.ee_pose"][t : t + 1], contract.normalization["ee_pose"]
                ),
            }
            chunk = decode_chunk(runtime.run(feeds)["actions"], action, contract.normalization["actions"])
            errors.append(np.linalg.norm(chunk[:, :3] - labels[t, :, :3], axis=1).mean())
            baseline.append(np.linalg.norm(labels[t, :, :3], axis=1).mean())
    assert np.mean(errors) < 0.5 * np.mean(baseline), (np.mean(errors), np.mean(baseline))


def test_export_matches_torch_and_a_failed_check_writes_nothing(tmp_path: Path) -> None:
    torch.manual_seed(3)
    constants = StateConstants(np.zeros(3), np.ones(3), np.zeros(7), np.ones(7), 0.2)
    policy = StatePolicy(5, constants, hidden=32).eval()
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(20, 3)).astype(np.float32), rng.normal(size=(20, 7)).astype(np.float32)]
    normalization = {"actions": {"mean": [0.0] * 7, "std": [1.0] * 7}}
    contract = policy_contract(
        name="t",
        description="test",
        input_names=StatePolicy.input_names,
        horizon=5,
        dt=0.1,
        control_rate_hz=10,
        normalization=normalization,
    )
    provenance = {"format": "robot_brain.model_provenance/1", "result": {}}
    report = export_policy(policy, StatePolicy.input_names, inputs, contract, provenance, tmp_path / "p.onnx")
    session = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = policy(*map(torch.from_numpy, inputs)).numpy()
    produced = np.concatenate(
        [
            session.run(None, {"target_point": inputs[0][i : i + 1], "ee_pose": inputs[1][i : i + 1]})[0]
            for i in range(20)
        ]
    )
    assert np.max(np.abs(produced - expected)) <= 1e-4 and report.max_abs_diff == pytest.approx(
        np.max(np.abs(produced - expected)), abs=1e-7
    )
    with pytest.raises(ExportError, match="expected onnxruntime to match PyTorch within 0"):
        export_policy(policy, StatePolicy.input_names, inputs, contract, provenance, tmp_path / "q.onnx", tolerance=0.0)
    assert not (tmp_path / "q.onnx").exists()


def test_nothing_consented_left_is_one_line_and_exit_2(reach_data: ReachData, tmp_path: Path) -> None:
    data = copy_data_root(reach_data, tmp_path / "root")
    only_bob = data.root / "datasets" / "bob-only"
    write_reach_dataset(only_bob, "ur5", [(data.bob, data.bob_consent, ("record", "train"))] * 2, length=8)
    status, out, err = cli("train", str(only_bob), "--out", str(tmp_path / "m.onnx"), "--data-root", str(data.root))
    assert status == 2 and out == ""
    assert err.count("\n") == 1  # one line, no traceback
    assert "error: no episode may be used for training: all 2 excluded ('train' of consent" in err
    assert not (tmp_path / "m.onnx").exists()


def test_forgotten_operator_is_excluded_too(reach_data: ReachData, tmp_path: Path) -> None:
    data = copy_data_root(reach_data, tmp_path / "root")
    ConsentRegistry(data.root).forget(data.ada)
    selection = td.screen_datasets(td.open_datasets(data.datasets, DataLayout(data.root)), DataLayout(data.root))
    assert {e.operator for e in selection.included} == {"scripted"}
    assert {e.operator for e in selection.excluded} == {data.ada, data.bob}


def test_tampered_or_unprovenanced_datasets_are_refused(reach_data: ReachData, tmp_path: Path) -> None:
    data = copy_data_root(reach_data, tmp_path / "root")
    layout = DataLayout(data.root)
    (data.panda / "meta" / "provenance.json").unlink()
    with pytest.raises(td.TrainingDataError, match="refusing to train on data of unknown consent"):
        td.screen_datasets(td.open_datasets([data.panda], layout), layout)
    data_file = next((data.ur5 / "data").rglob("*.parquet"))
    data_file.write_bytes(data_file.read_bytes() + b"\0")
    status, _, err = cli("train", str(data.ur5), "--out", str(tmp_path / "m.onnx"), "--data-root", str(data.root))
    assert status == 2 and "content hash" in err and "not what its provenance describes" in err


def test_selection_travels_to_other_ranks_without_a_registry(reach_data: ReachData, tmp_path: Path) -> None:
    layout = DataLayout(reach_data.root)
    opened = td.open_datasets(reach_data.datasets, layout)
    selection = td.screen_datasets(opened, layout)
    document = json.loads(json.dumps(td.selection_document(selection)))
    rebuilt = td.selection_from_document(td.open_datasets(reach_data.datasets, DataLayout(tmp_path)), document)
    assert rebuilt.included == selection.included and rebuilt.excluded == selection.excluded
    assert rebuilt.datasets == selection.datasets and rebuilt.checked_at == selection.checked_at


def test_edited_provenance_is_refused_naming_the_file(reach_data: ReachData, tmp_path: Path) -> None:
    """Relabel a person's episodes 'scripted' in meta/provenance.json: the seal no longer matches."""
    data = copy_data_root(reach_data, tmp_path / "root")
    provenance = data.panda / "meta" / "provenance.json"
    provenance.write_text(provenance.read_text(encoding="utf-8").replace(data.ada, "scripted"), encoding="utf-8")
    status, _, err = cli("train", str(data.panda), "--out", str(tmp_path / "m.onnx"), "--data-root", str(data.root))
    assert status == 2 and err.count("\n") == 1, err
    assert str(provenance) in err and "does not match its seal" in err
    (data.ur5 / "meta" / "provenance.seal").unlink()
    status, _, err = cli("train", str(data.ur5), "--out", str(tmp_path / "m.onnx"), "--data-root", str(data.root))
    assert status == 2 and "expected a seal, found none" in err
    assert not (tmp_path / "m.onnx").exists()


def test_deleting_the_stale_marker_does_not_make_a_purged_dataset_trainable(reach_data: ReachData,
                                                                             tmp_path: Path) -> None:
    data = copy_data_root(reach_data, tmp_path / "root")
    report = purge_operator(data.root, data.ada)
    assert {d.action for d in report.datasets} == {"stale"}
    (data.panda / STALE_MARKER).unlink()
    status, _, err = cli("train", str(data.panda), "--out", str(tmp_path / "m.onnx"), "--data-root", str(data.root))
    assert status == 2 and "a purge marked this dataset stale (audit entry" in err, err
