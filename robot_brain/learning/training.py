"""Behaviour cloning on LeRobot datasets, exported to ONNX with its contract and provenance (ROS-free).

::

    from robot_brain.learning.training import TrainConfig, train

    result = train(["datasets/reach-panda", "datasets/reach-ur5"], "out/reach.onnx",
                   TrainConfig(policy="state", steps=2000), data_root="~/.local/share/robot_brain")
    result.model, result.final_loss, result.export.max_abs_diff

The steps, each in its own module:

1. :mod:`training_data`: open the datasets, check every episode's ``train`` consent **now**
   (excluded episodes listed with the registry's reason; nothing left is an error), build the
   ``ee_pose_delta`` chunk labels, the normalisation statistics, the resized images.
2. :mod:`policies`: the PyTorch module (``state`` MLP or ``visuomotor`` CNN), seeded.
3. :mod:`training_loop` (settings in :mod:`training_config`): AdamW, warm-up then cosine decay
   to 10 % of ``lr``, MSE on normalised actions. Batches are drawn from one seeded
   ``torch.Generator`` whose state is checkpointed, so a run interrupted (Ctrl-C, SIGTERM) and
   resumed (``resume=True``) ends with **bitwise the same weights** as an uninterrupted run: the
   checkpoint holds the model, the optimiser, the generator, the step and the loss history,
   written atomically at the interrupt, every ``checkpoint_every_s`` and at the end. (Bitwise on
   CPU with the same ``threads``, torch build and data; CUDA kernels are not all deterministic,
   so there the equality is up to float rounding.)
4. ``nproc > 1``: DistributedDataParallel (gloo on CPU, NCCL on CUDA), one process per rank
   through ``torch.multiprocessing`` (from a script, guard the call with
   ``if __name__ == "__main__":``, as ``spawn`` requires); or ``torchrun`` across hosts
   (``env://``, detected from ``WORLD_SIZE``): rank 0 alone checks consent and broadcasts its
   decisions as JSON, and a checkpoint to resume as its bytes, read with ``weights_only`` (the
   other hosts need the datasets, not the registry, which holds names; nothing crosses as a
   pickle), and alone writes checkpoints and the model. The *global* batch is drawn from the
   shared generator and each rank takes its slice of ``batch_size / nproc`` samples (a batch the
   ranks cannot split evenly is refused; under torchrun ``nproc`` is its world size, which the
   provenance records); DDP averages the gradients, so
   each step's gradient is the single-process gradient up to float summation order: N
   processes train the same model as one. (Faster only when a step's compute outweighs the
   all-reduce: not for the small state MLP on a shared 2-core machine.)
5. :mod:`onnx_export`: export, check against PyTorch on held-out frames (≤ 1e-4) and through
   the policy node's runtime, embed contract and provenance (:mod:`model_provenance`), write;
   then a ``model.trained`` audit entry (pseudonyms only) when the site has a consent registry.

Outputs beside ``MODEL.onnx``: ``MODEL.loss.png`` (loss curve) and, while a run is unfinished,
``MODEL.checkpoint.pt`` (removed once the model is written). The checkpoint is read with
``torch.load(weights_only=True)``: tensors and plain values only, never arbitrary pickles.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_brain.consent.events import append_audit
from robot_brain.errors import UserError
from robot_brain.learning import training_data as td
from robot_brain.learning.model_provenance import build_model_provenance, software_record
from robot_brain.learning.onnx_export import ExportReport, export_policy, policy_contract
from robot_brain.learning.policies import StateConstants
from robot_brain.learning.training_config import (
    OutputPaths,
    PreparedData,
    TrainConfig,
    TrainingError,
    TrainingInterruptedError,
)
from robot_brain.learning.training_loop import (
    Batches,
    LoopState,
    Rank,
    StopRequest,
    broadcast_checkpoint,
    broadcast_json,
    load_checkpoint,
    new_model,
    process_group,
    rank_device,
    run_loop,
    run_ranked,
    run_spawned,
    torchrun_rank,
)
from robot_brain.learning.training_progress import ProgressBar, format_duration, write_loss_curve
from robot_brain.storage.files import DataFileError
from robot_brain.storage.paths import DataLayout

__all__ = [
    "OutputPaths",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "TrainingInterruptedError",
    "format_summary",
    "prepare_data",
    "train",
]

CHECK_FRAMES = 256
"""Held-out frames the ONNX export is checked on (all of them when fewer)."""


def _normalise(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` in float32, the arithmetic of the runtime's ``apply_normalization``."""
    values = values.astype(np.float32)
    return (values - mean.astype(np.float32)) / std.astype(np.float32)


def prepare_data(datasets: Sequence[Any], selection: td.Selection, config: TrainConfig) -> PreparedData:
    """Arrays, split, statistics and normalisation for ``config`` (see :mod:`training_data`)."""
    visuomotor = config.policy == "visuomotor"
    arrays = td.load_arrays(
        datasets,
        selection,
        config.horizon,
        config.stride,
        camera=config.camera if visuomotor else None,
        image_size=config.image_size if visuomotor else None,
    )
    train_episodes, validation_episodes = td.split_episodes(len(selection.included), config.val_fraction, config.seed)
    train_mask = np.isin(arrays.episode, train_episodes)
    validation_mask = np.isin(arrays.episode, validation_episodes)
    stats = _statistics(datasets, selection, config, arrays, train_mask)
    inputs = {
        "target_point": _normalise(arrays.target_point, stats.target.mean, stats.target_std),
        "ee_pose": _normalise(arrays.ee_pose, stats.pose.mean, stats.pose_std),
        "labels": _normalise(arrays.labels, stats.labels.mean, stats.labels.std),
    }
    if visuomotor:
        assert arrays.images is not None
        inputs["images"] = arrays.images
    fingerprint = _fingerprint(selection, config, validation_episodes)
    normalization = _normalization_record(stats)
    return PreparedData(
        train=_tensors(inputs, train_mask),
        validation=_tensors(inputs, validation_mask),
        input_names=_input_names(config),
        constants=stats.constants,
        label_mean=stats.labels.mean,
        label_std=stats.labels.std,
        image_mean=stats.image_mean,
        image_std=stats.image_std,
        fingerprint=fingerprint,
        normalization=normalization,
    )


@dataclass(frozen=True)
class _Statistics:
    """What :func:`prepare_data` normalises with: input statistics (floored stds), label statistics, constants."""

    target: td.FeatureStatistics
    target_std: np.ndarray
    pose: td.FeatureStatistics
    pose_std: np.ndarray
    labels: td.FeatureStatistics
    relative_scale: float
    constants: StateConstants
    camera_key: str | None
    image_mean: np.ndarray | None
    image_std: np.ndarray | None
    image_source: str | None


def _statistics(
    datasets: Sequence[Any],
    selection: td.Selection,
    config: TrainConfig,
    arrays: td.TrainingArrays,
    train_mask: np.ndarray,
) -> _Statistics:
    """The input, label and (visuomotor) image statistics, and the state policy's constants."""
    visuomotor = config.policy == "visuomotor"
    features = [td.FEATURE_TARGET_POINT, td.FEATURE_EE_POSE]
    camera_key = td.resolve_camera(datasets[0], config.camera) if visuomotor else None
    if camera_key is not None:
        features.append(camera_key)
    statistics = td.input_statistics(datasets, selection, features)
    target_stats, pose_stats = statistics[td.FEATURE_TARGET_POINT], statistics[td.FEATURE_EE_POSE]
    target_std = td.floored(target_stats.std, td.INPUT_STD_FLOOR)
    pose_std = td.floored(pose_stats.std, td.INPUT_STD_FLOOR)
    labels = td.label_statistics(arrays.labels[train_mask])

    relative = arrays.target_point[train_mask] - arrays.ee_pose[train_mask, :3]
    relative_scale = float(max(np.sqrt(np.mean(relative.astype(np.float64) ** 2)), 1e-3))
    constants = StateConstants(target_stats.mean, target_std, pose_stats.mean, pose_std, relative_scale)

    image_mean = image_std = image_source = None
    if visuomotor:
        assert camera_key is not None
        image_mean = statistics[camera_key].mean.reshape(-1)[:3]
        image_std = td.floored(statistics[camera_key].std.reshape(-1)[:3], td.STD_FLOOR)
        image_source = statistics[camera_key].source
    return _Statistics(
        target=target_stats,
        target_std=target_std,
        pose=pose_stats,
        pose_std=pose_std,
        labels=labels,
        relative_scale=relative_scale,
        constants=constants,
        camera_key=camera_key,
        image_mean=image_mean,
        image_std=image_std,
        image_source=image_source,
    )


def _input_names(config: TrainConfig) -> tuple[str, ...]:
    """The model's inputs, in order, for ``config``'s policy and ``use_target``."""
    visuomotor = config.policy == "visuomotor"
    return (
        ("image", "target_point", "ee_pose")
        if visuomotor and config.use_target
        else (("image", "ee_pose") if visuomotor else ("target_point", "ee_pose"))
    )


def _tensors(inputs: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, torch.Tensor]:
    """The rows of every input selected by ``mask``, as contiguous tensors."""
    return {key: torch.from_numpy(np.ascontiguousarray(value[mask])) for key, value in inputs.items()}


def _fingerprint(selection: td.Selection, config: TrainConfig, validation_episodes: np.ndarray) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: settings, datasets, episodes, held-out split, torch version."""
    included = [
        {"dataset": selection.datasets[e.dataset].content_hash, "episode_index": e.episode_index}
        for e in selection.included
    ]
    return {
        "config": config.weight_fingerprint(),
        "datasets": [d.content_hash for d in selection.datasets],
        "episodes": included,
        "validation_episodes": [int(v) for v in validation_episodes],
        "torch": torch.__version__,
    }


def _normalization_record(stats: _Statistics) -> dict[str, Any]:
    """The contract's normalisation and where each statistic came from (the provenance's ``normalization``)."""
    normalization: dict[str, Any] = {
        "contract": {
            "target_point": {"mean": stats.target.mean.tolist(), "std": stats.target_std.tolist()},
            "ee_pose": {"mean": stats.pose.mean.tolist(), "std": stats.pose_std.tolist()},
            "actions": {"mean": stats.labels.mean.tolist(), "std": stats.labels.std.tolist()},
        },
        "sources": {
            "target_point": stats.target.source,
            "ee_pose": stats.pose.source,
            "actions": stats.labels.source + " (stats.json holds absolute poses, not deltas)",
        },
        "relative_scale_m": stats.relative_scale,
    }
    if stats.camera_key is not None:
        assert stats.image_mean is not None and stats.image_std is not None
        normalization["image"] = {
            "camera": stats.camera_key,
            "mean": stats.image_mean.tolist(),
            "std": stats.image_std.tolist(),
            "source": stats.image_source,
        }
    return normalization


# --------------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    """A finished run: the model, its provenance, and the numbers worth reporting."""

    model: Path
    sha256: str
    loss_curve: Path
    provenance: dict[str, Any]
    selection: td.Selection
    steps: int
    final_loss: float
    validation_loss: float
    validation_position_error_mm: float
    train_seconds: float
    steps_per_second: float
    export: ExportReport
    frames_train: int
    frames_validation: int

    def summary(self) -> dict[str, Any]:
        """The JSON the CLI prints (``robot-brain train --json``)."""
        return {
            "model": str(self.model),
            "sha256": self.sha256,
            "loss_curve": str(self.loss_curve),
            "policy": self.provenance["model"]["policy"],
            "datasets": self.provenance["datasets"],
            "episodes": len(self.selection.included),
            "excluded": [
                {
                    "dataset": self.selection.datasets[e.dataset].name,
                    "episode_index": e.episode_index,
                    "episode_id": e.episode_id,
                    "operator": e.operator,
                    "reason": e.reason,
                }
                for e in self.selection.excluded
            ],
            "frames": {"train": self.frames_train, "validation": self.frames_validation},
            "steps": self.steps,
            "final_loss": self.final_loss,
            "validation_loss": self.validation_loss,
            "validation_position_error_mm": self.validation_position_error_mm,
            "train_seconds": self.train_seconds,
            "steps_per_second": self.steps_per_second,
            "onnx_check": self.export.to_dict(),
        }


def _smoothed_final_loss(losses: Sequence[float]) -> float:
    """Mean of the last 5 % of step losses (at least one, at most 100): the per-step loss is noisy."""
    if not losses:
        return math.nan
    window = max(1, min(100, len(losses) // 20))
    return float(np.mean(losses[-window:]))


def train(
    datasets: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    data_root: str | os.PathLike[str] | DataLayout | None = None,
    resume: bool = False,
    at: datetime | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult | None:
    """Screen, prepare, train (optionally distributed), export and check; see the module docstring.

    Returns None on ``torchrun`` ranks other than 0 (rank 0 writes the model).

    Raises :class:`TrainingInterruptedError` after a stop request (checkpoint saved), a
    :class:`~robot_brain.errors.UserError` for anything the user can fix. ``log`` receives
    one-line notes (excluded episodes, resume, export); default: stderr.
    """
    say = log or (lambda text: print(text, file=sys.stderr))
    config = config or TrainConfig()
    config.check()
    layout = DataLayout.resolve(data_root)
    paths = OutputPaths.for_model(out)
    distributed = torchrun_rank()
    if distributed is not None:
        if config.nproc > 1:
            raise TrainingError("started by torchrun: leave --nproc at 1 (torchrun's --nproc-per-node sets the ranks)")
        if config.batch_size % distributed.world:
            raise TrainingError(
                f"batch: expected a multiple of torchrun's {distributed.world} ranks (each takes an equal slice; "
                f"the rest would be dropped), found {config.batch_size}"
            )
        # The ranks are torchrun's: the configuration (and so the model's provenance) says how many.
        config = replace(config, nproc=distributed.world)
        return _train_torchrun(datasets, paths, config, layout, resume, at, say, distributed)
    _check_checkpoint_use(paths, resume)
    opened = td.open_datasets(datasets, layout)
    selection = _screen(opened, layout, config, at, say)
    data = prepare_data(opened, selection, config)
    resume_state = _resume_state(paths, data, config, say) if resume else None
    stop = StopRequest()
    with stop.installed():
        if config.nproc > 1 and not (resume_state is not None and resume_state.step >= config.steps):
            run_spawned(data, config, paths, resume, stop)
            state = load_checkpoint(paths.checkpoint)
        else:
            progress = ProgressBar(config.steps, resume_state.step if resume_state else 0)
            try:
                state = run_loop(data, config, paths, resume_state, stop, Rank(), progress)
            finally:
                progress.close()
    return _finish_or_raise(opened, selection, data, config, paths, layout, state, say)


def _screen(
    opened: Sequence[Any], layout: DataLayout, config: TrainConfig, at: datetime | None, say: Callable[[str], None]
) -> td.Selection:
    """The consent screening, with every excluded episode reported."""
    camera = config.camera if config.policy == "visuomotor" else None
    selection = td.screen_datasets(opened, layout, at=at, camera=camera)
    for episode in selection.excluded:
        who = episode.operator or "unknown operator"
        name = selection.datasets[episode.dataset].name
        say(f"excluded: {name} episode {episode.episode_index} ({who}): {episode.reason}")
    say(
        f"training on {len(selection.included)} episodes ({selection.frames} frames) of "
        f"{len(selection.datasets)} dataset(s); {len(selection.excluded)} excluded"
    )
    return selection


def _resume_state(paths: OutputPaths, data: PreparedData, config: TrainConfig, say: Callable[[str], None]) -> LoopState:
    state = load_checkpoint(paths.checkpoint, data.fingerprint)
    say(f"resuming from step {state.step}/{config.steps} ({paths.checkpoint})")
    return state


def _finish_or_raise(
    opened: Sequence[Any],
    selection: td.Selection,
    data: PreparedData,
    config: TrainConfig,
    paths: OutputPaths,
    layout: DataLayout,
    state: LoopState,
    say: Callable[[str], None],
) -> TrainResult:
    if state.step < config.steps:
        _write_curve(paths, state, config)
        raise TrainingInterruptedError(state.step, config.steps, paths.checkpoint)
    return _finish(opened, selection, data, config, paths, layout, state, say)


def _train_torchrun(
    datasets: Sequence[str | os.PathLike[str]],
    paths: OutputPaths,
    config: TrainConfig,
    layout: DataLayout,
    resume: bool,
    at: datetime | None,
    say: Callable[[str], None],
    rank: Rank,
) -> TrainResult | None:
    """One ``torchrun`` rank: rank 0 alone checks consent (the other hosts need no registry, which holds
    names) and reads the checkpoint; both are broadcast. Rank 0 writes the checkpoints and the model, so
    ``MODEL``'s folder only needs to exist on rank 0's host."""
    with process_group(config, rank):
        device = rank_device(config, rank)
        opened = td.open_datasets(datasets, layout)
        selection: td.Selection | None = None
        if rank.main:
            try:
                _check_checkpoint_use(paths, resume)
                selection = _screen(opened, layout, config, at, say)
                message: dict[str, Any] = td.selection_document(selection)
            except UserError as error:
                broadcast_json({"error": str(error)}, rank, device)
                raise
            broadcast_json(message, rank, device)
        else:
            message = broadcast_json(None, rank, device)
            if "error" in message:
                raise TrainingError(f"rank 0 stopped: {message['error']}")
            selection = td.selection_from_document(opened, message)
        data = prepare_data(opened, selection, config)
        resume_state = None
        if resume:
            if rank.main:
                _resume_state(paths, data, config, say)  # checked (and said) on rank 0 first
            resume_state = broadcast_checkpoint(paths.checkpoint if rank.main else None, rank, device,
                                                data.fingerprint)
        stop = StopRequest()
        with stop.installed(primary=rank.main):
            state = run_ranked(data, config, paths, resume_state, stop, rank)
    if not rank.main:
        return None
    return _finish_or_raise(opened, selection, data, config, paths, layout, state, say)


def _check_checkpoint_use(paths: OutputPaths, resume: bool) -> None:
    if resume and not paths.checkpoint.is_file():
        raise TrainingError(f"--resume: expected a checkpoint at {paths.checkpoint}, found none")
    if not resume and paths.checkpoint.exists():
        raise TrainingError(
            f"an unfinished run's checkpoint exists at {paths.checkpoint}: continue it with --resume, "
            "or delete it to start over"
        )


def _write_curve(paths: OutputPaths, state: LoopState, config: TrainConfig) -> None:
    try:
        write_loss_curve(
            paths.loss_curve,
            state.losses,
            [(s, loss) for s, loss, _ in state.validation],
            title=f"{paths.model.name}: {config.policy} policy, {state.step}/{config.steps} steps",
        )
    except (OSError, ValueError) as error:
        raise DataFileError(f"{paths.loss_curve}: cannot write the loss curve: {error}") from error


def _finish(
    datasets: Sequence[Any],
    selection: td.Selection,
    data: PreparedData,
    config: TrainConfig,
    paths: OutputPaths,
    layout: DataLayout,
    state: LoopState,
    say: Callable[[str], None],
) -> TrainResult:
    """Export the trained weights with contract and provenance, write the curve, drop the checkpoint."""
    model = _trained_model(data, config, state)
    check_inputs, check_split = _export_check_inputs(data, config)
    validation_loss, validation_mm = _last_validation(state)
    dt = config.stride / selection.fps
    contract = _contract(selection, data, config, dt)
    provenance = _provenance(selection, data, config, state, contract, dt, check_split)
    report = export_policy(model, data.input_names, check_inputs, contract, provenance, paths.model)
    provenance["result"]["onnx_check"] = report.to_dict()
    say(
        f"ONNX check: onnxruntime vs PyTorch on {report.frames} {check_split} frames: max abs diff "
        f"{report.max_abs_diff:.2g} (tolerance 1e-4)"
    )
    _write_curve(paths, state, config)
    _log_training(layout, report, selection)
    paths.checkpoint.unlink(missing_ok=True)
    return TrainResult(
        model=paths.model,
        sha256=report.sha256,
        loss_curve=paths.loss_curve,
        provenance=provenance,
        selection=selection,
        steps=state.step,
        final_loss=_smoothed_final_loss(state.losses),
        validation_loss=validation_loss,
        validation_position_error_mm=validation_mm,
        train_seconds=state.elapsed_s,
        steps_per_second=state.session_rate,
        export=report,
        frames_train=len(data.train["labels"]),
        frames_validation=len(data.validation["labels"]),
    )


def _trained_model(data: PreparedData, config: TrainConfig, state: LoopState) -> torch.nn.Module:
    """The policy module with the run's final weights, in eval mode."""
    model = new_model(data, config)
    assert state.model_state is not None
    model.load_state_dict(state.model_state)
    model.eval()
    return model


def _export_check_inputs(data: PreparedData, config: TrainConfig) -> tuple[list[np.ndarray], str]:
    """Up to :data:`CHECK_FRAMES` evenly spaced held-out frames (training frames when none) and that split's name."""
    check = data.validation if len(data.validation["labels"]) else data.train
    check_split = "validation" if len(data.validation["labels"]) else "training (nothing held out)"
    count = min(CHECK_FRAMES, len(check["labels"]))
    batches = Batches(data, config, torch.device("cpu"))
    picks = torch.linspace(0, len(check["labels"]) - 1, count).round().long()
    check_inputs = [tensor.numpy() for tensor in batches.inputs(check, picks)]
    return check_inputs, check_split


def _last_validation(state: LoopState) -> tuple[float, float]:
    """The last held-out loss and position error (mm), NaN when never evaluated."""
    return (state.validation[-1][1], state.validation[-1][2]) if state.validation else (math.nan, math.nan)


def _contract(selection: td.Selection, data: PreparedData, config: TrainConfig, dt: float) -> dict[str, Any]:
    """The policy contract embedded in the ONNX model: description, inputs, horizon, timing, normalisation."""
    return policy_contract(
        name=f"reach_{config.policy}_bc",
        description=_description(selection, data, config, dt),
        input_names=data.input_names,
        horizon=config.horizon,
        dt=dt,
        control_rate_hz=config.control_rate_hz,
        normalization={k: v for k, v in data.normalization["contract"].items() if k in (*data.input_names, "actions")},
        image=_image_spec(data, config),
    )


def _description(selection: td.Selection, data: PreparedData, config: TrainConfig, dt: float) -> str:
    """The contract's one-paragraph description of what the model was trained on and predicts."""
    names = ", ".join(f"{d.name} ({d.content_hash[:12]})" for d in selection.datasets)
    return (
        f"Learned behaviour-cloning {config.policy} policy: {'camera image, ' if config.policy == 'visuomotor' else ''}"
        f"perceived target and tool pose -> {config.horizon} ee_pose_delta waypoints {dt:.4g} s apart. "
        f"Trained on {len(selection.included)} consented episodes ({selection.frames} frames) of {names}; "
        f"features: (target - tool position) in the base frame / {data.constants.relative_scale:.4g} m and its norm. "
        "Provenance (datasets, episodes, operator pseudonyms, consent, training) in metadata 'robot_brain.provenance'."
    )


def _image_spec(data: PreparedData, config: TrainConfig) -> dict[str, Any] | None:
    """The contract's image spec (visuomotor policies), None for the state policy."""
    if config.policy != "visuomotor":
        return None
    assert data.image_mean is not None and data.image_std is not None
    return {
        "width": config.image_size,
        "height": config.image_size,
        "channel_order": "rgb",
        "layout": "chw",
        "scale": 1.0 / 255.0,
        "mean": data.image_mean.tolist(),
        "std": data.image_std.tolist(),
    }


def _provenance(
    selection: td.Selection,
    data: PreparedData,
    config: TrainConfig,
    state: LoopState,
    contract: dict[str, Any],
    dt: float,
    check_split: str,
) -> dict[str, Any]:
    """The model's provenance document: model, datasets, episodes (with split), exclusions, training, result."""
    episodes = _episode_records(selection, config)
    excluded = _excluded_records(selection)
    return build_model_provenance(
        model={
            "name": contract["name"],
            "policy": config.policy,
            "action_space": "ee_pose_delta",
            "horizon": config.horizon,
            "dt": dt,
            "control_rate_hz": config.control_rate_hz,
            "inputs": list(data.input_names),
        },
        datasets=_dataset_records(selection),
        episodes=episodes,
        excluded=excluded,
        checked_at=selection.checked_at,
        training=_training_record(config, dt, selection.fps),
        normalization=data.normalization,
        result=_result_record(data, state, check_split),
        software=software_record({"torch": torch.__version__}),
    )


def _episode_records(selection: td.Selection, config: TrainConfig) -> list[dict[str, Any]]:
    """Each included episode's provenance with the split (train or validation) it went to."""
    _, validation_episodes = td.split_episodes(len(selection.included), config.val_fraction, config.seed)
    held = set(int(v) for v in validation_episodes)
    episodes = []
    for number, episode in enumerate(selection.included):
        entry = episode.to_dict()
        entry["split"] = "validation" if number in held else "train"
        episodes.append(entry)
    return episodes


def _excluded_records(selection: td.Selection) -> list[dict[str, Any]]:
    """Each excluded episode (pseudonyms only) with the reason it was left out."""
    return [
        {
            "dataset": e.dataset,
            "episode_index": e.episode_index,
            "episode_id": e.episode_id,
            "operator": e.operator,
            "frames": e.length,
            "reason": e.reason,
        }
        for e in selection.excluded
    ]


def _dataset_records(selection: td.Selection) -> list[dict[str, Any]]:
    """Each dataset's identity (content hash) and size."""
    return [
        {
            "name": d.name,
            "content_hash": d.content_hash,
            "hash_format": "robot_brain.dataset-hash/1",
            "fps": d.fps,
            "robot_type": d.robot_type,
            "total_episodes": d.total_episodes,
            "total_frames": d.total_frames,
        }
        for d in selection.datasets
    ]


def _training_record(config: TrainConfig, dt: float, fps: int) -> dict[str, Any]:
    """The training settings, timing, label definition, loss and optimiser."""
    return {
        **config.weight_fingerprint(),
        "dt": dt,
        "fps": fps,
        "labels": "waypoint i of frame t = action.ee_pose[t + i*stride] relative to observation.ee_pose[t] "
        "(position offset in the base frame, rotation R_cmd R_obs^T); the last command repeats "
        "past an episode's end",
        "loss": "MSE on normalised actions",
        "optimizer": "AdamW, warm-up then cosine decay to 0.1 lr",
    }


def _result_record(data: PreparedData, state: LoopState, check_split: str) -> dict[str, Any]:
    """The run's numbers: steps, losses, held-out error, time and frame counts."""
    validation_loss, validation_mm = _last_validation(state)
    return {
        "steps": state.step,
        "first_loss": state.losses[0] if state.losses else math.nan,
        "final_loss": _smoothed_final_loss(state.losses),
        "validation_loss": validation_loss,
        "validation_position_error_mm": validation_mm,
        "validation_split": check_split,
        "train_seconds": state.elapsed_s,
        "steps_per_second": state.session_rate,
        "frames_train": len(data.train["labels"]),
        "frames_validation": len(data.validation["labels"]),
    }


def _log_training(layout: DataLayout, report: ExportReport, selection: td.Selection) -> None:
    """A ``model.trained`` audit entry (pseudonyms only) when the site has a consent folder.

    So the audit log can answer "which models did this operator's data train?" when they revoke
    or are purged. Sites without a registry (scripted data only) get no consent folder created.
    """
    if not layout.consent_dir.is_dir():
        return
    operators = sorted({e.operator for e in selection.included if e.operator})
    append_audit(
        layout,
        "model.trained",
        {
            "model_sha256": report.sha256,
            "model_file": report.path.name,
            "datasets": [d.content_hash for d in selection.datasets],
            "episodes": len(selection.included),
            "operators": operators,
        },
    )


def format_summary(result: TrainResult) -> str:
    """Human-readable lines for the CLI."""
    lines = [
        f"model      {result.model}  (sha256 {result.sha256[:16]}…)",
        f"policy     {result.provenance['model']['policy']}  inputs {', '.join(result.provenance['model']['inputs'])}"
        f"  -> {result.provenance['model']['horizon']} x ee_pose_delta, dt {result.provenance['model']['dt']:.4g} s",
        f"data       {len(result.selection.included)} episodes ({result.frames_train} training / "
        f"{result.frames_validation} held-out frames), {len(result.selection.excluded)} excluded",
        f"training   {result.steps} steps, final loss {result.final_loss:.4g}, held-out loss "
        f"{result.validation_loss:.4g} ({result.validation_position_error_mm:.1f} mm mean waypoint error), "
        f"{format_duration(result.train_seconds)} ({result.steps_per_second:.1f} steps/s this session)",
        f"onnx check max abs diff {result.export.max_abs_diff:.2g} on {result.export.frames} frames "
        f"(policy runtime {result.export.runtime_max_abs_diff:.2g}), {result.export.size_bytes / 1024:.0f} KiB",
        f"loss curve {result.loss_curve}",
    ]
    return "\n".join(lines)
