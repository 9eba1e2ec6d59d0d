"""Embedded MuJoCo simulator: scene from a URDF, the reach task, rendering (ROS-free).

``workspace`` derives the task layout from the arm's reach (also used by the launch plan for
the camera extrinsics), ``scene`` compiles the URDF with actuators and an environment,
``task`` scores reach episodes, ``simulator`` steps physics under ros2_control-style
commands, ``rendering`` draws camera images offscreen.
"""

from __future__ import annotations

from dataclasses import dataclass

from robot_brain.embodiment import Arm
from robot_brain.sim.scene import Scene, SceneOptions, build_scene
from robot_brain.sim.simulator import RealTimeLock, Simulator, StateStamps
from robot_brain.sim.task import EpisodeState, ReachTask
from robot_brain.sim.workspace import Layout, LayoutOptions, compute_layout

__all__ = [
    "EpisodeState",
    "Layout",
    "LayoutOptions",
    "ReachTask",
    "RealTimeLock",
    "Scene",
    "SceneOptions",
    "Simulation",
    "Simulator",
    "StateStamps",
    "build_simulation",
    "compute_layout",
]


@dataclass
class Simulation:
    """Everything one simulated cell is made of."""

    arm: Arm
    layout: Layout
    scene: Scene
    task: ReachTask
    simulator: Simulator


def build_simulation(
    arm: Arm,
    layout_options: LayoutOptions | None = None,
    scene_options: SceneOptions | None = None,
    time_limit: float = 0.0,
    seed: int = 0,
) -> Simulation:
    """Layout, scene, task and simulator for ``arm`` (the arm at home, episode 0 placed from ``seed``)."""
    layout = compute_layout(arm, layout_options or LayoutOptions())
    scene = build_scene(arm, layout, scene_options or SceneOptions())
    task = ReachTask(arm, layout, time_limit)
    return Simulation(arm, layout, scene, task, Simulator(scene, task, seed))
