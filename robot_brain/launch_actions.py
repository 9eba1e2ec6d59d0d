"""launch_ros actions for a launch plan: the one piece the ``launch/*.launch.py`` files share.

Imported only by launch files: ``launch_ros`` exists on a full ROS 2 install, not in the
PyPI-wheel environment, so nothing else in robot_brain imports this module.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from robot_brain.launch_plan import LaunchPlan


def ros_nodes(plan: LaunchPlan) -> list[Any]:
    """One ``launch_ros`` Node per planned node, with the same params files ``robot-brain up`` passes."""
    from launch_ros.actions import Node

    files = plan.write_params(Path(tempfile.mkdtemp(prefix="robot_brain_launch_")))
    return [
        Node(
            package="robot_brain",
            executable=spec.executable,
            name=spec.name,
            output="screen",
            parameters=[str(path) for path in spec.params_files(files[spec.name])],
            remappings=list(spec.remappings),
        )
        for spec in plan.nodes
    ]
