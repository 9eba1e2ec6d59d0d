"""launch_ros actions for a launch plan: the one piece the ``launch/*.launch.py`` files share.

Imported only by launch files: ``launch``/``launch_ros`` exist on a full ROS 2 install, not in
the PyPI-wheel environment, so nothing else in robot_brain imports this module.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from robot_brain.bringup.isolation import dds_environment
from robot_brain.bringup.plan import LaunchPlan
from robot_brain.bringup.robots import PACKAGE


def params_folder(prefix: str = "robot_brain_launch_") -> tuple[Path, Any]:
    """A fresh folder for one launch's params files, and the action that removes it at shutdown.

    The files must outlive the launch description (nodes, and gz_ros2_control, read them when
    they start), so they cannot be removed when the description is built; an ``OnShutdown``
    handler removes the folder when the launch ends, however it ends (Ctrl-C, a node exiting
    with ``on_exit`` shutdown, an error), so no launch leaves a folder behind in /tmp.
    """
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnShutdown

    folder = Path(tempfile.mkdtemp(prefix=prefix))

    def remove(event: Any, context: Any) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    return folder, RegisterEventHandler(OnShutdown(on_shutdown=remove))


def ros_nodes(plan: LaunchPlan, folder: Path) -> list[Any]:
    """One ``launch_ros`` Node per planned node, with the params files ``robot-brain up`` passes (in ``folder``).

    Each node also gets the environment ``robot-brain up`` gives it: the shipped Fast DDS profile,
    without which camera frames do not cross processes (unless the launching shell names its own).
    """
    from launch_ros.actions import Node

    files = plan.write_params(folder)
    environment = dds_environment()
    return [
        Node(
            package=PACKAGE,
            executable=spec.executable,
            name=spec.name,
            output="screen",
            parameters=[str(path) for path in spec.params_files(files[spec.name])],
            remappings=list(spec.remappings),
            additional_env=dict(environment),
        )
        for spec in plan.nodes
    ]


def plan_actions(plan: LaunchPlan, prefix: str = "robot_brain_launch_") -> list[Any]:
    """The cleanup handler and the nodes of ``plan``, its params in a folder removed at shutdown."""
    folder, cleanup = params_folder(prefix)
    try:
        nodes = ros_nodes(plan, folder)
    except BaseException:  # e.g. a parameter rcl cannot represent; the shutdown handler is not registered yet
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return [cleanup, *nodes]
