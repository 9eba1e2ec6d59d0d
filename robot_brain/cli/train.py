"""``robot-brain train``: behaviour cloning on LeRobot datasets → an ONNX policy with contract and provenance.

::

    robot-brain train DATASET [DATASET ...] --out MODEL.onnx [--policy state|visuomotor] [--horizon H]
        [--stride K] [--steps N] [--batch B] [--lr LR] [--device cpu|cuda] [--nproc N] [--threads T]
        [--seed S] [--resume] [--data-root DIR] [--json]

``DATASET`` is a LeRobot v3 dataset folder (or the name of one under ``<data root>/datasets``);
several datasets (one per arm) train one model. Episodes whose operator's consent does not
cover ``train`` *now* are excluded and listed; nothing left is an error (exit 2).

Progress goes to stderr (a bar on a terminal, plain lines otherwise); ``MODEL.loss.png`` is
written beside the model. Ctrl-C (or SIGTERM) finishes the current step, saves
``MODEL.checkpoint.pt`` and exits with status 130; the same command with ``--resume``
continues and ends with the same weights as an uninterrupted run.

Several processes: ``--nproc N`` runs N DistributedDataParallel ranks on this host (gloo on
CPU, NCCL with ``--device cuda``, one GPU per rank). Across hosts, start the same command on
every host with ``torchrun`` (leave ``--nproc`` at 1; rank 0 writes the model)::

    torchrun --nnodes 2 --nproc-per-node 1 --node-rank 0 --rdzv-backend c10d \\
        --rdzv-endpoint HOST0:29500 -m robot_brain.cli.main train DATASET --out MODEL.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from robot_brain.learning.requirements import require_torch
from robot_brain.storage.paths import add_data_root_argument

EXIT_OK, EXIT_INTERRUPTED = 0, 130


def register(subparsers: Any) -> None:
    """Add ``train``."""
    parser = subparsers.add_parser(
        "train",
        help="train a policy on LeRobot datasets and export it to ONNX (contract + provenance)",
        description=(
            "Behaviour cloning on consented demonstrations: a state (target + tool pose) or visuomotor "
            "(camera + state) policy emitting ee_pose_delta chunks, exported to ONNX with its contract and provenance."
        ),
    )
    parser.add_argument("datasets", nargs="+", metavar="DATASET", help="LeRobot v3 dataset folder(s) or names")
    parser.add_argument("--out", required=True, metavar="MODEL.onnx", help="model file to write")
    parser.add_argument("--policy", choices=("state", "visuomotor"), default="state")
    parser.add_argument("--horizon", type=int, default=10, help="waypoints per chunk (default 10)")
    parser.add_argument("--stride", type=int, default=1, help="dataset frames between waypoints: dt = stride/fps")
    parser.add_argument("--control-rate", type=float, default=10.0, help="policy rate written into the contract (Hz)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64, help="global batch size (split across --nproc ranks)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--nproc", type=int, default=1, help="DistributedDataParallel processes on this host")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from MODEL.checkpoint.pt")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="episodes held out (default 0.1)")
    parser.add_argument("--image-size", type=int, default=64, help="visuomotor: square input size in pixels")
    parser.add_argument("--camera", default=None, help="visuomotor: camera name (default: the dataset's only one)")
    parser.add_argument(
        "--target-input",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="visuomotor: also feed the perceived target point (default yes)",
    )
    parser.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout at the end")
    add_data_root_argument(parser)
    parser.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    # torch is imported here, not at module level: every robot-brain command imports this module.
    require_torch("robot-brain train")
    from robot_brain.learning.training import TrainConfig, TrainingInterruptedError, format_summary, train

    config = TrainConfig(
        policy=args.policy,
        horizon=args.horizon,
        stride=args.stride,
        control_rate_hz=args.control_rate,
        steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        nproc=args.nproc,
        threads=args.threads,
        image_size=args.image_size,
        camera=args.camera,
        use_target=args.target_input,
        val_fraction=args.val_fraction,
        checkpoint_every_s=args.checkpoint_every,
    )
    try:
        result = train(args.datasets, args.out, config, data_root=args.data_root, resume=args.resume)
    except TrainingInterruptedError as interrupted:
        print(f"robot-brain train: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result is None:  # a torchrun rank other than 0: rank 0 wrote the model
        return EXIT_OK
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        print(format_summary(result))
    return EXIT_OK
