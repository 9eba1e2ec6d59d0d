"""The learned policies as PyTorch modules, written so the legacy ONNX exporter turns them into plain graphs.

Both take their inputs **as the runtime feeds them** (the contract's normalisation already
applied: ``(x - mean) / std`` with the dataset statistics) and return the action chunk
**normalised** (the runtime maps it back with ``x * std + mean`` from the contract), so the
exported graph needs nothing but the contract to run on the policy node.

What generalises across arms is made explicit inside the graph: the network never sees an
absolute tool position for the reach, only the target *relative to the tool*, in the base
frame (``target − tool``, divided by a fixed length scale, and its norm). A chunk of
``ee_pose_delta`` waypoints is then the same function of that vector on a UR5, a Panda or an
arm the policy never saw; the IK of the arm controller does the rest.

- :class:`StatePolicy`: ``target_point [1,3]``, ``ee_pose [1,7]`` → ``actions [1,H,7]``: an MLP
  on the relative-target features (the inputs and roles of ``builtin:reach``: a drop-in).
- :class:`VisuomotorPolicy`: ``image [1,3,S,S]`` (+ ``target_point``) + ``ee_pose`` → the same
  chunk: a four-layer CNN with a spatial soft-argmax (image keypoints, as in Levine et al.'s
  visuomotor policies: few parameters, trains in minutes on two CPU cores), concatenated with
  the state features, into the same MLP head.

No batch normalisation (DDP ranks would disagree on statistics and the exported graph would
depend on them); no dropout (deterministic training for interrupt/resume equality).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

ACTION_DIM = 7
POLICY_KINDS = ("state", "visuomotor")


@dataclass(frozen=True)
class StateConstants:
    """The input statistics the runtime normalises with, and the length scale of the relative target."""

    target_mean: np.ndarray  # (3,)
    target_std: np.ndarray  # (3,)
    pose_mean: np.ndarray  # (7,)
    pose_std: np.ndarray  # (7,)
    relative_scale: float  # metres


def _mlp(inputs: int, hidden: int, depth: int, outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = inputs
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


class _StateFeatures(nn.Module):
    """Normalised ``target_point`` and ``ee_pose`` → ``[(target − tool) / scale, |·|]`` in the base frame."""

    def __init__(self, constants: StateConstants) -> None:
        super().__init__()

        def tensor(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(values, dtype=np.float32))

        self.register_buffer("target_mean", tensor(constants.target_mean))
        self.register_buffer("target_std", tensor(constants.target_std))
        self.register_buffer("position_mean", tensor(constants.pose_mean[:3]))
        self.register_buffer("position_std", tensor(constants.pose_std[:3]))
        self.register_buffer("inverse_scale", torch.tensor(1.0 / float(constants.relative_scale)))

    size = 4

    def forward(self, target_point: torch.Tensor, ee_pose: torch.Tensor) -> torch.Tensor:
        target = target_point * self.target_std + self.target_mean
        position = ee_pose[:, 0:3] * self.position_std + self.position_mean
        relative = (target - position) * self.inverse_scale
        distance = torch.sqrt(torch.sum(relative * relative, dim=1, keepdim=True) + 1e-12)
        return torch.cat([relative, distance], dim=1)


class StatePolicy(nn.Module):
    """``target_point``, ``ee_pose`` (normalised) → ``actions [B, H, 7]`` (normalised ``ee_pose_delta``)."""

    input_names: tuple[str, ...] = ("target_point", "ee_pose")

    def __init__(self, horizon: int, constants: StateConstants, hidden: int = 256, depth: int = 3) -> None:
        super().__init__()
        self.horizon = horizon
        self.features = _StateFeatures(constants)
        self.head = _mlp(_StateFeatures.size, hidden, depth, horizon * ACTION_DIM)

    def forward(self, target_point: torch.Tensor, ee_pose: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(target_point, ee_pose)).reshape(-1, self.horizon, ACTION_DIM)


class SpatialSoftArgmax(nn.Module):
    """``(B, K, h, w)`` feature maps → ``(B, 2K)`` expected image coordinates in [-1, 1] of each map's softmax."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1))  # (h*w, 2)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        batch, channels = maps.shape[0], maps.shape[1]
        weights = torch.softmax(maps.reshape(batch, channels, -1), dim=-1)
        return torch.matmul(weights, self.grid).reshape(batch, channels * 2)


class VisuomotorPolicy(nn.Module):
    """``image`` (+ ``target_point``) + ``ee_pose`` (normalised) → ``actions [B, H, 7]``.

    The image arrives as the runtime's preprocessing leaves it: ``(B, 3, S, S)`` float, resized
    and normalised with the contract's image spec.
    """

    def __init__(
        self,
        horizon: int,
        constants: StateConstants,
        image_size: int,
        use_target: bool = True,
        hidden: int = 256,
        depth: int = 2,
        channels: Sequence[int] = (16, 32, 32),
        keypoints: int = 32,
    ) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size: expected a multiple of 4, found {image_size}")
        self.horizon = horizon
        self.use_target = use_target
        self.input_names = ("image", "target_point", "ee_pose") if use_target else ("image", "ee_pose")
        first, second, third = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(3, first, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(first, second, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(second, third, 3, stride=1, padding=1),
            nn.ReLU(),
            nn.Conv2d(third, keypoints, 1),
        )
        self.keypoints = SpatialSoftArgmax(image_size // 4, image_size // 4)
        self.features = _StateFeatures(constants)
        state_size = (_StateFeatures.size if use_target else 0) + 3
        self.head = _mlp(2 * keypoints + state_size, hidden, depth, horizon * ACTION_DIM)

    def forward(self, image: torch.Tensor, *state: torch.Tensor) -> torch.Tensor:
        ee_pose = state[-1]
        parts = [self.keypoints(self.encoder(image))]
        if self.use_target:
            parts.append(self.features(state[0], ee_pose))
        parts.append(ee_pose[:, 0:3])
        return self.head(torch.cat(parts, dim=1)).reshape(-1, self.horizon, ACTION_DIM)


def build_policy(
    kind: str,
    horizon: int,
    constants: StateConstants,
    *,
    image_size: int = 64,
    use_target: bool = True,
    hidden: int = 256,
) -> StatePolicy | VisuomotorPolicy:
    """A fresh policy of ``kind`` (initialised from torch's current random state: seed it first)."""
    if kind == "state":
        return StatePolicy(horizon, constants, hidden=hidden)
    if kind == "visuomotor":
        return VisuomotorPolicy(horizon, constants, image_size, use_target=use_target, hidden=hidden)
    raise ValueError(f"policy: expected one of {', '.join(POLICY_KINDS)}, found {kind!r}")
