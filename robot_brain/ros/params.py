"""Declaring and reading node parameters: the two helpers every node uses.

Kept apart from the model's parameters (:mod:`robot_brain.ros.model_params`), so that a node
that runs no model (arm controller, recorder, sim, teleop) does not import ONNX Runtime.
"""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node


def declare(node: Node, name: str, default: Any, description: str, *, read_only: bool = False) -> None:
    """Declare one parameter with a description (what ``ros2 param describe`` shows).

    ``read_only``: set only when the node starts (params file, ``-p``, overrides); a later
    ``ros2 param set`` from anyone on the DDS domain is refused by rclpy itself.
    """
    node.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=read_only))


def value(node: Node, name: str) -> Any:
    """A parameter's current value."""
    return node.get_parameter(name).value
