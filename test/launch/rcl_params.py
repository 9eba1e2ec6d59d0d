"""Read params files with rcl's own parser, the one every ROS 2 node (and the controller manager) uses.

PyYAML accepts documents rcl refuses (anchors and aliases, lists mixing integers and floats),
so params files are checked here the way a node reads them: ``rclpy.init`` with
``--ros-args --params-file`` in a fresh context (rcl parses the files then, and fails the
init on any error), then a node of the given name that declares whatever the files set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.node import Node


class RclParseError(Exception):
    """rcl refused a params file; the message is rcl's."""


def rcl_parameters(files: Sequence[Path], node_name: str = "probe",
                   declared: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parameters rcl gives a node called ``node_name`` from ``files`` (later files win).

    Without ``declared``, every parameter the files set is declared with the type rcl read.
    With it, the node declares exactly those parameters with those defaults, as the real node
    does (rclpy raises ``InvalidParameterTypeException`` when a file gives one another type).
    """
    arguments = ["--ros-args"]
    for path in files:
        arguments += ["--params-file", str(path)]
    context = Context()
    try:
        rclpy.init(args=arguments, context=context)
    except Exception as error:  # RCLError: rcl's parser message
        raise RclParseError(str(error)) from None
    try:
        node = Node(node_name, context=context, automatically_declare_parameters_from_overrides=declared is None,
                    start_parameter_services=False, enable_rosout=False)
        try:
            for name, default in (declared or {}).items():
                node.declare_parameter(name, default)
            return {name: parameter.value for name, parameter in node.get_parameters_by_prefix("").items()}
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
