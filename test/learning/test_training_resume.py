"""Interrupt-safe training: a stopped run resumed from its checkpoint ends with bitwise the same weights."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers.training_support import ReachData, make_reach_data
from onnx import numpy_helper

from robot_brain.learning import training_data as td
from robot_brain.learning.training import TrainConfig, prepare_data, train
from robot_brain.learning.training_config import OutputPaths, TrainingError
from robot_brain.learning.training_loop import LoopState, StopRequest, load_checkpoint, run_loop
from robot_brain.storage.paths import DataLayout


@pytest.fixture(scope="module")
def reach_data(tmp_path_factory: pytest.TempPathFactory) -> ReachData:
    return make_reach_data(tmp_path_factory.mktemp("reach") / "data", camera=False, length=20)


class _StopAt:
    """A progress sink that requests a stop after ``step``, as a Ctrl-C between two steps would.

    The ranks agree on stopping in the all-reduce after a step, so the step under way when the
    request comes (here ``step + 1``) is finished first.
    """

    def __init__(self, stop: StopRequest, step: int) -> None:
        self.stop, self.step = stop, step

    def update(self, step: int, loss: float, extra: str = "") -> None:
        if step == self.step:
            self.stop.requested = True


def _same_state(a: LoopState, b: LoopState) -> bool:
    assert a.model_state is not None and b.model_state is not None
    return all(torch.equal(a.model_state[k], b.model_state[k]) for k in a.model_state)


def test_stop_checkpoint_resume_gives_the_uninterrupted_weights(reach_data: ReachData, tmp_path: Path) -> None:
    layout = DataLayout(reach_data.root)
    opened = td.open_datasets(reach_data.datasets, layout)
    config = TrainConfig(steps=40, eval_every=10, val_fraction=0.2, warmup_steps=5)
    data = prepare_data(opened, td.screen_datasets(opened, layout), config)
    uninterrupted = run_loop(data, config, OutputPaths.for_model(tmp_path / "a.onnx"), None, StopRequest())
    paths = OutputPaths.for_model(tmp_path / "b.onnx")
    stop = StopRequest()
    stopped = run_loop(data, config, paths, None, stop, progress=_StopAt(stop, 17))  # type: ignore[arg-type]
    assert stopped.step == 18 and not _same_state(stopped, uninterrupted)
    saved = load_checkpoint(paths.checkpoint, data.fingerprint)
    assert saved.step == 18 and _same_state(saved, stopped) and saved.losses == stopped.losses
    resumed = run_loop(data, config, paths, saved, StopRequest())
    assert resumed.step == 40
    assert _same_state(resumed, uninterrupted)
    assert resumed.losses == uninterrupted.losses and resumed.validation == uninterrupted.validation

    other = dict(data.fingerprint, config=replace(config, lr=5e-4).weight_fingerprint())
    with pytest.raises(TrainingError, match=r"settings differ from the interrupted run: lr 0\.001 -> 0\.0005"):
        load_checkpoint(paths.checkpoint, other)
    fewer = dict(data.fingerprint, episodes=data.fingerprint["episodes"][1:])
    with pytest.raises(TrainingError, match="consented episodes changed since the run started"):
        load_checkpoint(paths.checkpoint, fewer)


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_ctrl_c_then_resume_on_the_command_line(reach_data: ReachData, tmp_path: Path) -> None:
    out = tmp_path / "reach.onnx"
    steps = 400
    command = [sys.executable, "-m", "robot_brain.cli.main", "train", *map(str, reach_data.datasets)]
    command += ["--out", str(out), "--data-root", str(reach_data.root), "--steps", str(steps), "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    seen = []
    for line in process.stderr:  # plain progress lines (stderr is a pipe): the first comes after step 1
        seen.append(line)
        if f"step 1/{steps}" in line:
            process.send_signal(signal.SIGINT)
            break
    stdout, rest = process.communicate(timeout=300)
    stderr = "".join(seen) + rest
    assert process.returncode == 130, stderr
    match = re.search(rf"interrupted at step (\d+)/{steps}; checkpoint saved to (\S+): rerun the same command", stderr)
    assert match and 1 <= int(match.group(1)) < steps, stderr
    assert Path(match.group(2)) == tmp_path / "reach.checkpoint.pt" and Path(match.group(2)).is_file()
    assert stdout == "" and not out.exists() and "Traceback" not in stderr
    assert (tmp_path / "reach.loss.png").is_file()  # the curve so far

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from step {match.group(1)}/{steps}" in resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["steps"] == steps and summary["onnx_check"]["max_abs_diff"] <= 1e-4
    assert not (tmp_path / "reach.checkpoint.pt").exists()

    reference = train(
        reach_data.datasets,
        tmp_path / "reference.onnx",
        TrainConfig(steps=steps),
        data_root=reach_data.root,
        log=lambda _line: None,
    )
    assert reference is not None and reference.final_loss == summary["final_loss"]
    resumed_weights, reference_weights = _initializers(out), _initializers(reference.model)
    assert resumed_weights.keys() == reference_weights.keys()
    assert all(np.array_equal(resumed_weights[k], reference_weights[k]) for k in resumed_weights)


def test_a_leftover_checkpoint_is_never_overwritten_silently(reach_data: ReachData, tmp_path: Path) -> None:
    (tmp_path / "m.checkpoint.pt").write_bytes(b"an unfinished run")
    with pytest.raises(TrainingError, match="continue it with --resume, or delete it to start over"):
        train(reach_data.datasets, tmp_path / "m.onnx", TrainConfig(steps=5), data_root=reach_data.root)
    with pytest.raises(TrainingError, match="expected a training checkpoint, found an unreadable file"):
        train(
            reach_data.datasets,
            tmp_path / "m.onnx",
            TrainConfig(steps=5),
            data_root=reach_data.root,
            resume=True,
            log=lambda _line: None,
        )
    with pytest.raises(TrainingError, match="--resume: expected a checkpoint at"):
        train(reach_data.datasets, tmp_path / "n.onnx", TrainConfig(steps=5), data_root=reach_data.root, resume=True)
