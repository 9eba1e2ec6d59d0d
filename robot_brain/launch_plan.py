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
import numbers
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from robot_brain.embodiment import Arm, load_arm
from robot_brain.embodiment.catalog import BUNDLED_ARMS, bundled_arm_path
from robot_brain.embodiment.description import resolve_resource_uri
from robot_brain.errors import ConfigurationError

if TYPE_CHECKING:
    from robot_brain.sim import Layout

PACKAGE = "robot_brain"
BRAIN_NODES = ("perception", "policy", "arm_controller")
#: Every node a plan may hold (parameter overrides and presets name them).
KNOWN_NODES = (*BRAIN_NODES, "sim", "teleop", "recorder")
COMMAND_MODES = ("forward_position", "trajectory")
DEFAULT_ROBOT = "panda"
DEFAULT_MODEL = "builtin:reach"


# -- configuration files ------------------------------------------------------------------


def config_dir() -> Path:
    """``config/`` of the source tree, else the installed ``share/robot_brain/config``."""
    source = Path(__file__).resolve().parents[1] / "config"
    if source.is_dir():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE)) / "config"
    except Exception:  # PackageNotFoundError, or ament_index missing
        raise ConfigurationError(
            f"robot_brain config: expected {source} or an installed share/{PACKAGE}/config, found neither"
        ) from None


def preset_names() -> list[str]:
    return sorted(path.stem for path in (config_dir() / "robots").glob("*.yaml"))


@dataclass(frozen=True)
class Robot:
    """A robot to run: its description file, chain hints and the preset's parameter refinements."""

    name: str
    urdf: Path
    base_link: str = ""
    tip_link: str = ""
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    preset: Path | None = None

    def load(self) -> Arm:
        return load_arm(self.urdf, base_link=self.base_link or None, tip_link=self.tip_link or None)


def resolve_robot(robot: str | None = None, urdf: str | os.PathLike[str] | None = None) -> Robot:
    """``--robot NAME`` (a preset in ``config/robots``, else a bundled arm) or ``--urdf PATH``.

    With both, the URDF is used with the named preset's refinements.
    """
    if robot is None and urdf is None:
        robot = DEFAULT_ROBOT
    preset = config_dir() / "robots" / f"{robot}.yaml" if robot else None
    data: dict[str, Any] = {}
    if preset is not None and preset.is_file():
        data = _read_yaml(preset)
    elif robot is not None and robot not in BUNDLED_ARMS:
        raise ConfigurationError(
            f"robot '{robot}': expected a preset ({', '.join(preset_names())}) or a bundled arm "
            f"({', '.join(sorted(BUNDLED_ARMS))})"
        )
    else:
        preset = None
    if urdf is not None:
        path = Path(urdf).expanduser()
    elif data.get("urdf"):
        path = Path(str(data["urdf"]))
        path = path if path.is_absolute() or preset is None else (preset.parent / path)
    else:
        path = bundled_arm_path(str(data.get("robot") or robot))
    parameters = data.get("parameters") or {}
    unknown = set(parameters) - set(KNOWN_NODES)
    if unknown:
        raise ConfigurationError(
            f"{preset}: parameters for unknown node(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(KNOWN_NODES)}"
        )
    return Robot(
        name=str(robot or path.stem),
        urdf=path.resolve() if path.exists() else path,
        base_link=str(data.get("base_link") or ""),
        tip_link=str(data.get("tip_link") or ""),
        parameters={node: dict(values or {}) for node, values in parameters.items()},
        preset=preset,
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigurationError(f"{path}: cannot read the YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data


# -- ROS params files ----------------------------------------------------------------------


class _ParamsDumper(yaml.SafeDumper):
    """A YAML dumper for ROS params files: never anchors and aliases.

    PyYAML writes ``&id001``/``*id001`` whenever the same list or dict object appears twice in
    a document (one joint list shared by two controllers, one override dict reused); rcl's
    params parser refuses them ("Will not support aliasing"), and the node, or the whole
    controller manager, then fails to start.
    """

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_params_yaml(document: Mapping[str, Any]) -> str:
    """``document`` as params-file YAML that rcl's own parser reads (the one helper for every params file).

    Besides leaving out aliases, values are put in the forms rcl accepts: tuples become lists,
    numpy and other numeric scalars become ``int``/``float``, and a list mixing integers and
    floats (``[0.4, 1]`` from ``--param``) becomes a list of floats, since rcl refuses mixed
    lists. Lists rcl cannot represent at all raise :class:`ConfigurationError`.
    """
    return yaml.dump(_rcl_value(document, ""), Dumper=_ParamsDumper, sort_keys=False)


def write_params_file(path: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` to ``path`` with :func:`dump_params_yaml`; returns ``path``."""
    path.write_text(dump_params_yaml(document), encoding="utf-8")
    return path


def _rcl_value(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _rcl_value(item, f"{name}.{key}" if name else str(key)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return _rcl_list([_rcl_scalar(item, name) for item in value], name)
    return _rcl_scalar(value, name)


def _rcl_scalar(value: Any, name: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):  # numpy scalars (bool_)
        return _rcl_scalar(value.item(), name)
    raise ConfigurationError(
        f"parameter '{_leaf(name)}': expected a bool, number, string or a list of one of them, "
        f"found {type(value).__name__}"
    )


def _rcl_list(items: list[Any], name: str) -> list[Any]:
    """rcl arrays hold one type: bools, integers, floats or strings; integers mixed with floats become floats."""
    if not items:
        raise ConfigurationError(
            f"parameter '{_leaf(name)}': expected a non-empty list (rcl reads [] as an unset parameter), found []"
        )
    kinds = {"bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else type(v).__name__
             for v in items}
    if kinds == {"number"}:
        return [float(v) for v in items] if any(isinstance(v, float) for v in items) else items
    if len(kinds) == 1 and kinds <= {"bool", "str"}:
        return items
    raise ConfigurationError(
        f"parameter '{_leaf(name)}': expected a list of one type (bools, numbers or strings), found {items!r}"
    )


def _leaf(name: str) -> str:
    """The parameter's own name in a params document path (``/**.ros__parameters.home`` → ``home``)."""
    return name.partition("ros__parameters.")[2] or name


# -- the plan -----------------------------------------------------------------------------


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


def parse_overrides(pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["sim.camera_rate_hz=30", "policy.model_path=m.onnx"]`` → ``{"sim": {...}, "policy": {...}}``.

    Values are parsed as YAML scalars or lists (``30`` is an int, ``[1, 2]`` a list).
    """
    overrides: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        node, dot, name = key.partition(".")
        if not separator or not dot or not node or not name:
            raise ConfigurationError(f"parameter override '{pair}': expected NODE.NAME=VALUE")
        try:
            parsed = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            parsed = text
        overrides.setdefault(node, {})[name] = parsed
    return overrides


def parse_bool(name: str, text: str) -> bool:
    """A launch argument's ``true``/``false`` (also ``1``/``0``, ``yes``/``no``, any case)."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(f"{name}: expected true or false, found '{text}'")


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
    layout = compute_layout(arm, _layout_options(sim.parameters))
    # Perception knows the object's size (apparent-size check) and masks what the sim draws of the arm.
    perception = {"object_size": float(layout.object_size), "self_filter_geometry": _sim_self_filter_geometry(arm)}
    brain = brain_plan(robot, model, command_mode, camera_pose=layout.camera_pose_list(),
                       plane=[0.0, 0.0, 1.0, layout.object_z], use_sim_time=use_sim_time, overrides=overrides,
                       arm=arm, perception_parameters=perception)
    # The sim must place its camera exactly where perception believes it is.
    sim = replace(sim, parameters={**sim.parameters, "camera_pose": layout.camera_pose_list()})
    controller = brain.node("arm_controller")
    sim = replace(sim, parameters={**sim.parameters, **_sim_controller_names(controller.parameters, command_mode)})
    return replace(brain, nodes=(sim, *brain.nodes), notes=layout.notes, layout=layout)


def _sim_self_filter_geometry(arm: Arm) -> str:
    """``both`` when the sim shows some link's collision geometry instead of its visual, else ``visual``.

    MuJoCo cannot decode COLLADA (``.dae``) visuals (example-robot-data's Panda and UR5): the sim
    then draws that link's collision meshes, so perception must mask those; on a real cell the
    camera sees the visuals (the perception node's default).
    """
    from robot_brain.sim.scene import DECODABLE_MESH_SUFFIXES

    for mesh in arm.description.root().iterfind("link/visual/geometry/mesh"):
        if Path(mesh.get("filename", "")).suffix.lower() not in DECODABLE_MESH_SUFFIXES:
            return "both"
    return "visual"


def _sim_controller_names(controller: Mapping[str, Any], command_mode: str) -> dict[str, Any]:
    """The sim listens where the controller publishes (ros2_control controller names)."""
    name = str(controller.get("controller_name") or "").strip("/")
    names: dict[str, Any] = {}
    if name:
        key = "position_controller" if command_mode == "forward_position" else "trajectory_controller"
        names[key] = name
    joints = controller.get("controller_joints")
    if joints and list(joints) != [""]:
        names["position_command_joints"] = list(joints)
    gripper = str(controller.get("gripper_topic") or "")
    if gripper.endswith("/commands"):
        names["gripper_controller"] = gripper.removesuffix("/commands").strip("/")
    return names


def _layout_options(parameters: Mapping[str, Any]) -> Any:
    """The sim node's layout options from its parameters (mirrors ``SimNode._build``)."""
    from robot_brain.sim import LayoutOptions

    def listed(name: str) -> tuple[float, ...]:
        values = list(parameters.get(name, []) or [])
        return () if values in ([0.0], [0], []) else tuple(float(v) for v in values)

    defaults = LayoutOptions()
    return LayoutOptions(
        region_radius=tuple(float(v) for v in parameters.get("region_radius", defaults.region_radius)),  # type: ignore[arg-type]
        region_yaw_deg=float(parameters.get("region_yaw_deg", defaults.region_yaw_deg)),
        object_size=float(parameters.get("object_size", defaults.object_size)),
        tolerance=float(parameters.get("tolerance", defaults.tolerance)),
        home=listed("home"),
        home_height=float(parameters.get("home_height", defaults.home_height)),
        camera_pose=listed("camera_pose"),
        camera_fovy_deg=float(parameters.get("camera_fovy_deg", defaults.camera_fovy_deg)),
    )


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
    defaults = _declared_defaults(defaults_file)
    typed = {key: _typed_like(f"{name}.{key}", value, defaults[key]) if key in defaults else value
             for key, value in parameters.items()}
    return NodeSpec(name=name, executable=name, parameters=typed, defaults_file=defaults_file)


def _declared_defaults(path: Path) -> dict[str, Any]:
    """The ``/**`` parameters of a node's defaults file (``{}`` when there is none)."""
    if not path.is_file():
        return {}
    section = _read_yaml(path).get("/**") or {}
    return _flat_parameters(dict((section.get("ros__parameters") if isinstance(section, dict) else None) or {}))


def _flat_parameters(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params-file keys (``axis_linear: {x: 1}``, teleop_twist_joy's style) as parameter names."""
    flat: dict[str, Any] = {}
    for key, item in values.items():
        if isinstance(item, Mapping):
            flat.update(_flat_parameters(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def _typed_like(name: str, value: Any, default: Any) -> Any:
    """``value`` in the type the node declares (its default's type), or a one-line error.

    rclpy refuses an override whose type differs from the declared one ("Trying to set
    parameter 'camera_rate_hz' to '30' of type 'INTEGER', expecting type 'DOUBLE'") and the
    node dies at start-up, so ``--param sim.camera_rate_hz=30`` is made ``30.0`` here, and a
    value that cannot be converted is refused before any process starts.
    """
    if isinstance(default, list) and isinstance(value, (list, tuple)):
        if not default or not value:
            return list(value)
        return [_typed_like(name, item, default[0]) for item in value]
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) and isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)):
        return float(value)
    elif isinstance(default, float) and isinstance(value, str) and _is_float(value):
        return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
    elif isinstance(default, int) and isinstance(value, (int, float)) and float(value).is_integer():
        return int(value)
    elif isinstance(default, str) and isinstance(value, str):
        return value
    elif not isinstance(default, (list, bool, int, float, str)):
        return value
    raise ConfigurationError(
        f"parameter '{name}': expected {_kind(default)} (the node declares {default!r}), found {value!r}"
    )


def _is_float(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _kind(default: Any) -> str:
    if isinstance(default, list):
        return f"a list of {_kind(default[0]).removeprefix('a ').removeprefix('an ')}s" if default else "a list"
    return {bool: "a bool", int: "an integer", float: "a number", str: "a string"}.get(type(default), "a value")


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


# -- Gazebo (gz sim + gz_ros2_control) ------------------------------------------------------

WORLD_LINK = "world"


def gazebo_controllers(arm: Arm, update_rate: int = 500) -> dict[str, Any]:
    """``controller_manager`` parameters for gz_ros2_control: the controllers the brain commands."""
    joints = list(arm.spec.joint_names)
    gripper = [name for name in arm.spec.gripper_joints if name not in arm.spec.mimic_joints]
    document: dict[str, Any] = {
        "controller_manager": {"ros__parameters": {
            "update_rate": update_rate,
            "joint_state_broadcaster": {"type": "joint_state_broadcaster/JointStateBroadcaster"},
            "forward_position_controller": {"type": "forward_command_controller/ForwardCommandController"},
            "joint_trajectory_controller": {"type": "joint_trajectory_controller/JointTrajectoryController"},
        }},
        "forward_position_controller": {"ros__parameters": {"joints": joints, "interface_name": "position"}},
        "joint_trajectory_controller": {"ros__parameters": {
            "joints": joints, "command_interfaces": ["position"], "state_interfaces": ["position", "velocity"],
        }},
    }
    if gripper:
        document["controller_manager"]["ros__parameters"]["gripper_controller"] = {
            "type": "forward_command_controller/ForwardCommandController"}
        document["gripper_controller"] = {"ros__parameters": {"joints": gripper, "interface_name": "position"}}
    return document


def gazebo_description(arm: Arm, controllers_file: Path) -> str:
    """The arm's URDF made ready for gz sim + gz_ros2_control, as one self-contained string.

    - fixed to the world: a ``world`` link and a fixed joint to the root link, unless the root
      already is ``world`` (panda, iiwa and so101 would otherwise spawn free-floating);
    - other simulators' pieces removed: ``<transmission>`` blocks (ros_control's, read by
      neither gz nor ros2_control outside ``<ros2_control>``), every ``<plugin>`` inside
      ``<gazebo>`` extensions (Gazebo-classic ``libgazebo_ros_control.so`` and the like, which
      would fight our controller manager) and any existing ``<ros2_control>`` block; the
      remaining ``<gazebo reference=...>`` properties (self-collision, friction) stay;
    - mesh URIs rewritten to absolute ``file://`` URIs resolved by the project's own resolver
      (``package://`` through the ament index and pip robot-data prefixes, paths relative to
      the URDF): once the URDF travels as a string (robot_description → ``ros_gz_sim create``)
      neither relative paths nor a pip package's ``package://`` name can be found by gz, and a
      resource path variable could not express relative paths at all. Unresolvable URIs are
      left as they are (see :func:`gazebo_plan`'s notes);
    - a ``<ros2_control>`` block (GazeboSimSystem): arm joints and driven gripper joints with a
      position command interface (limits as ``min``/``max``), mimic gripper joints with state
      interfaces only, as ros2_control (Jazzy, Kilted) requires of joints carrying a URDF
      ``<mimic>`` tag: their leader is in the same block, and gz_ros2_control drives them;
    - the ``gz_ros2_control-system`` plugin reading ``controllers_file``.
    """
    root = arm.description.root()
    for tag in ("ros2_control", "transmission"):
        for existing in root.findall(tag):
            root.remove(existing)
    for extension in root.findall("gazebo"):
        for parent in list(extension.iter()):
            for plugin in parent.findall("plugin"):
                parent.remove(plugin)
        if len(extension) == 0:
            root.remove(extension)
    if arm.tree.root != WORLD_LINK and WORLD_LINK not in arm.tree.links:
        ET.SubElement(root, "link", name=WORLD_LINK)
        joint = ET.SubElement(root, "joint", name=_unique_joint_name(arm, f"{WORLD_LINK}_to_{arm.tree.root}"),
                              type="fixed")
        ET.SubElement(joint, "parent", link=WORLD_LINK)
        ET.SubElement(joint, "child", link=arm.tree.root)
    for mesh in root.iter("mesh"):
        path = resolve_resource_uri(mesh.get("filename", ""), arm.description.base_dir)
        if path is not None:
            mesh.set("filename", path.resolve().as_uri())

    control = ET.SubElement(root, "ros2_control", name="GazeboSimSystem", type="system")
    hardware = ET.SubElement(control, "hardware")
    ET.SubElement(hardware, "plugin").text = "gz_ros2_control/GazeboSimSystem"
    limits = dict(zip(arm.spec.joint_names, zip(arm.spec.lower, arm.spec.upper, strict=True), strict=True))
    limits.update(zip(arm.spec.gripper_joints, zip(arm.spec.gripper_lower, arm.spec.gripper_upper, strict=True),
                      strict=True))
    driven = _driven_joints(arm)
    for name in driven:
        joint = ET.SubElement(control, "joint", name=name)
        command = ET.SubElement(joint, "command_interface", name="position")
        low, high = limits[name]
        if math.isfinite(low) and math.isfinite(high):
            ET.SubElement(command, "param", name="min").text = f"{low:g}"
            ET.SubElement(command, "param", name="max").text = f"{high:g}"
        ET.SubElement(joint, "state_interface", name="position")
        ET.SubElement(joint, "state_interface", name="velocity")
    for name in _mimic_gripper_joints(arm, driven):
        joint = ET.SubElement(control, "joint", name=name)
        ET.SubElement(joint, "state_interface", name="position")
        ET.SubElement(joint, "state_interface", name="velocity")
    gazebo = ET.SubElement(root, "gazebo")
    plugin = ET.SubElement(gazebo, "plugin", filename="gz_ros2_control-system",
                           name="gz_ros2_control::GazeboSimROS2ControlPlugin")
    ET.SubElement(plugin, "parameters").text = str(controllers_file)
    return ET.tostring(root, encoding="unicode")


def _driven_joints(arm: Arm) -> list[str]:
    """Joints with a command interface: the arm, then the gripper joints that lead rather than mimic."""
    return [*arm.spec.joint_names, *(j for j in arm.spec.gripper_joints if j not in arm.spec.mimic_joints)]


def _mimic_gripper_joints(arm: Arm, driven: Sequence[str]) -> list[str]:
    """Gripper joints that mimic a driven joint (ros2_control needs the leader in the same block)."""
    return [j for j in arm.spec.gripper_joints if arm.spec.mimic_joints.get(j) in driven]


def _unique_joint_name(arm: Arm, name: str) -> str:
    candidate, index = name, 1
    while candidate in arm.tree.joints:
        candidate, index = f"{name}_{index}", index + 1
    return candidate


@dataclass(frozen=True)
class GazeboPlan:
    """What ``launch/gazebo.launch.py`` starts besides the brain (needs ros_gz_sim, gz_ros2_control).

    Every file it names lies in the folder given to :func:`gazebo_plan`.
    """

    brain: LaunchPlan
    robot_description: str
    controllers_file: Path
    state_publisher_file: Path  # robot_state_publisher's params: robot_description and use_sim_time
    controllers: tuple[str, ...]
    bridge: tuple[str, ...]
    notes: tuple[str, ...] = ()


def gazebo_plan(robot: Robot, folder: Path, model: str = DEFAULT_MODEL, command_mode: str = "forward_position",
                overrides: Mapping[str, Mapping[str, Any]] | None = None, arm: Arm | None = None) -> GazeboPlan:
    """The brain on Gazebo: robot description with ros2_control, controller config, spawners, bridge.

    Writes the controllers YAML and robot_state_publisher's params file to ``folder`` (with
    :func:`dump_params_yaml`, so rcl reads them); the brain's params files are written where
    the caller writes them (``plan.brain.write_params``). Gazebo itself is not exercised on
    these machines; the generated pieces are tested as data and parsed by rcl.
    """
    arm = arm if arm is not None else robot.load()
    folder.mkdir(parents=True, exist_ok=True)
    document = gazebo_controllers(arm)
    controllers_file = write_params_file(folder / "gz_controllers.yaml", document)
    active = "forward_position_controller" if command_mode == "forward_position" else "joint_trajectory_controller"
    spawned = ["joint_state_broadcaster", active, *(["gripper_controller"] if "gripper_controller" in document else [])]
    brain = brain_plan(robot, model, command_mode, use_sim_time=True, overrides=overrides, arm=arm)
    description = gazebo_description(arm, controllers_file)
    state_publisher_file = write_params_file(
        folder / "robot_state_publisher.params.yaml",
        {"/**": {"ros__parameters": {"robot_description": description, "use_sim_time": True}}},
    )
    unresolved = sorted({m.get("filename", "") for m in ET.fromstring(description).iter("mesh")
                         if not m.get("filename", "").startswith("file://")})
    return GazeboPlan(
        brain=brain,
        robot_description=description,
        controllers_file=controllers_file,
        state_publisher_file=state_publisher_file,
        controllers=tuple(spawned),
        bridge=("/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock",),
        notes=tuple(f"mesh '{uri}' not found: Gazebo shows that link without it" for uri in unresolved),
    )
