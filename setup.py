"""ament_python package of robot_brain.

The same file serves `pip install -e .` (PyPI ROS 2 wheels, no ROS install) and
`colcon build` on a full ROS 2 install. The ROS interfaces in `msg/` are a separate
ament_cmake package (`robot_brain_msgs`) built by `tools/build_interfaces.py` or colcon.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "robot_brain"

# One console script per node, plus the `robot-brain` command-line tool.
NODE_SCRIPTS = {
    "arm_controller": "robot_brain.nodes.arm_controller:main",
    "policy": "robot_brain.nodes.policy:main",
    "perception": "robot_brain.nodes.perception:main",
    "sim": "robot_brain.nodes.sim:main",
    "recorder": "robot_brain.nodes.recorder:main",
    "teleop": "robot_brain.nodes.teleop:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),  # *.xml: the Fast DDS profile
        (f"share/{PACKAGE}/config/robots", glob("config/robots/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="robot_brain maintainers",
    maintainer_email="maintainers@robot-brain.invalid",
    description="Run one learned generalist policy on any URDF robot arm over ROS 2.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in NODE_SCRIPTS.items()]
        + ["robot-brain = robot_brain.cli.main:main"],
    },
)
