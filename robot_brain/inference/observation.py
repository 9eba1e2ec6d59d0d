"""Observation assembly, normalisation, action decoding and arm compatibility (pure, thread-safe).

Callbacks (the ROS executor's threads) :meth:`ObservationAssembler.update` each input with
its latest payload and stamp; the inference thread :meth:`ObservationAssembler.assemble`\\ s a
time-aligned observation or a reason to skip the step. Payloads are stored as they come
(an image message's buffer, a joint vector) and converted by per-input functions *in the
inference thread*, so heavy work such as image preprocessing never blocks the executor.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_brain.errors import UserError
from robot_brain.inference.contract import (
    JOINT_ACTION_SPACES,
    ROLE_GRIPPER_STATE,
    ROLE_JOINT_POSITIONS,
    ROLE_JOINT_VELOCITIES,
    ROLE_TASK_ID,
    ModelContract,
    Normalization,
    OutputSpec,
)

Converter = Callable[[Any], np.ndarray]


@dataclass(frozen=True)
class Observation:
    """Model inputs (already normalised) and the time they describe."""

    feeds: dict[str, np.ndarray]
    stamp_ns: int
    """Integer nanoseconds, so the chunk carries exactly the stamp of the message it came from."""
    age: float
    """Seconds between the stamp and the assembly time."""


@dataclass(frozen=True)
class Skip:
    """Why no observation could be assembled this step (counted in diagnostics)."""

    reason: str


def apply_normalization(value: np.ndarray, stats: Normalization | None) -> np.ndarray:
    """``(x - mean) / std`` (identity without statistics)."""
    if stats is None:
        return value
    return (value - np.asarray(stats.mean, dtype=value.dtype)) / np.asarray(stats.std, dtype=value.dtype)


def invert_normalization(value: np.ndarray, stats: Normalization | None) -> np.ndarray:
    """``x * std + mean``: model outputs back to physical units."""
    if stats is None:
        return value
    return value * np.asarray(stats.std, dtype=value.dtype) + np.asarray(stats.mean, dtype=value.dtype)


class ObservationAssembler:
    """Latest sample per input; assembles a time-aligned observation on demand.

    An input marked ``synchronized`` in the contract must be within ``sync_tolerance`` of the
    newest synchronized input; the observation's stamp is that newest stamp and it must be
    younger than ``max_age``. Unsynchronized inputs (a slowly moving target) only need to exist.
    Task ids come from a constant the node sets, not from a topic.
    """

    def __init__(
        self,
        contract: ModelContract,
        converters: Mapping[str, Converter],
        *,
        sync_tolerance: float,
        max_age: float,
    ) -> None:
        self.contract = contract
        self.converters = dict(converters)
        self.sync_tolerance = float(sync_tolerance)
        self.max_age = float(max_age)
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[Any, int]] = {}
        self._constants: dict[str, np.ndarray] = {}
        self.skips: Counter[str] = Counter()
        self._synced = tuple(s.name for s in contract.inputs if s.synchronized and s.role != ROLE_TASK_ID)
        self._specs = {s.name: s for s in contract.inputs}

    def set_constant(self, name: str, value: np.ndarray) -> None:
        """An input that does not come from a topic (the task id)."""
        with self._lock:
            self._constants[name] = value

    def update(self, name: str, payload: Any, stamp_ns: int) -> None:
        """Store the newest payload for one input, stamped in integer nanoseconds (subscription callbacks)."""
        with self._lock:
            self._latest[name] = (payload, int(stamp_ns))

    def assemble(self, now_ns: int) -> Observation | Skip:
        """Build the feeds, or say why not (missing input, misaligned stamps, stale data)."""
        with self._lock:
            latest = dict(self._latest)
            constants = dict(self._constants)
        for spec in self.contract.inputs:
            if spec.name not in latest and spec.name not in constants:
                return self._skip(f"missing input '{spec.name}' ({spec.role})")
        stamps = [latest[n][1] for n in self._synced]
        stamp = max(stamps) if stamps else max((s for _, s in latest.values()), default=now_ns)
        if stamps and (stamp - min(stamps)) * 1e-9 > self.sync_tolerance:
            return self._skip(f"inputs not aligned within {self.sync_tolerance:.3f} s")
        age = (now_ns - stamp) * 1e-9
        if age > self.max_age:
            return self._skip(f"observation older than {self.max_age:.3f} s")
        feeds: dict[str, np.ndarray] = {}
        for spec in self.contract.inputs:
            if spec.name in constants:
                value = constants[spec.name]
            else:
                try:
                    value = self.converters[spec.name](latest[spec.name][0])
                except (ValueError, UserError) as error:  # a bad frame or message: skip this step only
                    return self._skip(f"input '{spec.name}': {error}")
            if spec.dtype.startswith("float"):
                value = apply_normalization(
                    np.asarray(value, dtype=spec.dtype), self.contract.normalization.get(spec.name)
                )
            feeds[spec.name] = value
        return Observation(feeds=feeds, stamp_ns=stamp, age=age)

    def _skip(self, reason: str) -> Skip:
        self.skips[reason] += 1
        return Skip(reason)


def decode_chunk(raw: np.ndarray, spec: OutputSpec, stats: Normalization | None) -> np.ndarray:
    """Model output → ``[horizon, dim]`` float64 in physical units.

    Un-normalises with the contract's statistics, renormalises quaternions of pose spaces
    and clips the gripper channel to [0, 1]. Raises ValueError on a wrong size or a zero
    quaternion (the caller counts it and publishes nothing).
    """
    if raw.size != spec.horizon * spec.dim:
        raise ValueError(f"expected {spec.horizon} x {spec.dim} action values, found shape {list(raw.shape)}")
    chunk = invert_normalization(raw.reshape(spec.horizon, spec.dim).astype(np.float64), stats)
    if spec.action_space in ("ee_pose", "ee_pose_delta"):
        quaternion = chunk[:, 3:7]
        norms = np.linalg.norm(quaternion, axis=1, keepdims=True)
        if np.any(norms < 1e-6):
            raise ValueError("expected unit quaternions in the pose actions, found a zero quaternion")
        chunk[:, 3:7] = quaternion / norms
    if spec.gripper:
        np.clip(chunk[:, -1], 0.0, 1.0, out=chunk[:, -1])
    return chunk


def joint_roles_size(contract: ModelContract) -> dict[str, int]:
    """Static per-sample widths of the joint-based inputs (last axis), by input name."""
    sizes = {}
    for spec in contract.inputs:
        if spec.role in (ROLE_JOINT_POSITIONS, ROLE_JOINT_VELOCITIES, ROLE_GRIPPER_STATE) and spec.shape:
            last = spec.shape[-1]
            if isinstance(last, int):
                sizes[spec.name] = last
    return sizes


def check_arm_compatibility(
    contract: ModelContract, arm_joints: Sequence[str], gripper_joints: Sequence[str]
) -> list[str]:
    """Why this model cannot drive an arm with these joints (empty: it can).

    Joint action spaces need one value per arm joint (or per contract ``joint_names``, which
    must all exist on the arm); end-effector spaces fit any arm, through IK. Joint-based
    inputs must match too; a gripper channel needs a gripper.
    """
    problems: list[str] = []
    dof = len(arm_joints)
    names = contract.joint_names or tuple(arm_joints)
    missing = [n for n in contract.joint_names if n not in arm_joints and n not in gripper_joints]
    if missing:
        problems.append(f"contract joint_names: expected joints of the arm {list(arm_joints)}, found unknown {missing}")
    if contract.kind == "policy":
        action = contract.action_output
        if action.action_space in JOINT_ACTION_SPACES and action.arm_dim != len(names):
            problems.append(
                f"action space {action.action_space}: expected {len(names)} values per waypoint "
                f"(+ gripper) for this arm's {dof} joints, found {action.arm_dim}"
            )
        if action.gripper and not gripper_joints:
            problems.append("gripper channel: expected the arm to have gripper joints, found none")
    for name, width in joint_roles_size(contract).items():
        spec = next(s for s in contract.inputs if s.name == name)
        wanted = len(gripper_joints) if spec.role == ROLE_GRIPPER_STATE else len(names)
        if width != wanted:
            problems.append(f"input '{name}' ({spec.role}): expected {wanted} values for this arm, found {width}")
    return problems
