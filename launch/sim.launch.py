"""The brain on the embedded MuJoCo simulator: sim + perception + policy + arm_controller.

    ros2 launch robot_brain sim.launch.py robot:=panda model:=builtin:reach

The same plan as ``robot-brain up --sim`` (``robot_brain.bringup.plan.sim_plan``): the camera
extrinsics and table plane handed to perception are the ones the sim uses.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from robot_brain.bringup.launch_actions import plan_actions
from robot_brain.bringup.plan import sim_plan
from robot_brain.bringup.robots import resolve_robot

ARGUMENTS = {
    "robot": ("", "robot preset or bundled arm name (empty: use urdf, else panda)"),
    "urdf": ("", "robot description file (.urdf or .xacro)"),
    "model": ("builtin:reach", "ONNX policy with a contract, or builtin:reach"),
    "mode": ("forward_position", "forward_position or trajectory"),
    "real_time_factor": ("1.0", "sim speed; other than 1, every node uses /clock (use_sim_time)"),
}


def _setup(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    robot = resolve_robot(value["robot"] or None, value["urdf"] or None)
    return plan_actions(sim_plan(robot, value["model"], value["mode"], float(value["real_time_factor"])))


def generate_launch_description():
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, (default, text) in ARGUMENTS.items()),
        OpaqueFunction(function=_setup),
    ])
