"""Helpers for the training tests: small LeRobot datasets of kinematically real reach demonstrations.

Each episode is the reach expert run kinematically on a real arm (URDFs from pip packages): from
a configuration near the sim's home, every frame commands the tool pose a proportional
controller asks for (gain 2/s, speed capped at 0.25 m/s, orientation held), solved with the
arm's own IK; the measured joints follow the command with a first-order lag (the tracking of a
real position controller), and forward kinematics gives the observed and the commanded tool
poses. The object is placed by the sim's own reach task (reachable by construction) and
perceived with 2 mm of noise. The camera image is the scene drawn from the sim layout's camera
(pinhole projection of the table, the object and the tool), small enough to encode in
milliseconds.

Features and provenance are those the exporter writes (``observation.state``,
``observation.ee_pose``, ``observation.gripper`` when the arm has one,
``observation.target_point``, ``observation.images.camera``, ``action``, ``action.ee_pose``,
``action.gripper``; per-episode ``source`` with operator pseudonym, consent id and scopes).
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from robots import ARMS

from robot_brain.cli.main import main
from robot_brain.consent.legal import MAX_RETENTION_DAYS
from robot_brain.consent.registry import ConsentRegistry
from robot_brain.datasets import lerobot
from robot_brain.datasets.dataset_provenance import seal_dataset
from robot_brain.embodiment import Arm, load_arm
from robot_brain.perception.geometry import matrix_to_pose
from robot_brain.sim.task import ReachTask
from robot_brain.sim.workspace import Layout, LayoutOptions, compute_layout
from robot_brain.storage.paths import DataLayout

FPS = 10
HEIGHT, WIDTH = 48, 64
GAIN, MAX_SPEED, TRACKING = 2.0, 0.25, 0.6
ADA, BOB = "Ada Lovelace", "Bob Ångström"


@functools.cache
def arm_and_layout(robot: str) -> tuple[Arm, Layout]:
    arm = load_arm(ARMS[robot])
    return arm, compute_layout(arm, LayoutOptions(samples=300))


def reach_episode(robot: str, seed: int, length: int = 30) -> dict[str, np.ndarray]:
    """Columns of one reach demonstration (see the module docstring); ``image_points`` for drawing."""
    arm, layout = arm_and_layout(robot)
    rng = np.random.default_rng(seed)
    kinematics = arm.kinematics
    spec = arm.spec
    q = np.clip(layout.home + rng.normal(0.0, 0.05, spec.dof), np.asarray(spec.lower), np.asarray(spec.upper))
    target = ReachTask(arm, layout, record_path=False).place_object(seed)
    rotation = kinematics.fk(q)[:3, :3]
    dt = 1.0 / FPS
    observed_q, commanded_q, observed_pose, commanded_pose = [], [], [], []
    for _ in range(length):
        pose = kinematics.fk(q)
        offset = target - pose[:3, 3]
        distance = float(np.linalg.norm(offset))
        step = offset * min(1.0, GAIN * dt, MAX_SPEED * dt / max(distance, 1e-9))
        goal = np.eye(4)
        goal[:3, :3] = rotation
        goal[:3, 3] = pose[:3, 3] + step
        q_command = kinematics.solve_from(q, goal, max_iterations=20).q
        observed_q.append(q.copy())
        commanded_q.append(q_command.copy())
        observed_pose.append(matrix_to_pose(pose))
        commanded_pose.append(matrix_to_pose(kinematics.fk(q_command)))
        q = q + TRACKING * (q_command - q)
    perceived = target + rng.normal(0.0, 0.002, (length, 3))
    columns = {
        "observation.state": np.array(observed_q),
        "observation.ee_pose": np.array(observed_pose),
        "observation.target_point": perceived,
        "action": np.array(commanded_q),
        "action.ee_pose": np.array(commanded_pose),
    }
    if spec.gripper_joints:
        columns["observation.gripper"] = np.zeros((length, 1))
        columns["action.gripper"] = np.zeros((length, 1))
    columns["_target"] = np.tile(target, (length, 1))
    return columns


def camera_frames(robot: str, columns: dict[str, np.ndarray]) -> np.ndarray:
    """(T, H, W, 3) uint8: the table, the red object and the grey tool seen from the layout's camera."""
    _, layout = arm_and_layout(robot)
    pose = layout.camera_pose
    focal = (HEIGHT / 2) / math.tan(math.radians(layout.camera_fovy_deg) / 2)

    def project(point: np.ndarray) -> tuple[float, float]:
        local = pose[:3, :3].T @ (point - pose[:3, 3])
        return focal * local[0] / local[2] + WIDTH / 2, focal * local[1] / local[2] + HEIGHT / 2

    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    background = np.stack([90 + 40 * rows / HEIGHT, 100 + 30 * cols / WIDTH, np.full((HEIGHT, WIDTH), 110.0)], -1)
    frames = np.empty((len(columns["_target"]), HEIGHT, WIDTH, 3), dtype=np.uint8)
    for k, (target, tool) in enumerate(zip(columns["_target"], columns["observation.ee_pose"][:, :3], strict=True)):
        frame = background.copy()
        for point, colour, radius in ((target, (220, 30, 30), 4.0), (tool, (200, 200, 200), 3.0)):
            u, v = project(point)
            frame[(cols - u) ** 2 + (rows - v) ** 2 <= radius**2] = colour
        frames[k] = frame.astype(np.uint8)
    return frames


def features(robot: str, camera: bool) -> dict:
    arm, _ = arm_and_layout(robot)
    pose_names = ["x", "y", "z", "qx", "qy", "qz", "qw"]
    spec = {
        "observation.state": lerobot.vector_feature(list(arm.spec.joint_names)),
        "observation.ee_pose": lerobot.vector_feature(pose_names),
        "observation.target_point": lerobot.vector_feature(["x", "y", "z"]),
        "action": lerobot.vector_feature(list(arm.spec.joint_names)),
        "action.ee_pose": lerobot.vector_feature(pose_names),
    }
    if arm.spec.gripper_joints:
        spec["observation.gripper"] = lerobot.vector_feature(["gripper"])
        spec["action.gripper"] = lerobot.vector_feature(["gripper"])
    if camera:
        spec["observation.images.camera"] = lerobot.video_feature(HEIGHT, WIDTH)
    return spec


def provenance(robot: str, index: int, operator: str, consent_id: str | None, scopes: Sequence[str]) -> dict:
    kind = "human" if operator.startswith("op-") else operator.split(":")[0]
    return {
        "episode_id": f"20261201T0800{index:02d}Z-{robot}-{index:04d}",
        "start_time": f"2026-12-01T08:00:{index:02d}.000000Z",  # training checks each episode's retention from it
        "operator": operator,
        "operator_kind": kind,
        "consent": {"id": consent_id, "scopes": list(scopes)},
        "robot": {"name": robot, "urdf_sha256": "ab" * 32, "base_link": "base", "tip_link": "tool"},
        "label": "success",
        "software": {"package": "robot_brain", "version": "0.1.0"},
    }


def write_reach_dataset(
    root: Path,
    robot: str,
    operators: Sequence[tuple[str, str | None, Sequence[str]]],
    *,
    seed: int = 0,
    length: int = 30,
    camera: bool = False,
    data_root: Path | None = None,
) -> lerobot.DatasetSummary:
    """One episode per ``(operator, consent id, scopes)``, reach demonstrations on ``robot``, sealed by
    ``data_root`` (default: the data root of ``<data root>/datasets/<name>``)."""
    writer = lerobot.create(root, FPS, features(robot, camera), robot_type=robot)
    for index, (operator, consent_id, scopes) in enumerate(operators):
        columns = reach_episode(robot, seed * 1000 + index, length)
        images = {"camera": camera_frames(robot, columns)} if camera else None
        columns.pop("_target")
        writer.add_episode(
            "reach the red cube",
            columns,
            images=images,
            provenance=provenance(robot, index, operator, consent_id, scopes),
        )
    summary = writer.finalize(export={"excluded": []})
    # As robot-brain data export does: the data root's seal key vouches for the provenance.
    seal_dataset(DataLayout.resolve(data_root if data_root is not None else root.parent.parent), root)
    return summary


@dataclass(frozen=True)
class ReachData:
    """A data root with a consent registry and two reach datasets (Panda, UR5) of mixed operators.

    Ada consents to everything; Bob consented, then revoked ``train``; the rest are ``scripted``.
    Panda: Ada, scripted, Ada, scripted, Ada, scripted. UR5: scripted, Bob, scripted, Ada, scripted, scripted.
    """

    root: Path
    panda: Path
    ur5: Path
    ada: str
    bob: str
    ada_consent: str
    bob_consent: str

    @property
    def datasets(self) -> list[Path]:
        return [self.panda, self.ur5]


def make_reach_data(root: Path, camera: bool = True, length: int = 30) -> ReachData:
    registry = ConsentRegistry(root)
    everything = ("record", "train", "export")
    # The longest retention: the fixture's episodes are dated, the enrolment is not (see the retention tests).
    ada = registry.enroll(ADA, everything, retention_days=MAX_RETENTION_DAYS)
    bob = registry.enroll(BOB, everything, retention_days=MAX_RETENTION_DAYS)
    registry.revoke(BOB, "train")
    a = (ada.operator.pseudonym, ada.consent.consent_id, everything)
    b = (bob.operator.pseudonym, bob.consent.consent_id, everything)
    s = ("scripted", None, ())
    panda = root / "datasets" / "reach-panda"
    ur5 = root / "datasets" / "reach-ur5"
    write_reach_dataset(panda, "panda", [a, s, a, s, a, s], seed=1, camera=camera, length=length)
    write_reach_dataset(ur5, "ur5", [s, b, s, a, s, s], seed=2, camera=camera, length=length)
    return ReachData(
        root, panda, ur5, ada.operator.pseudonym, bob.operator.pseudonym, ada.consent.consent_id, bob.consent.consent_id
    )


def copy_data_root(data: ReachData, target: Path) -> ReachData:
    """An independent copy (datasets and consent registry) that a test may revoke consents in."""
    shutil.copytree(data.root, target, symlinks=True)
    return replace(
        data,
        root=target,
        panda=target / data.panda.relative_to(data.root),
        ur5=target / data.ur5.relative_to(data.root),
    )


def cli(*args: str) -> tuple[int, str, str]:
    """Run ``robot-brain`` in this process; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()
