"""A rank of a two-process gloo group for the broadcast test (imported by spawned processes, so a module)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from robot_brain.learning.training_loop import Rank, broadcast_checkpoint, broadcast_json


def run_rank(index: int, init_file: str, checkpoint: str, fingerprint: dict, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=index, world_size=2)
    try:
        rank = Rank(index, 2, index)
        device = torch.device("cpu")
        decisions = broadcast_json({"included": [1, 2, 3], "who": "op-0123456789abcdef"} if rank.main else None,
                                   rank, device)
        state = broadcast_checkpoint(Path(checkpoint) if rank.main else None, rank, device, fingerprint)
        weights = {name: tensor.tolist() for name, tensor in (state.model_state or {}).items()}
        Path(out).write_text(json.dumps({"decisions": decisions, "step": state.step, "losses": state.losses,
                                         "weights": weights}), encoding="utf-8")
    finally:
        torch.distributed.destroy_process_group()
