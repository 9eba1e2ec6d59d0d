"""Declaring and reading node parameters: the two helpers every node uses.

Kept apart from the model's parameters (:mod:`robot_brain.ros.model_params`), so that a node
that runs no model (arm controller, recorder, sim, teleop) does not import ONNX Runtime.
"""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node


def declare(node: Node, name: str, default: Any, description: str) -> None:
    """Declare one parameter with a description (what ``ros2 param describe`` shows)."""
    node.declare_parameter(name, default, ParameterDescriptor(description=description))


def value(node: Node, name: str) -> Any:
    """A parameter's current value."""
    return node.get_parameter(name).value
