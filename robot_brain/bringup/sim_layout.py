"""What the sim node and the brain must agree on when both run from one plan.

No tf2 here: the sim places its camera and table from the arm's workspace layout, and the plan
hands perception the same numbers, computed with the sim's own layout options; the sim listens
on the controller's topics; perception masks what the sim draws of the arm.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robot_brain.embodiment import Arm


def sim_self_filter_geometry(arm: Arm) -> str:
    """``both`` when the sim shows some link's collision geometry instead of its visual, else ``visual``.

    MuJoCo cannot decode COLLADA (``.dae``) visuals (example-robot-data's Panda and UR5): the sim
    then draws that link's collision meshes, so perception must mask those; on a real cell the
    camera sees the visuals (the perception node's default).
    """
    from robot_brain.sim.scene import DECODABLE_MESH_SUFFIXES

    for mesh in arm.description.root().iterfind("link/visual/geometry/mesh"):
        if Path(mesh.get("filename", "")).suffix.lower() not in DECODABLE_MESH_SUFFIXES:
            return "both"
    return "visual"


def sim_controller_names(controller: Mapping[str, Any], command_mode: str) -> dict[str, Any]:
    """The sim listens where the controller publishes (ros2_control controller names)."""
    name = str(controller.get("controller_name") or "").strip("/")
    names: dict[str, Any] = {}
    if name:
        key = "position_controller" if command_mode == "forward_position" else "trajectory_controller"
        names[key] = name
    joints = controller.get("controller_joints")
    if joints and list(joints) != [""]:
        names["position_command_joints"] = list(joints)
    gripper = str(controller.get("gripper_topic") or "")
    if gripper.endswith("/commands"):
        names["gripper_controller"] = gripper.removesuffix("/commands").strip("/")
    return names


def layout_options(parameters: Mapping[str, Any]) -> Any:
    """The sim node's layout options from its parameters (mirrors ``SimNode._build``)."""
    from robot_brain.sim import LayoutOptions

    def listed(name: str) -> tuple[float, ...]:
        values = list(parameters.get(name, []) or [])
        return () if values in ([0.0], [0], []) else tuple(float(v) for v in values)

    defaults = LayoutOptions()
    return LayoutOptions(
        region_radius=tuple(float(v) for v in parameters.get("region_radius", defaults.region_radius)),  # type: ignore[arg-type]
        region_yaw_deg=float(parameters.get("region_yaw_deg", defaults.region_yaw_deg)),
        object_size=float(parameters.get("object_size", defaults.object_size)),
        tolerance=float(parameters.get("tolerance", defaults.tolerance)),
        home=listed("home"),
        home_height=float(parameters.get("home_height", defaults.home_height)),
        camera_pose=listed("camera_pose"),
        camera_fovy_deg=float(parameters.get("camera_fovy_deg", defaults.camera_fovy_deg)),
    )
