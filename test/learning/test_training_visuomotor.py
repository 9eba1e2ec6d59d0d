"""The visuomotor policy: camera frames decoded from the dataset's video, preprocessed as the policy node does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.training_support import ReachData, cli, make_reach_data
from robots import ARMS

from robot_brain.inference.model import load_model
from robot_brain.inference.observation import apply_normalization, decode_chunk
from robot_brain.inference.runtime import InferenceRuntime, RuntimeOptions
from robot_brain.learning import training_data as td
from robot_brain.learning.training import TrainConfig, TrainResult, train
from robot_brain.learning.training_loop import normalise_images
from robot_brain.perception.preprocess import Preprocessor
from robot_brain.storage.paths import DataLayout


@pytest.fixture(scope="module")
def reach_data(tmp_path_factory: pytest.TempPathFactory) -> ReachData:
    return make_reach_data(tmp_path_factory.mktemp("reach") / "data", length=20)


@pytest.fixture(scope="module")
def visuomotor(reach_data: ReachData, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    out = tmp_path_factory.mktemp("visuomotor") / "reach_visuomotor.onnx"
    config = TrainConfig(policy="visuomotor", image_size=32, steps=30, batch_size=32, val_fraction=0.2)
    result = train(reach_data.datasets, out, config, data_root=reach_data.root, log=lambda _line: None)
    assert result is not None
    return result


@pytest.mark.parametrize("arm", ["panda", "ur5"])
def test_visuomotor_model_validates_on_two_arms(visuomotor: TrainResult, arm: str) -> None:
    status, out, _ = cli("model", "validate", str(visuomotor.model), "--urdf", str(ARMS[arm]))
    assert status == 0 and out.startswith("OK: reach_visuomotor_bc@"), out


def test_visuomotor_export_matches_and_declares_its_image_spec(visuomotor: TrainResult) -> None:
    assert visuomotor.export.max_abs_diff <= 1e-4 and visuomotor.export.runtime_max_abs_diff <= 1e-4
    contract = load_model(visuomotor.model).require_contract()
    assert [(s.name, s.role) for s in contract.inputs] == [
        ("image", "image"),
        ("target_point", "target_point"),
        ("ee_pose", "ee_pose"),
    ]
    image = contract.inputs[0]
    assert image.shape == (1, 3, 32, 32) and image.topic == "/camera/image_raw"
    spec = image.image
    assert spec is not None and (spec.width, spec.height, spec.channel_order, spec.layout) == (32, 32, "rgb", "chw")
    assert spec.scale == pytest.approx(1 / 255)
    recorded = visuomotor.provenance["normalization"]["image"]
    assert list(spec.mean) == pytest.approx(recorded["mean"]) and list(spec.std) == pytest.approx(recorded["std"])
    assert recorded["camera"] == "observation.images.camera"


def test_training_images_are_what_the_policy_node_feeds(visuomotor: TrainResult, reach_data: ReachData) -> None:
    """Frames decoded from the video, resized for training, then normalised, equal the node's preprocessing."""
    contract = load_model(visuomotor.model).require_contract()
    spec = contract.inputs[0].image
    assert spec is not None
    dataset = td.open_datasets([reach_data.panda], DataLayout(reach_data.root))[0]
    frames = dataset.video_frames(0, "camera")[[0, 7, 19]]
    resize = td.frame_resizer(32)
    stored = torch.from_numpy(np.stack([resize(frame) for frame in frames]))
    mean = torch.tensor(spec.mean, dtype=torch.float32).reshape(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).reshape(1, 3, 1, 1)
    trained_on = normalise_images(stored, mean, std).numpy()
    node = Preprocessor(spec)
    for index, frame in enumerate(frames):
        np.testing.assert_allclose(trained_on[index : index + 1], node(frame, "rgb8"), atol=1e-5)


def test_policy_runtime_runs_the_visuomotor_model(visuomotor: TrainResult, reach_data: ReachData) -> None:
    loaded = load_model(visuomotor.model)
    contract = loaded.require_contract()
    runtime = InferenceRuntime(loaded, RuntimeOptions(providers="cpu", warmup_runs=1))
    dataset = td.open_datasets([reach_data.ur5], DataLayout(reach_data.root))[0]
    frame = dataset.video_frames(0, "camera")[5]
    columns = dataset.episode_frames(0)
    spec = contract.inputs[0].image
    assert spec is not None
    feeds = {
        "image": Preprocessor(spec)(frame, "rgb8"),
        "target_point": apply_normalization(
            columns["observation.target_point"][5:6], contract.normalization["target_point"]
        ),
        "ee_pose": apply_normalization(columns["observation.ee_pose"][5:6], contract.normalization["ee_pose"]),
    }
    chunk = decode_chunk(runtime.run(feeds)["actions"], contract.action_output, contract.normalization["actions"])
    assert chunk.shape == (10, 7) and np.isfinite(chunk).all()
    np.testing.assert_allclose(np.linalg.norm(chunk[:, 3:7], axis=1), 1.0)


def test_visuomotor_without_the_target_point(reach_data: ReachData, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("pixels") / "pixels.onnx"
    config = TrainConfig(policy="visuomotor", image_size=16, steps=4, batch_size=16, use_target=False)
    result = train([reach_data.panda], out, config, data_root=reach_data.root, log=lambda _line: None)
    assert result is not None
    contract = load_model(out).require_contract()
    assert [s.name for s in contract.inputs] == ["image", "ee_pose"]
    assert set(contract.normalization) == {"ee_pose", "actions"}
    status, _, _ = cli("model", "validate", str(out), "--urdf", str(ARMS["panda"]))
    assert status == 0
