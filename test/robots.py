"""Paths to real robot descriptions shipped by pip packages (example-robot-data, pybullet_data).

Tests load arms from here so every check runs on URDFs that real users have, not on
hand-made toys.
"""

from __future__ import annotations

import site
from pathlib import Path

import pybullet_data


def _example_robot_data() -> Path:
    for site_dir in site.getsitepackages():
        root = Path(site_dir) / "cmeel.prefix" / "share" / "example-robot-data" / "robots"
        if root.is_dir():
            return root
    raise FileNotFoundError("example-robot-data is not installed (pip install example-robot-data)")


ERD = _example_robot_data()
PYBULLET = Path(pybullet_data.getDataPath())

ARMS: dict[str, Path] = {
    "ur5": ERD / "ur_description/urdf/ur5_robot.urdf",
    "panda": ERD / "panda_description/urdf/panda.urdf",
    "xarm7": ERD / "xarm_description/urdf/xarm7.urdf",
    "so101": ERD / "so_arm_description/urdf/so101.urdf",
    "z1": ERD / "z1_description/urdf/z1.urdf",
    "kinova": ERD / "kinova_description/robots/kinova.urdf",
    "panda_pybullet": PYBULLET / "franka_panda/panda.urdf",
    "iiwa": PYBULLET / "kuka_iiwa/model.urdf",
    "xarm6": PYBULLET / "xarm/xarm6_robot.urdf",
    "xarm6_gripper": PYBULLET / "xarm/xarm6_with_gripper.urdf",
}

#: A two-armed robot: its tree has no unique arm chain.
BAXTER = ERD / "baxter_description/urdf/baxter.urdf"
