"""How every robot_brain node that needs the arm gets it: the same parameters, one loader.

Nodes take the robot description from the ``robot_description`` parameter (URDF XML, the ROS
convention) or ``urdf_path`` (a .urdf or .xacro file), with optional ``base_link`` and
``tip_link`` overrides of the detected chain. A problem raises a one-line ``UserError`` that
the node skeleton turns into a failed ``configure``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rclpy.node import Node

from robot_brain.errors import ConfigurationError
from robot_brain.ros.params import value

if TYPE_CHECKING:
    from robot_brain.embodiment import Arm

#: The robot description parameters every node that needs the arm declares (name, default, description).
ARM_PARAMETERS: tuple[tuple[str, str, str], ...] = (
    ("robot_description", "", "URDF XML of the robot (takes precedence over urdf_path)"),
    ("urdf_path", "", "Robot description file: .urdf or .xacro"),
    ("base_link", "", "Base link of the arm chain (empty: automatic)"),
    ("tip_link", "", "Tool link of the arm chain (empty: automatic)"),
)


def arm_from_parameters(node: Node, *, required: bool = True) -> Arm | None:
    """The node's arm from ``robot_description`` or ``urdf_path`` (``None`` if optional and absent).

    Raises:
        ConfigurationError: required but neither parameter is set.
        robot_brain.errors.DescriptionError: the description cannot be loaded or has no usable chain.
    """
    source = str(value(node, "robot_description")) or str(value(node, "urdf_path"))
    if not source:
        if not required:
            return None
        raise ConfigurationError(
            f"{node.get_name()}: expected a robot description in robot_description or urdf_path, found neither"
        )
    from robot_brain.embodiment import load_arm  # Pinocchio is imported only when a robot is given

    # load_arm logs each default-limit warning once per process: the node does not repeat them.
    return load_arm(
        source, base_link=str(value(node, "base_link")) or None, tip_link=str(value(node, "tip_link")) or None
    )
