"""An operator drives the arm with a game pad: teleop + arm_controller (+ MuJoCo sim and perception).

    ros2 launch robot_brain teleop.launch.py robot:=panda sim:=true
    ros2 launch robot_brain teleop.launch.py urdf:=/path/arm.urdf input:=joy     # a cell running joy/game_controller

The same plan as ``robot-brain teleop`` (``robot_brain.bringup.plan.teleop_plan``). Recording
needs the consent registry to turn the operator's name into a pseudonym: use
``robot-brain teleop --record --operator NAME``, or pass the pseudonym as ``operator``.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from robot_brain.bringup.launch_actions import plan_actions
from robot_brain.bringup.params_files import parse_bool
from robot_brain.bringup.plan import brain_plan, sim_plan, teleop_plan
from robot_brain.bringup.robots import resolve_robot

ARGUMENTS = {
    "robot": ("", "robot preset or bundled arm name (empty: use urdf, else panda)"),
    "urdf": ("", "robot description file (.urdf or .xacro)"),
    "sim": ("false", "also run the MuJoCo simulator (and perception)"),
    "mode": ("forward_position", "forward_position or trajectory"),
    "input": ("sdl", "sdl (a game pad through SDL2) or joy (sensor_msgs/Joy)"),
    "device": ("0", "sdl: the pad's SDL index or a substring of its name"),
    "operator": ("", "record episodes as this operator pseudonym (op-..., or scripted); empty: no recorder"),
    "task": ("", "task text of recorded episodes"),
    "use_sim_time": ("false", "every node uses /clock"),
}


def _setup(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    robot = resolve_robot(value["robot"] or None, value["urdf"] or None)
    if parse_bool("sim", value["sim"]):
        base = sim_plan(robot, command_mode=value["mode"])
    else:
        sim_time = parse_bool("use_sim_time", value["use_sim_time"])
        base = brain_plan(robot, command_mode=value["mode"], use_sim_time=sim_time)
    device = value["device"]
    teleop = {"input": value["input"], **({"device_id": int(device)} if device.isdigit() else {"device_name": device})}
    record = {"operator": value["operator"], "task": value["task"]} if value["operator"] else None
    return plan_actions(teleop_plan(base, teleop=teleop, record=record))


def generate_launch_description():
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, (default, text) in ARGUMENTS.items()),
        OpaqueFunction(function=_setup),
    ])
