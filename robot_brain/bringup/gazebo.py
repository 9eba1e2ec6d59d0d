"""The brain on Gazebo (gz sim + gz_ros2_control): the description rewritten, controllers, spawners, bridge.

Used by ``launch/gazebo.launch.py``; Gazebo itself is not installable on these machines, so
what this module generates is tested as data and parsed by rcl.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_brain.bringup.params_files import write_params_file
from robot_brain.bringup.plan import DEFAULT_MODEL, LaunchPlan, brain_plan
from robot_brain.bringup.robots import Robot
from robot_brain.embodiment import Arm
from robot_brain.embodiment.description import resolve_resource_uri

WORLD_LINK = "world"


def gazebo_controllers(arm: Arm, update_rate: int = 500) -> dict[str, Any]:
    """``controller_manager`` parameters for gz_ros2_control: the controllers the brain commands."""
    joints = list(arm.spec.joint_names)
    gripper = [name for name in arm.spec.gripper_joints if name not in arm.spec.mimic_joints]
    document: dict[str, Any] = {
        "controller_manager": {"ros__parameters": {
            "update_rate": update_rate,
            "joint_state_broadcaster": {"type": "joint_state_broadcaster/JointStateBroadcaster"},
            "forward_position_controller": {"type": "forward_command_controller/ForwardCommandController"},
            "joint_trajectory_controller": {"type": "joint_trajectory_controller/JointTrajectoryController"},
        }},
        "forward_position_controller": {"ros__parameters": {"joints": joints, "interface_name": "position"}},
        "joint_trajectory_controller": {"ros__parameters": {
            "joints": joints, "command_interfaces": ["position"], "state_interfaces": ["position", "velocity"],
        }},
    }
    if gripper:
        document["controller_manager"]["ros__parameters"]["gripper_controller"] = {
            "type": "forward_command_controller/ForwardCommandController"}
        document["gripper_controller"] = {"ros__parameters": {"joints": gripper, "interface_name": "position"}}
    return document


def gazebo_description(arm: Arm, controllers_file: Path) -> str:
    """The arm's URDF made ready for gz sim + gz_ros2_control, as one self-contained string.

    - fixed to the world: a ``world`` link and a fixed joint to the root link, unless the root
      already is ``world`` (panda, iiwa and so101 would otherwise spawn free-floating);
    - other simulators' pieces removed: ``<transmission>`` blocks (ros_control's, read by
      neither gz nor ros2_control outside ``<ros2_control>``), every ``<plugin>`` inside
      ``<gazebo>`` extensions (Gazebo-classic ``libgazebo_ros_control.so`` and the like, which
      would fight our controller manager) and any existing ``<ros2_control>`` block; the
      remaining ``<gazebo reference=...>`` properties (self-collision, friction) stay;
    - mesh URIs rewritten to absolute ``file://`` URIs resolved by the project's own resolver
      (``package://`` through the ament index and pip robot-data prefixes, paths relative to
      the URDF): once the URDF travels as a string (robot_description → ``ros_gz_sim create``)
      neither relative paths nor a pip package's ``package://`` name can be found by gz, and a
      resource path variable could not express relative paths at all. Unresolvable URIs are
      left as they are (see :func:`gazebo_plan`'s notes);
    - a ``<ros2_control>`` block (GazeboSimSystem): arm joints and driven gripper joints with a
      position command interface (limits as ``min``/``max``), mimic gripper joints with state
      interfaces only, as ros2_control (Jazzy, Kilted) requires of joints carrying a URDF
      ``<mimic>`` tag: their leader is in the same block, and gz_ros2_control drives them;
    - the ``gz_ros2_control-system`` plugin reading ``controllers_file``.
    """
    root = arm.description.root()
    for tag in ("ros2_control", "transmission"):
        for existing in root.findall(tag):
            root.remove(existing)
    for extension in root.findall("gazebo"):
        for parent in list(extension.iter()):
            for plugin in parent.findall("plugin"):
                parent.remove(plugin)
        if len(extension) == 0:
            root.remove(extension)
    if arm.tree.root != WORLD_LINK and WORLD_LINK not in arm.tree.links:
        ET.SubElement(root, "link", name=WORLD_LINK)
        joint = ET.SubElement(root, "joint", name=_unique_joint_name(arm, f"{WORLD_LINK}_to_{arm.tree.root}"),
                              type="fixed")
        ET.SubElement(joint, "parent", link=WORLD_LINK)
        ET.SubElement(joint, "child", link=arm.tree.root)
    for mesh in root.iter("mesh"):
        path = resolve_resource_uri(mesh.get("filename", ""), arm.description.base_dir)
        if path is not None:
            mesh.set("filename", path.resolve().as_uri())

    control = ET.SubElement(root, "ros2_control", name="GazeboSimSystem", type="system")
    hardware = ET.SubElement(control, "hardware")
    ET.SubElement(hardware, "plugin").text = "gz_ros2_control/GazeboSimSystem"
    limits = dict(zip(arm.spec.joint_names, zip(arm.spec.lower, arm.spec.upper, strict=True), strict=True))
    limits.update(zip(arm.spec.gripper_joints, zip(arm.spec.gripper_lower, arm.spec.gripper_upper, strict=True),
                      strict=True))
    driven = _driven_joints(arm)
    for name in driven:
        joint = ET.SubElement(control, "joint", name=name)
        command = ET.SubElement(joint, "command_interface", name="position")
        low, high = limits[name]
        if math.isfinite(low) and math.isfinite(high):
            ET.SubElement(command, "param", name="min").text = f"{low:g}"
            ET.SubElement(command, "param", name="max").text = f"{high:g}"
        ET.SubElement(joint, "state_interface", name="position")
        ET.SubElement(joint, "state_interface", name="velocity")
    for name in _mimic_gripper_joints(arm, driven):
        joint = ET.SubElement(control, "joint", name=name)
        ET.SubElement(joint, "state_interface", name="position")
        ET.SubElement(joint, "state_interface", name="velocity")
    gazebo = ET.SubElement(root, "gazebo")
    plugin = ET.SubElement(gazebo, "plugin", filename="gz_ros2_control-system",
                           name="gz_ros2_control::GazeboSimROS2ControlPlugin")
    ET.SubElement(plugin, "parameters").text = str(controllers_file)
    return ET.tostring(root, encoding="unicode")


def _driven_joints(arm: Arm) -> list[str]:
    """Joints with a command interface: the arm, then the gripper joints that lead rather than mimic."""
    return [*arm.spec.joint_names, *(j for j in arm.spec.gripper_joints if j not in arm.spec.mimic_joints)]


def _mimic_gripper_joints(arm: Arm, driven: Sequence[str]) -> list[str]:
    """Gripper joints that mimic a driven joint (ros2_control needs the leader in the same block)."""
    return [j for j in arm.spec.gripper_joints if arm.spec.mimic_joints.get(j) in driven]


def _unique_joint_name(arm: Arm, name: str) -> str:
    candidate, index = name, 1
    while candidate in arm.tree.joints:
        candidate, index = f"{name}_{index}", index + 1
    return candidate


@dataclass(frozen=True)
class GazeboPlan:
    """What ``launch/gazebo.launch.py`` starts besides the brain (needs ros_gz_sim, gz_ros2_control).

    Every file it names lies in the folder given to :func:`gazebo_plan`.
    """

    brain: LaunchPlan
    robot_description: str
    controllers_file: Path
    state_publisher_file: Path  # robot_state_publisher's params: robot_description and use_sim_time
    controllers: tuple[str, ...]
    bridge: tuple[str, ...]
    notes: tuple[str, ...] = ()


def gazebo_plan(robot: Robot, folder: Path, model: str = DEFAULT_MODEL, command_mode: str = "forward_position",
                overrides: Mapping[str, Mapping[str, Any]] | None = None, arm: Arm | None = None) -> GazeboPlan:
    """The brain on Gazebo: robot description with ros2_control, controller config, spawners, bridge.

    Writes the controllers YAML and robot_state_publisher's params file to ``folder`` (with
    :func:`dump_params_yaml`, so rcl reads them); the brain's params files are written where
    the caller writes them (``plan.brain.write_params``). Gazebo itself is not exercised on
    these machines; the generated pieces are tested as data and parsed by rcl.
    """
    arm = arm if arm is not None else robot.load()
    folder.mkdir(parents=True, exist_ok=True)
    document = gazebo_controllers(arm)
    controllers_file = write_params_file(folder / "gz_controllers.yaml", document)
    active = "forward_position_controller" if command_mode == "forward_position" else "joint_trajectory_controller"
    spawned = ["joint_state_broadcaster", active, *(["gripper_controller"] if "gripper_controller" in document else [])]
    brain = brain_plan(robot, model, command_mode, use_sim_time=True, overrides=overrides, arm=arm)
    description = gazebo_description(arm, controllers_file)
    state_publisher_file = write_params_file(
        folder / "robot_state_publisher.params.yaml",
        {"/**": {"ros__parameters": {"robot_description": description, "use_sim_time": True}}},
    )
    unresolved = sorted({m.get("filename", "") for m in ET.fromstring(description).iter("mesh")
                         if not m.get("filename", "").startswith("file://")})
    return GazeboPlan(
        brain=brain,
        robot_description=description,
        controllers_file=controllers_file,
        state_publisher_file=state_publisher_file,
        controllers=tuple(spawned),
        bridge=("/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock",),
        notes=tuple(f"mesh '{uri}' not found: Gazebo shows that link without it" for uri in unresolved),
    )
