"""The brain on Gazebo (gz sim) through gz_ros2_control: for integrators who have Gazebo.

    ros2 launch robot_brain gazebo.launch.py robot:=ur5

Needs ros_gz_sim, ros_gz_bridge, gz_ros2_control and the ros2_controllers (not installable
from PyPI: this file is NOT exercised on the project's machines; the pieces it gets from
``robot_brain.bringup.gazebo.gazebo_plan`` are tested as data). It starts Gazebo with an empty
world, publishes the robot description with a generated ``<ros2_control>`` block, spawns
the robot (fixed to the world, meshes as absolute file:// URIs), the joint_state_broadcaster
and the position (or trajectory) controller, bridges /clock, and runs the brain with
use_sim_time. The generated files go to one temporary folder, removed when the launch shuts
down. Gazebo has no task object or camera here: add a camera sensor to your world and bridge
it to /camera/image_raw for perception.
"""

import shutil

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, LogInfo, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from robot_brain.bringup.gazebo import gazebo_plan
from robot_brain.bringup.launch_actions import params_folder, ros_nodes
from robot_brain.bringup.robots import resolve_robot

ARGUMENTS = {
    "robot": ("", "robot preset or bundled arm name (empty: use urdf, else panda)"),
    "urdf": ("", "robot description file (.urdf or .xacro)"),
    "model": ("builtin:reach", "ONNX policy with a contract, or builtin:reach"),
    "mode": ("forward_position", "forward_position or trajectory"),
    "world": ("empty.sdf", "Gazebo world"),
}


def _setup(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    robot = resolve_robot(value["robot"] or None, value["urdf"] or None)
    folder, cleanup = params_folder("robot_brain_gz_")
    try:
        plan = gazebo_plan(robot, folder, value["model"], value["mode"])
    except BaseException:  # the shutdown handler is not registered yet
        shutil.rmtree(folder, ignore_errors=True)
        raise
    gz_sim = IncludeLaunchDescription(
        PythonLaunchDescriptionSource([FindPackageShare("ros_gz_sim"), "/launch/gz_sim.launch.py"]),
        launch_arguments={"gz_args": f"-r {value['world']}"}.items(),
    )
    state_publisher = Node(package="robot_state_publisher", executable="robot_state_publisher", output="screen",
                           parameters=[str(plan.state_publisher_file)])
    spawn = Node(package="ros_gz_sim", executable="create", output="screen",
                 arguments=["-topic", "robot_description", "-name", robot.name])
    spawners = [Node(package="controller_manager", executable="spawner", arguments=[name], output="screen")
                for name in plan.controllers]
    bridge = Node(package="ros_gz_bridge", executable="parameter_bridge", arguments=list(plan.bridge),
                  output="screen")
    notes = [LogInfo(msg=f"robot_brain: {note}") for note in plan.notes]
    return [cleanup, *notes, gz_sim, state_publisher, spawn, *spawners, bridge, *ros_nodes(plan.brain, folder)]


def generate_launch_description():
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, (default, text) in ARGUMENTS.items()),
        OpaqueFunction(function=_setup),
    ])
