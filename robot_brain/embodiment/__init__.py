"""URDF/xacro loading, arm-chain discovery, joint limits and Pinocchio kinematics (ROS-free).

Typical use::

    from robot_brain.embodiment import load_arm

    arm = load_arm("panda.urdf")            # or a .xacro path, or a robot_description XML string
    arm.spec.joint_names, arm.spec.lower     # the chain and its limits
    pose = arm.kinematics.fk(q)              # 4x4 tip pose in the base frame
    result = arm.kinematics.ik(target_pose)  # damped least squares with joint limits
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from robot_brain.embodiment.arm import ArmSpec, UrdfTree, find_arm
from robot_brain.embodiment.description import RobotDescription, load_description
from robot_brain.embodiment.kinematics import ArmKinematics, IKOptions, IKResult

__all__ = [
    "Arm",
    "ArmKinematics",
    "ArmSpec",
    "IKOptions",
    "IKResult",
    "RobotDescription",
    "UrdfTree",
    "find_arm",
    "load_arm",
    "load_description",
]


@dataclass(frozen=True)
class Arm:
    """An arm found in a robot description: its specification, kinematics and source."""

    spec: ArmSpec
    kinematics: ArmKinematics
    description: RobotDescription
    tree: UrdfTree


def load_arm(
    source: str | os.PathLike[str],
    base_link: str | None = None,
    tip_link: str | None = None,
    xacro_args: Mapping[str, str] | None = None,
) -> Arm:
    """Load a description (file, xacro or XML string), find its arm chain and build its kinematics.

    Raises:
        robot_brain.errors.DescriptionError: the description cannot be loaded or has no usable chain.
    """
    description = load_description(source, xacro_args)
    tree = UrdfTree.from_description(description)
    spec = find_arm(tree, base_link=base_link, tip_link=tip_link)
    return Arm(spec=spec, kinematics=ArmKinematics(spec, description, tree), description=description, tree=tree)
