"""Robot descriptions that ship inside pip packages, by short name.

``example-robot-data`` and ``pybullet_data`` carry real URDFs (with meshes) in their wheels,
so the demo, the tests and the benchmarks run on real arms with no download. Any other arm
is used by path: nothing in the brain depends on this list.
"""

from __future__ import annotations

import site
from pathlib import Path

from robot_brain.errors import DescriptionError

#: name -> (provider, path inside the provider's robot folder)
BUNDLED_ARMS: dict[str, tuple[str, str]] = {
    "ur5": ("example-robot-data", "ur_description/urdf/ur5_robot.urdf"),
    "ur3": ("example-robot-data", "ur_description/urdf/ur3_robot.urdf"),
    "ur10": ("example-robot-data", "ur_description/urdf/ur10_robot.urdf"),
    "panda": ("example-robot-data", "panda_description/urdf/panda.urdf"),
    "xarm7": ("example-robot-data", "xarm_description/urdf/xarm7.urdf"),
    "so100": ("example-robot-data", "so_arm_description/urdf/so100.urdf"),
    "so101": ("example-robot-data", "so_arm_description/urdf/so101.urdf"),
    "z1": ("example-robot-data", "z1_description/urdf/z1.urdf"),
    "kinova": ("example-robot-data", "kinova_description/robots/kinova.urdf"),
    "baxter": ("example-robot-data", "baxter_description/urdf/baxter.urdf"),
    "panda_pybullet": ("pybullet_data", "franka_panda/panda.urdf"),
    "iiwa": ("pybullet_data", "kuka_iiwa/model.urdf"),
    "xarm6": ("pybullet_data", "xarm/xarm6_robot.urdf"),
    "xarm6_gripper": ("pybullet_data", "xarm/xarm6_with_gripper.urdf"),
}


def example_robot_data_root() -> Path:
    """``.../cmeel.prefix/share/example-robot-data/robots`` of the installed example-robot-data."""
    for site_dir in site.getsitepackages():
        root = Path(site_dir) / "cmeel.prefix" / "share" / "example-robot-data" / "robots"
        if root.is_dir():
            return root
    raise DescriptionError("example-robot-data is not installed (pip install example-robot-data)")


def pybullet_data_root() -> Path:
    try:
        import pybullet_data
    except ImportError:
        raise DescriptionError("pybullet_data is not installed (pip install pybullet)") from None
    return Path(pybullet_data.getDataPath())


def bundled_arm_path(name: str) -> Path:
    """Path of a bundled robot description by short name (see :data:`BUNDLED_ARMS`)."""
    if name not in BUNDLED_ARMS:
        raise DescriptionError(f"unknown robot '{name}'; bundled robots are: {', '.join(sorted(BUNDLED_ARMS))}")
    provider, relative = BUNDLED_ARMS[name]
    root = example_robot_data_root() if provider == "example-robot-data" else pybullet_data_root()
    path = root / relative
    if not path.is_file():
        raise DescriptionError(f"robot '{name}': {path} is missing from the installed {provider}")
    return path
