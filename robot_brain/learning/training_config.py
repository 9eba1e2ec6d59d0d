"""Training settings, output paths and the prepared tensors every rank trains on (shared by the loop and the driver)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_brain.errors import UserError
from robot_brain.learning.policies import POLICY_KINDS, StateConstants

DEVICES = ("cpu", "cuda")


class TrainingError(UserError):
    """A training request that cannot run: bad settings, a checkpoint that does not fit, no data left."""


class TrainingInterruptedError(Exception):
    """Training stopped on request (Ctrl-C, SIGTERM); the checkpoint to resume from is saved."""

    def __init__(self, step: int, steps: int, checkpoint: Path) -> None:
        super().__init__(
            f"interrupted at step {step}/{steps}; checkpoint saved to {checkpoint}: rerun the same command "
            "with --resume to continue"
        )
        self.step = step
        self.steps = steps
        self.checkpoint = checkpoint


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights (and a few things that do not, marked)."""

    policy: str = "state"
    horizon: int = 10
    stride: int = 1
    """Frames between waypoints: ``dt = stride / fps``."""
    control_rate_hz: float = 10.0
    """The rate the policy node runs the model at (written into the contract)."""
    steps: int = 2000
    batch_size: int = 64
    """Global batch; split evenly across ``nproc`` ranks."""
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    seed: int = 0
    device: str = "cpu"
    nproc: int = 1
    threads: int = 1
    """Torch threads per process. 1 by default: on shared cores two threads measured 40x slower than one."""
    hidden: int = 256
    image_size: int = 64
    camera: str | None = None
    use_target: bool = True
    """Visuomotor only: also feed the perceived target point (the state policy always does)."""
    augment_shift: int = 4
    """Visuomotor only: random image shifts of up to this many pixels (replicate padding)."""
    val_fraction: float = 0.1
    eval_every: int = 0
    """Held-out evaluation every this many steps (0: 20 times per run). Does not change the weights."""
    checkpoint_every_s: float = 60.0
    """Periodic checkpoints (crash safety). Does not change the weights."""

    NON_WEIGHT_FIELDS = ("eval_every", "checkpoint_every_s")

    def check(self) -> None:
        """Raise :class:`TrainingError` on settings that cannot work."""

        def positive(name: str, value: float) -> None:
            if not value > 0:
                raise TrainingError(f"{name}: expected a positive value, found {value}")

        if self.policy not in POLICY_KINDS:
            raise TrainingError(f"policy: expected one of {', '.join(POLICY_KINDS)}, found {self.policy!r}")
        for name in ("horizon", "stride", "steps", "batch_size", "nproc", "threads", "hidden", "lr", "control_rate_hz"):
            positive(name, getattr(self, name))
        if self.device not in DEVICES:
            raise TrainingError(f"device: expected one of {', '.join(DEVICES)}, found {self.device!r}")
        if self.batch_size % self.nproc:
            raise TrainingError(
                f"batch: expected a multiple of --nproc {self.nproc} (each rank takes an equal slice), "
                f"found {self.batch_size}"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise TrainingError(f"val_fraction: expected 0 <= fraction < 1, found {self.val_fraction}")
        if self.policy == "visuomotor" and (self.image_size < 16 or self.image_size % 4):
            raise TrainingError(f"image_size: expected a multiple of 4 of at least 16, found {self.image_size}")
        if self.policy == "state" and not self.use_target:
            raise TrainingError("the state policy needs the target point (use_target); only visuomotor can go without")
        if self.warmup_steps < 0 or self.augment_shift < 0 or self.weight_decay < 0:
            raise TrainingError("warmup_steps, augment_shift and weight_decay: expected >= 0")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise TrainingError("device cuda: expected a CUDA device, found none (torch.cuda.is_available() is False)")
        if self.device == "cuda" and self.nproc > torch.cuda.device_count():
            raise TrainingError(
                f"nproc: expected at most {torch.cuda.device_count()} (one GPU per rank), found {self.nproc}"
            )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return data

    def weight_fingerprint(self) -> dict[str, Any]:
        """The settings that determine the weights (a resumed run must match them)."""
        return {k: v for k, v in self.to_dict().items() if k not in self.NON_WEIGHT_FIELDS}


@dataclass(frozen=True)
class OutputPaths:
    """The model file and what training writes beside it."""

    model: Path
    checkpoint: Path
    loss_curve: Path

    @classmethod
    def for_model(cls, model: str | os.PathLike[str]) -> OutputPaths:
        path = Path(model).expanduser().absolute()
        if path.suffix != ".onnx":
            raise TrainingError(f"--out: expected a path ending in .onnx, found {path.name!r}")
        stem = path.with_suffix("")
        return cls(path, stem.with_name(stem.name + ".checkpoint.pt"), stem.with_name(stem.name + ".loss.png"))


# --------------------------------------------------------------------------------------------
# Prepared data (what every rank trains on)
# --------------------------------------------------------------------------------------------


@dataclass
class PreparedData:
    """Tensors of the training and held-out frames, already normalised as the runtime will feed them.

    Picklable (torch.multiprocessing shares the tensors' memory with the ranks it spawns).
    """

    train: dict[str, torch.Tensor]
    validation: dict[str, torch.Tensor]
    input_names: tuple[str, ...]
    constants: StateConstants
    label_mean: np.ndarray
    label_std: np.ndarray
    image_mean: np.ndarray | None
    image_std: np.ndarray | None
    fingerprint: dict[str, Any]
    normalization: dict[str, Any]
    """Contract ``normalization`` (inputs and actions) and where each statistic came from."""

    def share_memory(self) -> PreparedData:
        for tensors in (self.train, self.validation):
            for tensor in tensors.values():
                tensor.share_memory_()
        return self
