"""The single description of which nodes run, with which parameters and remappings.

``launch/*.launch.py`` (for ``ros2 launch`` on a full ROS install) and ``robot-brain up``
(separate processes over DDS, no launch system needed) both call these functions, so the
node list is tested once, here, and the two ways to start the brain cannot drift apart.

Parameters are layered, last wins:

1. each node's declared defaults, mirrored in ``config/<node>.yaml`` (passed first, so an
   edit there takes effect);
2. values the plan derives: the robot description for every node, ``autostart``, and for
   the simulator the camera extrinsics and table plane the perception node needs (no tf2
   here: the sim and perception get the same numbers from the same workspace layout);
3. the robot preset's ``parameters`` (``config/robots/<name>.yaml``): a preset refines, a
   new URDF works without one;
4. explicit overrides (``robot-brain up --param node.name=value``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robot_brain.bringup.params_files import declared_defaults, typed_like, write_params_file
from robot_brain.bringup.robots import KNOWN_NODES, PACKAGE, Robot, config_dir
from robot_brain.bringup.sim_layout import layout_options, sim_controller_names, sim_self_filter_geometry
from robot_brain.embodiment import Arm
from robot_brain.errors import ConfigurationError

if TYPE_CHECKING:
    from robot_brain.sim import Layout

COMMAND_MODES = ("forward_position", "trajectory")
DEFAULT_MODEL = "builtin:reach"


@dataclass(frozen=True)
class NodeSpec:
    """One node: what to run and how to configure it (what a ``launch_ros`` ``Node`` needs)."""

    name: str
    executable: str  # console script of the robot_brain package (also robot_brain.nodes.<executable>)
    parameters: Mapping[str, Any]
    remappings: tuple[tuple[str, str], ...] = ()
    defaults_file: Path | None = None

    @property
    def module(self) -> str:
        return f"{PACKAGE}.nodes.{self.executable}"

    def params_document(self) -> dict[str, Any]:
        """The ROS 2 params-file document of this node's parameters."""
        return {"/**": {"ros__parameters": dict(self.parameters)}}

    def params_files(self, params_file: Path) -> list[Path]:
        """The node's params files in load order: its config defaults (when present), then ``params_file``."""
        defaults = [self.defaults_file] if self.defaults_file is not None and self.defaults_file.is_file() else []
        return [*defaults, params_file]

    def ros_arguments(self, params_file: Path) -> list[str]:
        """``--ros-args`` for a process running this node with its parameters in ``params_file``."""
        arguments = ["--ros-args", "-r", f"__node:={self.name}"]
        for path in self.params_files(params_file):
            arguments += ["--params-file", str(path)]
        for source, target in self.remappings:
            arguments += ["-r", f"{source}:={target}"]
        return arguments


@dataclass(frozen=True)
class LaunchPlan:
    """The nodes of one launch, in start order.

    ``arm`` (and for a sim plan ``layout``) is what the plan was computed from, kept so that a
    caller in the same process (``robot-brain demo``) uses it instead of loading the URDF and
    computing the workspace again.
    """

    robot: Robot
    nodes: tuple[NodeSpec, ...]
    notes: tuple[str, ...] = ()
    arm: Arm | None = field(default=None, compare=False, repr=False)
    layout: Layout | None = field(default=None, compare=False, repr=False)

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(f"no node '{name}' in the plan; nodes are {', '.join(n.name for n in self.nodes)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.nodes)

    def write_params(self, folder: Path) -> dict[str, Path]:
        """One params file per node in ``folder``; returns node name → file."""
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for spec in self.nodes:
            files[spec.name] = write_params_file(folder / f"{spec.name}.params.yaml", spec.params_document())
        return files

    def commands(self, folder: Path, python: str) -> dict[str, list[str]]:
        """The command line of each node's process (params files written to ``folder``)."""
        files = self.write_params(folder)
        return {spec.name: [python, "-m", spec.module, *spec.ros_arguments(files[spec.name])] for spec in self.nodes}


def brain_plan(
    robot: Robot,
    model: str = DEFAULT_MODEL,
    command_mode: str = "forward_position",
    controller_name: str = "",
    gripper_topic: str = "/gripper_controller/commands",
    camera_pose: Sequence[float] | None = None,
    plane: Sequence[float] | None = None,
    use_sim_time: bool = False,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    arm: Arm | None = None,
    perception_parameters: Mapping[str, Any] | None = None,
) -> LaunchPlan:
    """perception + policy + arm_controller for ``robot`` on a real cell (or any ros2_control cell).

    ``camera_pose`` (optical frame in the base frame, ``[x y z qx qy qz qw]``) and ``plane``
    (``[nx ny nz d]`` of the table in the base frame) configure perception; on hardware they
    come from the cell's calibration (pass them, or set them in the preset). ``arm`` is
    ``robot`` already loaded (loaded here otherwise, once, and kept in the plan).
    ``perception_parameters`` are more derived values for perception (the sim's object size),
    below the preset and the overrides.
    """
    if command_mode not in COMMAND_MODES:
        raise ConfigurationError(f"command mode: expected one of {', '.join(COMMAND_MODES)}, found '{command_mode}'")
    if not model:
        raise ConfigurationError("model: expected an ONNX file or builtin:reach, found an empty string")
    if model != DEFAULT_MODEL and not model.startswith("builtin:") and not Path(model).expanduser().is_file():
        raise ConfigurationError(f"model: {model}: no such file (expected an ONNX model or builtin:reach)")
    arm = arm if arm is not None else robot.load()
    description = _description_parameters(robot)
    common: dict[str, Any] = {"use_sim_time": use_sim_time}
    # The description lets perception mask the arm out of the image (its self-filter needs the
    # camera pose in the arm's base link, which target_frame is).
    perception: dict[str, Any] = {**common, **description, "autostart": True,
                                  "target_frame": robot.base_link or arm.spec.base_link}
    if camera_pose is not None:
        perception["camera_pose"] = [float(v) for v in camera_pose]
    if plane is not None:
        perception["plane"] = [float(v) for v in plane]
    perception.update(perception_parameters or {})
    policy = {**common, **description, "autostart": True,
              "model_path": str(Path(model).expanduser().resolve()) if Path(model).expanduser().is_file() else model}
    controller = {**common, **description, "autostart": True, "command_mode": command_mode,
                  "controller_name": controller_name, "gripper_topic": gripper_topic}
    nodes = [
        _node("perception", perception, robot, overrides),
        _node("policy", policy, robot, overrides),
        _node("arm_controller", controller, robot, overrides),
    ]
    return LaunchPlan(robot=robot, nodes=tuple(nodes), arm=arm)


def sim_plan(
    robot: Robot,
    model: str = DEFAULT_MODEL,
    command_mode: str = "forward_position",
    real_time_factor: float = 1.0,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    arm: Arm | None = None,
) -> LaunchPlan:
    """The MuJoCo sim node plus the brain, wired so perception sees what the sim renders.

    The camera extrinsics and the table plane come from the arm's workspace layout, computed
    here with the sim's own layout options (preset and overrides included), so the numbers
    handed to perception are the ones the sim uses to place its camera. The arm is loaded
    and the layout computed once; both are kept in the plan (``plan.arm``, ``plan.layout``).
    """
    from robot_brain.sim import compute_layout

    if real_time_factor < 0 or not math.isfinite(real_time_factor):
        raise ConfigurationError(f"real_time_factor: expected >= 0, found {real_time_factor}")
    use_sim_time = real_time_factor != 1.0
    sim_parameters: dict[str, Any] = {**_description_parameters(robot), "real_time_factor": float(real_time_factor),
                                      "use_sim_time": use_sim_time}
    sim = _node("sim", sim_parameters, robot, overrides)
    arm = arm if arm is not None else robot.load()
    layout = compute_layout(arm, layout_options(sim.parameters))
    # Perception knows the object's size (apparent-size check) and masks what the sim draws of the arm.
    perception = {"object_size": float(layout.object_size), "self_filter_geometry": sim_self_filter_geometry(arm)}
    brain = brain_plan(robot, model, command_mode, camera_pose=layout.camera_pose_list(),
                       plane=[0.0, 0.0, 1.0, layout.object_z], use_sim_time=use_sim_time, overrides=overrides,
                       arm=arm, perception_parameters=perception)
    # The sim must place its camera exactly where perception believes it is.
    sim = replace(sim, parameters={**sim.parameters, "camera_pose": layout.camera_pose_list()})
    controller = brain.node("arm_controller")
    sim = replace(sim, parameters={**sim.parameters, **sim_controller_names(controller.parameters, command_mode)})
    return replace(brain, nodes=(sim, *brain.nodes), notes=layout.notes, layout=layout)


def _description_parameters(robot: Robot) -> dict[str, Any]:
    return {"urdf_path": str(robot.urdf), "base_link": robot.base_link, "tip_link": robot.tip_link}


def _node(name: str, derived: Mapping[str, Any], robot: Robot,
          overrides: Mapping[str, Mapping[str, Any]] | None) -> NodeSpec:
    parameters = {**derived, **robot.parameters.get(name, {}), **((overrides or {}).get(name, {}))}
    unknown = set(overrides or {}) - set(KNOWN_NODES)
    if unknown:
        raise ConfigurationError(
            f"parameter overrides for unknown node(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(KNOWN_NODES)}"
        )
    defaults_file = config_dir() / f"{name}.yaml"
    defaults = declared_defaults(defaults_file)
    typed = {key: typed_like(f"{name}.{key}", value, defaults[key]) if key in defaults else value
             for key, value in parameters.items()}
    return NodeSpec(name=name, executable=name, parameters=typed, defaults_file=defaults_file)


# -- teleoperation and recording -----------------------------------------------------------


def teleop_plan(
    base: LaunchPlan,
    *,
    teleop: Mapping[str, Any] | None = None,
    record: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> LaunchPlan:
    """An operator at the arm: ``base`` (``sim_plan`` or ``brain_plan``) without the policy, plus teleop.

    The controller, perception (the recorded target point) and the sim stay as planned; the
    teleop node gets the robot description (frames, jog joints) and ``teleop``'s parameters;
    with ``record`` (the recorder's parameters: ``operator`` pseudonym, ``task``,
    ``data_root``) a recorder joins, started last and stopped after the controller, so the
    braking at the end of a session is recorded too.
    """
    robot = base.robot
    description = _description_parameters(robot)
    common = {"use_sim_time": bool(base.node("arm_controller").parameters.get("use_sim_time", False))}
    nodes = [spec for spec in base.nodes if spec.name != "policy"]
    nodes.append(_node("teleop", {**common, **description, "autostart": True, **(teleop or {})}, robot, overrides))
    if record is not None:
        nodes.append(_node("recorder", {**common, **description, "autostart": True, **record}, robot, overrides))
    return replace(base, nodes=tuple(nodes))


#: What drives the arm in a recorded session, and so who its episodes may be attributed to.
DRIVERS = ("pad", "scripted")


def record_parameters(operator: str, task: str, data_root: str, *, driven_by: str) -> dict[str, Any]:
    """The recorder's parameters, with the operator resolved to a pseudonym here (the name stays local).

    Who is recorded follows from what drives the arm, not from the label given: ``driven_by``
    ``"pad"`` (a game pad or ``/joy``: a person) needs an enrolled person with ``record``
    consent, never ``scripted`` or ``policy:``; ``"scripted"`` (the scripted operator this
    process runs itself, ``robot-brain collect``) records as ``scripted[:<name>]`` only, never
    as a person. Anything else is a one-line ``ConfigurationError`` that repeats no name.
    """
    if driven_by not in DRIVERS:
        raise ValueError(f"driven_by: expected one of {', '.join(DRIVERS)}, found {driven_by!r}")
    if not operator:
        who = "an enrolled operator" if driven_by == "pad" else "scripted"
        raise ConfigurationError(f"--record needs --operator NAME ({who})")
    from robot_brain.consent.operators import non_human_kind
    from robot_brain.consent.registry import ConsentRegistry
    from robot_brain.storage.paths import resolve_data_root

    kind = non_human_kind(operator) or "human"
    if driven_by == "pad" and kind != "human":
        raise ConfigurationError(
            f"recording refused: a person drives this arm with a pad, so --operator must be that person, "
            f"enrolled with record consent, not '{operator}' (scripted and policy: label machine-made episodes)"
        )
    if driven_by == "scripted" and kind != "scripted":
        raise ConfigurationError(
            "recording refused: the scripted operator drives this arm, so its episodes are recorded as scripted "
            "or scripted:<name>, never under a person's name or pseudonym"
        )
    root = resolve_data_root(data_root or None)
    decision = ConsentRegistry(root).check(operator, "record")
    if not decision.allowed:
        raise ConfigurationError(f"recording refused: {decision.reason} (see robot-brain consent --help)")
    return {"operator": decision.pseudonym, "task": task, "data_root": str(root)}
