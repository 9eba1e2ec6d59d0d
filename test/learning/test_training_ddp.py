"""DistributedDataParallel on CPU: two gloo processes train the model one process trains.

Why the tolerance can be tight: every rank draws the same *global* batch from the shared
seeded generator and takes its half; DDP averages the two half-batch mean gradients, which is
the full-batch mean gradient of the single process. The only difference is the order of float32
additions (two partial sums, then gloo's all-reduce), a relative error of ~1e-7 per step that the
optimiser carries along. Measured after 60 steps: final and held-out losses agree to ~1e-7
relative. A relative tolerance of 1e-3 leaves room for that rounding to grow on other machines
while failing on any real difference: ranks training on their own batches, a missing gradient
average, or a lost step change the loss by several percent.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers.training_support import ReachData, make_reach_data

from robot_brain.inference.model import load_model
from robot_brain.inference.observation import apply_normalization
from robot_brain.inference.runtime import InferenceRuntime, RuntimeOptions
from robot_brain.learning import training_data as td
from robot_brain.learning.training import TrainConfig, train
from robot_brain.storage.paths import DataLayout

TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def reach_data(tmp_path_factory: pytest.TempPathFactory) -> ReachData:
    return make_reach_data(tmp_path_factory.mktemp("reach") / "data", camera=False, length=20)


def _chunks(model: str, frames: dict[str, np.ndarray]) -> np.ndarray:
    loaded = load_model(model)
    contract = loaded.require_contract()
    runtime = InferenceRuntime(loaded, RuntimeOptions(providers="cpu", warmup_runs=0))
    outputs = []
    for t in range(len(frames["observation.ee_pose"])):
        feeds = {
            "target_point": apply_normalization(
                frames["observation.target_point"][t : t + 1], contract.normalization["target_point"]
            ),
            "ee_pose": apply_normalization(frames["observation.ee_pose"][t : t + 1], contract.normalization["ee_pose"]),
        }
        outputs.append(runtime.run(feeds)["actions"].copy())
    return np.concatenate(outputs)


def test_two_gloo_processes_match_single_process_training(reach_data: ReachData, tmp_path_factory) -> None:
    folder = tmp_path_factory.mktemp("ddp")
    config = TrainConfig(steps=60, batch_size=64, val_fraction=0.2)
    single = train(reach_data.datasets, folder / "single.onnx", config, data_root=reach_data.root, log=lambda _: None)
    double = train(
        reach_data.datasets,
        folder / "ddp.onnx",
        replace(config, nproc=2),
        data_root=reach_data.root,
        log=lambda _: None,
    )
    assert single is not None and double is not None
    assert double.steps == single.steps == 60 and double.provenance["training"]["nproc"] == 2
    assert double.export.max_abs_diff <= 1e-4
    assert abs(double.final_loss - single.final_loss) <= TOLERANCE * single.final_loss
    assert abs(double.validation_loss - single.validation_loss) <= TOLERANCE * single.validation_loss
    # The losses fell: both really trained (not two copies of an untrained model).
    for result in (single, double):
        assert result.provenance["result"]["final_loss"] < 0.5 * result.provenance["result"]["first_loss"]

    # And the two models act alike on held-out frames, in normalised action units.
    layout = DataLayout(reach_data.root)
    dataset = td.open_datasets([reach_data.panda], layout)[0]
    frames = dataset.episode_frames(0)
    assert np.max(np.abs(_chunks(str(double.model), frames) - _chunks(str(single.model), frames))) < 1e-2
