"""An operator drives the arm with a game pad: teleop + arm_controller (+ MuJoCo sim and perception).

    ros2 launch robot_brain teleop.launch.py robot:=panda sim:=true
    ros2 launch robot_brain teleop.launch.py urdf:=/path/arm.urdf input:=joy     # a cell running joy/game_controller

The same plan as ``robot-brain teleop`` (``robot_brain.bringup.plan.teleop_plan``). Recording:
``operator:=NAME`` (or the pseudonym) of a person enrolled with record consent in the data root
(``$ROBOT_BRAIN_DATA_ROOT``); the name is resolved to the pseudonym here, before any node starts.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from robot_brain.bringup.launch_actions import plan_actions
from robot_brain.bringup.params_files import parse_bool
from robot_brain.bringup.plan import brain_plan, record_parameters, sim_plan, teleop_plan
from robot_brain.bringup.robots import resolve_robot

ARGUMENTS = {
    "robot": ("", "robot preset or bundled arm name (empty: use urdf, else panda)"),
    "urdf": ("", "robot description file (.urdf or .xacro)"),
    "sim": ("false", "also run the MuJoCo simulator (and perception)"),
    "mode": ("forward_position", "forward_position or trajectory"),
    "input": ("sdl", "sdl (a game pad through SDL2) or joy (sensor_msgs/Joy)"),
    "device": ("0", "sdl: the pad's SDL index or a substring of its name"),
    "operator": ("", "record episodes of this enrolled person (name or op-... pseudonym); empty: no recorder"),
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
    # The name is resolved to a pseudonym here, before any node starts (a parameter is public on
    # /parameter_events); a pad is driven by a person, so only an enrolled person is accepted.
    record = record_parameters(value["operator"], value["task"], "", driven_by="pad") if value["operator"] else None
    return plan_actions(teleop_plan(base, teleop=teleop, record=record))


def generate_launch_description():
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, (default, text) in ARGUMENTS.items()),
        OpaqueFunction(function=_setup),
    ])
