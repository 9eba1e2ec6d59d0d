"""The brain on a real ros2_control cell: perception + policy + arm_controller.

    ros2 launch robot_brain brain.launch.py urdf:=/path/robot.urdf model:=policy.onnx \
        mode:=forward_position controller:=forward_position_controller use_sim_time:=false

Thin by design: the node list, parameters and remappings come from
``robot_brain.bringup.plan.brain_plan`` (tested, and shared with ``robot-brain up``).
Perception needs the camera's pose in the arm's base frame (``camera_pose:=[x,y,z,qx,qy,qz,qw]``)
and the table plane (``plane:=[0,0,1,d]``) from your cell's calibration, or set them in the preset.
"""

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from robot_brain.bringup.launch_actions import plan_actions
from robot_brain.bringup.params_files import parse_bool
from robot_brain.bringup.plan import brain_plan
from robot_brain.bringup.robots import resolve_robot

ARGUMENTS = {
    "robot": ("", "robot preset or bundled arm name (empty: use urdf, else panda)"),
    "urdf": ("", "robot description file (.urdf or .xacro)"),
    "model": ("builtin:reach", "ONNX policy with a contract, or builtin:reach"),
    "mode": ("forward_position", "forward_position (Float64MultiArray) or trajectory (JointTrajectory)"),
    "controller": ("", "ros2_control controller name (empty: the default for the mode)"),
    "gripper_topic": ("/gripper_controller/commands", "gripper Float64MultiArray topic"),
    "camera_pose": ("", "camera optical frame in the base frame, [x,y,z,qx,qy,qz,qw] (empty: preset/default)"),
    "plane": ("", "table plane in the base frame, [nx,ny,nz,d] (empty: preset/default)"),
    "use_sim_time": ("false", "true: every node follows /clock (a simulated cell, a bag replay)"),
}


def _setup(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    robot = resolve_robot(value["robot"] or None, value["urdf"] or None)
    plan = brain_plan(
        robot, value["model"], value["mode"], value["controller"], value["gripper_topic"],
        camera_pose=yaml.safe_load(value["camera_pose"]) if value["camera_pose"] else None,
        plane=yaml.safe_load(value["plane"]) if value["plane"] else None,
        use_sim_time=parse_bool("use_sim_time", value["use_sim_time"]),
    )
    return plan_actions(plan)


def generate_launch_description():
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, (default, text) in ARGUMENTS.items()),
        OpaqueFunction(function=_setup),
    ])
