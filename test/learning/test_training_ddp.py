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

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from helpers.training_support import ReachData, make_reach_data

from robot_brain.inference.model import load_model
from robot_brain.inference.observation import apply_normalization
from robot_brain.inference.runtime import InferenceRuntime, RuntimeOptions
from robot_brain.learning import training_data as td
from robot_brain.learning.model_provenance import read_model_provenance
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


def _torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node 2`` (torch's own launcher, loopback rendezvous) of robot-brain."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "robot_brain.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_two_torchrun_ranks_match_single_process_training(reach_data: ReachData, tmp_path_factory) -> None:
    """Under torchrun the ranks get rank 0's consent decisions as JSON (no pickle) and train the same model;
    the provenance says two ranks, and a batch the ranks cannot split evenly is refused before training."""
    folder = tmp_path_factory.mktemp("torchrun")
    config = TrainConfig(steps=60, batch_size=64, val_fraction=0.2)
    single = train(reach_data.datasets, folder / "single.onnx", config, data_root=reach_data.root, log=lambda _: None)
    assert single is not None
    common = [*map(str, reach_data.datasets), "--data-root", str(reach_data.root), "--steps", "60",
              "--val-fraction", "0.2", "--checkpoint-every", "3600"]
    result = _torchrun("train", *common, "--batch", "64", "--out", str(folder / "torchrun.onnx"), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)  # rank 0's summary; the other rank prints nothing
    assert abs(summary["final_loss"] - single.final_loss) <= TOLERANCE * single.final_loss
    assert abs(summary["validation_loss"] - single.validation_loss) <= TOLERANCE * single.validation_loss
    provenance = read_model_provenance(folder / "torchrun.onnx").provenance
    assert provenance["training"]["nproc"] == 2
    refused = _torchrun("train", *common, "--batch", "63", "--out", str(folder / "odd.onnx"))
    assert refused.returncode != 0 and "expected a multiple of torchrun's 2 ranks" in refused.stderr
    assert not (folder / "odd.onnx").exists()


def _rank_main(index: int, init_file: str, checkpoint: str, fingerprint: dict, out_dir: str) -> None:
    from helpers.broadcast_ranks import run_rank

    run_rank(index, init_file, checkpoint, fingerprint, f"{out_dir}/rank{index}.json")


def test_rank_zeros_decisions_and_checkpoint_reach_the_other_rank_without_pickle(tmp_path) -> None:
    """What torchrun's rank 0 sends: JSON decisions, and a checkpoint's bytes read back with weights_only."""
    import torch
    import torch.multiprocessing as mp

    from robot_brain.learning.training_loop import LoopState, save_checkpoint

    fingerprint = {"datasets": ["abc"], "policy": "state"}
    checkpoint = tmp_path / "model.checkpoint.pt"
    state = LoopState(step=7, losses=[0.5, 0.25], model_state={"w": torch.arange(6.0).reshape(2, 3)})
    save_checkpoint(checkpoint, state, fingerprint)
    mp.spawn(_rank_main, args=(str(tmp_path / "init"), str(checkpoint), fingerprint, str(tmp_path)), nprocs=2,
             join=True)
    received = [json.loads((tmp_path / f"rank{index}.json").read_text()) for index in (0, 1)]
    assert received[0] == received[1]
    assert received[1]["decisions"] == {"included": [1, 2, 3], "who": "op-0123456789abcdef"}
    assert received[1]["step"] == 7 and received[1]["losses"] == [0.5, 0.25]
    assert received[1]["weights"] == {"w": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]}
