"""The reach task: a coloured object on the table, reached by the tool within a tolerance and a time limit.

Episodes are seeded: the same seed places the object at the same spot for the same arm, so
benchmarks are repeatable and two policies can be compared on the same episodes. Each
candidate spot is checked with the arm's own IK (the home tool orientation, from the home
configuration) before it is used, so no episode asks for the impossible.

The task only scores; the simulator owns the physics. Pick-and-place can later add a task
with the same ``start``/``update`` shape and a free object body instead of the mocap one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from robot_brain.embodiment import Arm
from robot_brain.errors import ConfigurationError
from robot_brain.sim.workspace import Layout, reachable_from

_PLACEMENT_ATTEMPTS = 40


@dataclass(frozen=True)
class EpisodeState:
    """Where an episode stands (mirrors ``robot_brain_msgs/EpisodeResult``)."""

    episode: int
    seed: int
    target: np.ndarray  # object centre, base frame
    start_time: float  # sim seconds
    done: bool = False
    success: bool = False
    time_to_success: float = math.nan
    final_distance: float = math.inf
    message: str = "running"
    best_distance: float = math.inf
    tool_path: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)


class ReachTask:
    """Places the object from a seed and decides success or timeout from the tool position."""

    def __init__(self, arm: Arm, layout: Layout, time_limit: float = 0.0, record_path: bool = True) -> None:
        if time_limit < 0:
            raise ConfigurationError(f"time_limit: expected >= 0 s (0: automatic), found {time_limit}")
        self.arm = arm
        self.layout = layout
        #: Automatic limit: ample for a 0.25 m/s reach on a desktop arm, longer for a large one.
        self.time_limit = time_limit or max(8.0, 10.0 * layout.reach)
        self.record_path = record_path
        self._episode = -1

    def place_object(self, seed: int) -> np.ndarray:
        """The object's centre (base frame) for ``seed``: in the sector, on the table, reachable."""
        layout = self.layout
        rng = np.random.default_rng(seed)
        inner, outer = layout.region_radius
        fallback = None
        for _ in range(_PLACEMENT_ATTEMPTS):
            # Uniform over the sector's area, not its radius.
            radius = math.sqrt(rng.uniform(inner * inner, outer * outer))
            yaw = rng.uniform(-layout.region_yaw, layout.region_yaw)
            point = np.array([radius * math.cos(yaw), radius * math.sin(yaw), layout.object_z])
            fallback = point if fallback is None else fallback
            if reachable_from(self.arm, layout.home, layout.home_tool_pose, point):
                return point
        assert fallback is not None
        return fallback

    def start(self, seed: int, now: float) -> EpisodeState:
        self._episode += 1
        return EpisodeState(episode=self._episode, seed=seed, target=self.place_object(seed), start_time=now)

    def update(self, state: EpisodeState, now: float, tool_position: np.ndarray) -> EpisodeState:
        """The state after observing the tool at sim time ``now`` (unchanged once done)."""
        if state.done:
            return state
        distance = float(np.linalg.norm(tool_position - state.target))
        elapsed = now - state.start_time
        if self.record_path:
            state.tool_path.append(np.array([elapsed, *tool_position]))
        best = min(state.best_distance, distance)
        if distance <= self.layout.tolerance:
            return replace(state, done=True, success=True, time_to_success=elapsed, final_distance=distance,
                           best_distance=best, message=f"reached within {self.layout.tolerance * 100:.1f} cm")
        if elapsed >= self.time_limit:
            return replace(state, done=True, success=False, time_to_success=elapsed, final_distance=distance,
                           best_distance=best,
                           message=f"timeout after {self.time_limit:.1f} s (closest {best * 100:.1f} cm)")
        return replace(state, final_distance=distance, best_distance=best)
