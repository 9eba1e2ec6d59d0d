"""Helpers for the LeRobot dataset tests: synthetic camera frames a codec can reproduce, a small dataset.

Frames are smooth (colour gradients) with a brightness step and a square that moves 4 px per frame, so every frame
differs clearly from its neighbours (a decoded frame can be matched to its source) while the
video codec still reproduces them closely at tiny sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_brain.datasets import lerobot

FPS = 30
HEIGHT, WIDTH = 48, 64
JOINTS = ["shoulder", "elbow", "wrist"]
CAMERAS = ("scene", "wrist")


def synthetic_frames(length: int, seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """(T, H, W, 3) uint8: a per-episode colour gradient, a brightness step and a square moving 4 px per frame."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    base = np.stack(
        [
            40 + 120 * rows / height + rng.uniform(0, 30),
            60 + 100 * cols / width + rng.uniform(0, 30),
            np.full((height, width), 90.0 + rng.uniform(0, 60)),
        ],
        axis=-1,
    )
    frames = np.empty((length, height, width, 3), dtype=np.uint8)
    for k in range(length):
        frame = base + 6.0 * (k % 12)
        left = (4 * k) % (width - 16)
        top = (3 * k) % (height - 16)
        frame[top : top + 16, left : left + 16] = [235, 200, 30]
        frames[k] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def features(cameras: tuple[str, ...] = CAMERAS) -> dict:
    spec = {
        "observation.state": lerobot.vector_feature(JOINTS),
        "action": lerobot.vector_feature(JOINTS),
        "observation.ee_pose": lerobot.vector_feature(["x", "y", "z", "qx", "qy", "qz", "qw"]),
        "next.success": {"dtype": "bool", "shape": [1], "names": None},
    }
    for camera in cameras:
        spec[lerobot.camera_key(camera)] = lerobot.video_feature(HEIGHT, WIDTH)
    return spec


def episode_inputs(length: int, seed: int, cameras: tuple[str, ...] = CAMERAS) -> tuple[dict, dict]:
    """(columns, images) of one synthetic episode: smooth joint motion, a pose, a success flag at the end."""
    t = np.arange(length) / FPS
    phase = seed * 0.7
    state = np.stack([np.sin(t + phase), np.cos(1.3 * t + phase), 0.2 * t + phase], axis=1)
    action = state + 0.05
    pose = np.concatenate([state, np.tile([0.0, 0.0, 0.0, 1.0], (length, 1))], axis=1)
    success = np.zeros(length, dtype=bool)
    success[-1] = True
    columns = {"observation.state": state, "action": action, "observation.ee_pose": pose, "next.success": success}
    images = {camera: synthetic_frames(length, seed * 10 + i) for i, camera in enumerate(cameras)}
    return columns, images


def episode_provenance(index: int, operator: str = "op-7f3a9c") -> dict:
    return {
        "episode_id": f"20260101T000000Z-{index:04d}",
        "operator": operator,
        "consent": {"id": f"consent-{operator}", "scopes": ["record", "train", "export"]},
        "robot": {"name": "panda", "urdf_sha256": "ab" * 32},
        "label": "success" if index % 2 == 0 else "failure",
        "software": {"package": "robot_brain", "version": "0.1.0"},
    }


def write_dataset(
    root: Path, lengths: tuple[int, ...] = (12, 17, 9), cameras: tuple[str, ...] = CAMERAS, **create_options
) -> tuple[lerobot.DatasetSummary, list[tuple[dict, dict]]]:
    """Write a dataset of synthetic episodes; returns the summary and each episode's inputs."""
    writer = lerobot.create(root, FPS, features(cameras), robot_type="panda", **create_options)
    inputs = []
    for index, length in enumerate(lengths):
        columns, images = episode_inputs(length, seed=index + 1, cameras=cameras)
        task = "pick the red cube" if index != 1 else "place the cube"
        writer.add_episode(
            task,
            columns,
            images={camera: iter(frames) for camera, frames in images.items()},
            timestamps=np.arange(length) / FPS,
            provenance=episode_provenance(index),
        )
        inputs.append((columns, images))
    summary = writer.finalize(
        export={"data_root": "/data", "excluded": [{"episode_id": "x", "reason": "no train consent"}]}
    )
    return summary, inputs
