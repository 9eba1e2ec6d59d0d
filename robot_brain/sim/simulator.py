"""Stepping the scene: ros2_control-style commands, the real-time lock, the task (no ROS).

What the simulator accepts mirrors the controllers of a real cell so the brain cannot tell
the two apart:

- ``command_positions``: a ``forward_position_controller`` command (one position per joint,
  in a fixed joint order); it cancels a running trajectory;
- ``command_trajectory``: a ``joint_trajectory_controller`` goal (points with
  ``time_from_start``), followed by linear interpolation from the current targets,
  joints it does not name hold their targets;
- ``command_gripper``: a gripper forward command (one position per driven gripper joint).

Targets are clipped to the joint limits, as the position interfaces of ros2_control do.
All methods are thread-safe: ROS callbacks set commands while the physics thread steps.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from robot_brain.errors import ConfigurationError
from robot_brain.sim.scene import Scene
from robot_brain.sim.task import EpisodeState, ReachTask


@dataclass(frozen=True)
class JointSnapshot:
    """Joint state at one sim time, in ``Scene.state_joints`` order."""

    time: float
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


class _Trajectory:
    """Piecewise-linear joint targets in sim time over a subset of the actuated joints."""

    def __init__(self, indices: np.ndarray, start_time: float, start: np.ndarray, times: np.ndarray,
                 points: np.ndarray) -> None:
        self.indices = indices
        self.times = np.concatenate([[start_time], start_time + times])
        self.points = np.vstack([start[None, :], points])

    def sample(self, now: float) -> np.ndarray:
        return np.array([np.interp(now, self.times, self.points[:, j]) for j in range(self.points.shape[1])])

    def finished(self, now: float) -> bool:
        return now >= self.times[-1]


class Simulator:
    """The physics of one scene with its task."""

    def __init__(self, scene: Scene, task: ReachTask, seed: int = 0) -> None:
        self.scene = scene
        self.task = task
        self.model = scene.model
        self.data = mujoco.MjData(self.model)
        self._lock = threading.RLock()
        spec = scene.arm.spec
        self.command_joints: tuple[str, ...] = (*spec.joint_names, *scene.gripper_joints)
        self._actuators = np.concatenate([scene.arm_actuators, scene.gripper_actuators]).astype(int)
        self._lower = np.concatenate([spec.lower, scene.gripper_lower])
        self._upper = np.concatenate([spec.upper, scene.gripper_upper])
        self._targets = np.zeros(len(self.command_joints))
        self._trajectory: _Trajectory | None = None
        self.episode: EpisodeState | None = None
        self.reset(seed)

    # -- episodes -------------------------------------------------------------------------

    def reset(self, seed: int) -> EpisodeState:
        """Arm at home, gripper open, object placed from ``seed``; starts a new episode."""
        with self._lock:
            scene = self.scene
            now = self.data.time
            state = self.task.start(seed, now)
            mujoco.mj_resetData(self.model, self.data)
            self.data.time = now  # sim time (and /clock) stays monotonic across episodes
            self.data.qpos[scene.arm_qpos] = scene.layout.home
            dof = scene.arm.spec.dof
            self._targets[:dof] = scene.layout.home
            self._targets[dof:] = scene.arm.spec.gripper_open_closed()[0]
            self.data.qpos[scene.gripper_qpos] = self._targets[dof:]
            self.data.ctrl[self._actuators] = self._targets
            self._trajectory = None
            self.data.mocap_pos[scene.object_mocap] = scene.world_from_base(state.target)
            mujoco.mj_forward(self.model, self.data)
            self.episode = state
            return state

    def result(self) -> EpisodeState:
        with self._lock:
            assert self.episode is not None
            return self.episode

    # -- commands -------------------------------------------------------------------------

    def joint_indices(self, names: Sequence[str]) -> np.ndarray:
        """Indices into ``command_joints``; raises ConfigurationError naming unknown joints."""
        known = {name: i for i, name in enumerate(self.command_joints)}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigurationError(
                f"unknown joint(s) {', '.join(unknown)}; expected names from {', '.join(self.command_joints)}"
            )
        if len(set(names)) != len(names):
            raise ConfigurationError(f"joint names repeat: {', '.join(names)}")
        return np.array([known[name] for name in names], dtype=int)

    def command_positions(
        self, indices: np.ndarray, positions: Sequence[float], cancel_trajectory: bool = True
    ) -> None:
        """Set position targets for ``indices`` (from :meth:`joint_indices`); cancels a trajectory by default."""
        values = np.asarray(positions, dtype=float)
        if values.shape != indices.shape or not np.all(np.isfinite(values)):
            raise ConfigurationError(f"expected {len(indices)} finite positions, found {list(values)}")
        with self._lock:
            if cancel_trajectory:
                self._trajectory = None
            self._set_targets(indices, values)

    def command_gripper(self, positions: Sequence[float]) -> None:
        dof = self.scene.arm.spec.dof
        count = len(self.scene.gripper_joints)
        if count == 0:
            raise ConfigurationError(f"{self.scene.arm.spec.name} has no driven gripper joint to command")
        # A separate controller on a real cell: it leaves the arm's trajectory running.
        self.command_positions(np.arange(dof, dof + count), positions, cancel_trajectory=False)

    def command_trajectory(self, names: Sequence[str], times: Sequence[float], points: Sequence[Sequence[float]],
                           delay: float = 0.0) -> None:
        """Follow ``points`` (one row per time, columns in ``names`` order), starting ``delay`` s from now."""
        indices = self.joint_indices(names)
        times_array = np.asarray(times, dtype=float) + max(delay, 0.0)
        points_array = np.asarray(points, dtype=float).reshape(len(times_array), len(indices))
        if len(times_array) == 0:
            with self._lock:
                self._trajectory = None  # an empty trajectory stops the current one, as in ros2_control
            return
        if np.any(np.diff(times_array) <= 0.0) or times_array[0] < 0.0 or not np.all(np.isfinite(points_array)):
            raise ConfigurationError("trajectory: expected increasing time_from_start and finite positions")
        with self._lock:
            start = self._targets[indices].copy()
            self._trajectory = _Trajectory(indices, self.data.time, start, times_array, points_array)

    def _set_targets(self, indices: np.ndarray, values: np.ndarray) -> None:
        self._targets[indices] = np.clip(values, self._lower[indices], self._upper[indices])
        self.data.ctrl[self._actuators] = self._targets

    # -- stepping -------------------------------------------------------------------------

    def step(self, count: int = 1) -> None:
        """Advance ``count`` physics steps, following any trajectory and scoring the episode."""
        with self._lock:
            for _ in range(count):
                trajectory = self._trajectory
                if trajectory is not None:
                    self._set_targets(trajectory.indices, trajectory.sample(self.data.time))
                    if trajectory.finished(self.data.time):
                        self._trajectory = None
                mujoco.mj_step(self.model, self.data)
            assert self.episode is not None
            self.episode = self.task.update(self.episode, self.data.time, self.tool_position())

    @property
    def time(self) -> float:
        return float(self.data.time)

    def tool_position(self) -> np.ndarray:
        """The tool (tip link origin) in the arm's base frame."""
        return self.scene.base_from_world(self.data.site_xpos[self.scene.tool_site])

    def joint_state(self) -> JointSnapshot:
        scene = self.scene
        with self._lock:
            return JointSnapshot(
                time=float(self.data.time),
                position=self.data.qpos[scene.state_qpos].copy(),
                velocity=self.data.qvel[scene.state_dof].copy(),
                effort=self.data.qfrc_actuator[scene.state_dof].copy(),
            )

    def copy_kinematics(self, into: mujoco.MjData) -> float:
        """Copy what a renderer needs (positions, mocap) into ``into``; returns the sim time."""
        with self._lock:
            into.qpos[:] = self.data.qpos
            into.mocap_pos[:] = self.data.mocap_pos
            into.mocap_quat[:] = self.data.mocap_quat
            into.time = self.data.time
        mujoco.mj_kinematics(self.model, into)
        mujoco.mj_camlight(self.model, into)
        return float(into.time)


class RealTimeLock:
    """Paces sim time against the wall clock and measures the real-time factor.

    ``factor`` 1.0 locks the sim to real time; 2.0 runs twice as fast; 0 runs as fast as
    the CPU allows (evaluation mode, with ``use_sim_time`` consumers). Deadlines are
    absolute, so a slow cycle is caught up instead of accumulating drift.
    """

    def __init__(self, timestep: float, factor: float = 1.0, window_s: float = 2.0) -> None:
        if factor < 0.0 or not math.isfinite(factor):
            raise ConfigurationError(f"real_time_factor: expected >= 0 (0: as fast as possible), found {factor}")
        self.timestep = timestep
        self.factor = factor
        self._wall_start = time.perf_counter()
        self._sim_start = 0.0
        self._samples: deque[tuple[float, float]] = deque()
        self._window = window_s
        self.max_steps_per_cycle = 50  # beyond this the sim falls behind rather than freezing the loop

    def restart(self, sim_time: float) -> None:
        self._wall_start = time.perf_counter()
        self._sim_start = sim_time

    def steps_due(self, sim_time: float, cycle_steps: int) -> int:
        """Physics steps to take now so sim time keeps pace with the wall clock."""
        if self.factor == 0.0:
            return cycle_steps
        target = self._sim_start + (time.perf_counter() - self._wall_start) * self.factor
        due = int((target - sim_time) / self.timestep + 1e-9)
        if due > self.max_steps_per_cycle:
            # Too far behind (a stall): drop the backlog rather than fast-forward.
            self.restart(sim_time + self.max_steps_per_cycle * self.timestep)
            return self.max_steps_per_cycle
        return max(due, 0)

    def record(self, sim_time: float) -> None:
        now = time.perf_counter()
        self._samples.append((now, sim_time))
        while self._samples and now - self._samples[0][0] > self._window:
            self._samples.popleft()

    @property
    def measured(self) -> float:
        """Sim seconds per wall second over the last window (nan until two samples)."""
        if len(self._samples) < 2:
            return math.nan
        (wall0, sim0), (wall1, sim1) = self._samples[0], self._samples[-1]
        return (sim1 - sim0) / (wall1 - wall0) if wall1 > wall0 else math.nan


class StateStamps:
    """The wall-clock stamp of each recent sim state, so a camera frame carries its state's stamp.

    The physics thread stamps the joint states it publishes (a catch-up after a stall spreads
    its states over the time up to *now*). The render thread copies the state at some sim time
    and must stamp the frame with the instant that state's joint state carries: stamped with
    the wall clock at render time instead, a frame rendered while physics was catching up
    shows the arm where it was up to a stall earlier, and whoever pairs frames with joint states
    by stamp (the self-filter's mask, a recorder's frame alignment) pairs a picture with another
    pose. Thread-safe; the physics thread records a state's stamp before stepping to it, so a
    renderer that copies the state at once still finds it.
    """

    def __init__(self, timestep: float, capacity: int = 256) -> None:
        self._tolerance = timestep / 2.0
        self._stamps: deque[tuple[float, int]] = deque(maxlen=capacity)
        self._guard = threading.Lock()

    def record(self, sim_time: float, stamp_ns: int) -> None:
        """The state at ``sim_time`` is (or is about to be) published stamped ``stamp_ns``."""
        with self._guard:
            if self._stamps and sim_time < self._stamps[-1][0] - self._tolerance:
                self._stamps.clear()  # time went back (a new timeline): older stamps describe other states
            self._stamps.append((sim_time, stamp_ns))

    def clear(self) -> None:
        with self._guard:
            self._stamps.clear()

    def stamp_ns(self, sim_time: float, now_ns: int, factor: float) -> int:
        """The stamp of the state at ``sim_time``, never after ``now_ns``.

        A state that was recorded gets its recorded stamp. One that was not (stepped without
        being published after a long stall, or before any record) is placed from the newest
        recorded state before it at ``factor`` sim seconds per wall second; with no such state,
        or at ``factor`` 0 (as fast as possible, no wall-clock relation), it is ``now_ns``.
        """
        with self._guard:
            for recorded_time, stamp in reversed(self._stamps):
                if abs(recorded_time - sim_time) <= self._tolerance:
                    return min(stamp, now_ns)
                if recorded_time < sim_time:
                    if factor <= 0.0:
                        return now_ns
                    return min(stamp + int((sim_time - recorded_time) / factor * 1e9), now_ns)
        return now_ns
