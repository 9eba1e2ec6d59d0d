"""A MuJoCo scene built from the same URDF the brain drives (``mujoco.MjSpec``, no ROS).

MuJoCo reads a URDF but adds no actuators, floor, lights or cameras, cannot follow
``package://`` paths and cannot decode COLLADA (``.dae``). This module:

1. resolves every mesh with the embodiment layer (``package://``, ``file://``, relative);
   a mesh that cannot be found is an error naming the file and the link;
2. drops visual meshes MuJoCo cannot decode (the link then shows its collision geometry,
   with a warning); an undecodable *collision* mesh is an error, because physics needs it;
3. adds one position actuator per arm joint and per driven gripper joint (mimic joints
   follow through MuJoCo equality constraints), with gains scaled by each joint's reflected
   inertia so a 30 cm arm and a 2 m arm both track with the same bandwidth;
4. adds gravity compensation (a position-controlled arm's drives hold it up, as on a real
   cell), the ``implicitfast`` integrator, a floor, a table, lights, the task object
   (a mocap body, so pick-and-place can later swap it for a free body) and the cameras.

Geom groups: 0 robot collision geometry shown when the link has no usable visual,
1 robot visuals, 2 scene (floor, table, object), 3 hidden collision geometry.
"""

from __future__ import annotations

import logging
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from robot_brain.embodiment import Arm
from robot_brain.embodiment.description import resolve_mesh_paths
from robot_brain.errors import ConfigurationError, DescriptionError
from robot_brain.sim.workspace import Layout, look_at

LOGGER = logging.getLogger(__name__)

#: Mesh formats MuJoCo decodes without plugins.
DECODABLE_MESH_SUFFIXES = (".stl", ".obj", ".msh")
TASK_CAMERA = "task_camera"
OVERVIEW_CAMERA = "overview_camera"
OBJECT_BODY = "task_object"
TOOL_SITE = "tool_site"
GROUP_ROBOT_COLLISION_SHOWN, GROUP_ROBOT_VISUAL, GROUP_SCENE, GROUP_HIDDEN = 0, 1, 2, 3
_MAX_VISUAL_RETRIES = 32


@dataclass(frozen=True)
class SceneOptions:
    """Physics and appearance settings (mirrored in ``config/sim.yaml``)."""

    timestep: float = 0.002
    bandwidth_hz: float = 8.0  # position-loop natural frequency every joint gets by default
    damping_ratio: float = 1.0
    gains: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # joint -> (kp, kv) overrides
    gravity_compensation: bool = True
    self_collision: bool = False
    object_rgba: tuple[float, float, float, float] = (0.9, 0.1, 0.1, 1.0)
    # Paint every robot geom this colour (materials and textures dropped): an orange or red
    # industrial arm in front of a red object, for perception's self-filter. None keeps the URDF's.
    arm_rgba: tuple[float, float, float, float] | None = None
    table_rgba: tuple[float, float, float, float] = (0.62, 0.6, 0.57, 1.0)
    camera_width: int = 320
    camera_height: int = 240

    def __post_init__(self) -> None:
        if not 0.0 < self.timestep <= 0.01:
            raise ConfigurationError(f"timestep: expected 0 < timestep <= 0.01 s, found {self.timestep}")
        if self.bandwidth_hz <= 0.0 or self.damping_ratio <= 0.0:
            raise ConfigurationError(
                f"actuator gains: expected bandwidth_hz > 0 and damping_ratio > 0, "
                f"found {self.bandwidth_hz} and {self.damping_ratio}"
            )
        if self.arm_rgba is not None and (
            len(self.arm_rgba) != 4 or not all(0.0 <= float(c) <= 1.0 for c in self.arm_rgba)
        ):
            raise ConfigurationError(f"arm colour: expected [r g b a] in 0-1, found {list(self.arm_rgba)}")
        if self.camera_width < 16 or self.camera_height < 16:
            raise ConfigurationError(
                f"camera size: expected at least 16x16 pixels, found {self.camera_width}x{self.camera_height}"
            )


@dataclass
class Scene:
    """A compiled scene and the indices the simulator needs, resolved once."""

    model: mujoco.MjModel
    arm: Arm
    layout: Layout
    base_pose: np.ndarray  # 4x4 pose of the arm's base frame in the MuJoCo world
    arm_qpos: np.ndarray  # qpos address of each arm joint
    arm_dof: np.ndarray  # qvel address of each arm joint
    arm_actuators: np.ndarray  # actuator id per arm joint
    gripper_joints: tuple[str, ...]  # driven (non-mimic) gripper joints
    gripper_qpos: np.ndarray
    gripper_actuators: np.ndarray
    gripper_lower: np.ndarray
    gripper_upper: np.ndarray
    state_joints: tuple[str, ...]  # every hinge/slide joint, arm first: what /joint_states carries
    state_qpos: np.ndarray
    state_dof: np.ndarray
    tool_site: int
    object_mocap: int
    task_camera: int
    overview_camera: int
    gains: dict[str, tuple[float, float]]
    warnings: tuple[str, ...]

    def world_from_base(self, point: np.ndarray) -> np.ndarray:
        return self.base_pose[:3, :3] @ point + self.base_pose[:3, 3]

    def base_from_world(self, point: np.ndarray) -> np.ndarray:
        return self.base_pose[:3, :3].T @ (point - self.base_pose[:3, 3])


def build_scene(arm: Arm, layout: Layout, options: SceneOptions = SceneOptions()) -> Scene:
    """Compile the arm's URDF with actuators, environment, task object and cameras.

    Raises:
        DescriptionError: a mesh is missing or a collision mesh cannot be decoded, or MuJoCo
            rejects the description (the message names the file and the part).
    """
    source = arm.description.source
    root, warnings = _prepare_urdf(arm)
    spec, robot_model = _compile_robot(root, source, warnings)
    base_body = mujoco.mj_name2id(robot_model, mujoco.mjtObj.mjOBJ_BODY, arm.spec.base_link)
    tip_body = mujoco.mj_name2id(robot_model, mujoco.mjtObj.mjOBJ_BODY, arm.spec.tip_link)
    if base_body < 0 or tip_body < 0:
        raise DescriptionError(
            f"{source}: MuJoCo's model lacks the base link '{arm.spec.base_link}' or tip link "
            f"'{arm.spec.tip_link}' (expected both as bodies)"
        )
    robot_data = mujoco.MjData(robot_model)
    mujoco.mj_forward(robot_model, robot_data)
    base_pose = np.eye(4)
    base_pose[:3, :3] = robot_data.xmat[base_body].reshape(3, 3)
    base_pose[:3, 3] = robot_data.xpos[base_body]

    _configure_robot(spec, options)
    driven_gripper = arm.spec.driven_gripper_joints
    gains = _default_gains(robot_model, arm, layout, driven_gripper, options)
    _add_actuators(spec, arm, driven_gripper, gains)
    spec.bodies[tip_body].add_site(name=TOOL_SITE, size=[0.005, 0.005, 0.005], group=GROUP_HIDDEN)
    _add_environment(spec, layout, base_pose, options)
    model = _checked_compile(spec, source)

    def joint(name: str) -> int:
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)

    def actuator(name: str) -> int:
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, name)

    arm_ids = [joint(name) for name in arm.spec.joint_names]
    gripper_ids = [joint(name) for name in driven_gripper]
    movable_types = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    movable = [i for i in range(model.njnt) if int(model.jnt_type[i]) in movable_types]
    state_ids = arm_ids + [i for i in movable if i not in arm_ids]
    gripper_index = [arm.spec.gripper_joints.index(name) for name in driven_gripper]
    return Scene(
        model=model,
        arm=arm,
        layout=layout,
        base_pose=base_pose,
        arm_qpos=model.jnt_qposadr[arm_ids].copy(),
        arm_dof=model.jnt_dofadr[arm_ids].copy(),
        arm_actuators=np.array([actuator(name) for name in arm.spec.joint_names], dtype=int),
        gripper_joints=driven_gripper,
        gripper_qpos=model.jnt_qposadr[gripper_ids].copy() if gripper_ids else np.zeros(0, dtype=int),
        gripper_actuators=np.array([actuator(name) for name in driven_gripper], dtype=int),
        gripper_lower=arm.spec.gripper_lower[gripper_index] if gripper_index else np.zeros(0),
        gripper_upper=arm.spec.gripper_upper[gripper_index] if gripper_index else np.zeros(0),
        state_joints=tuple(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, i) for i in state_ids),
        state_qpos=model.jnt_qposadr[state_ids].copy(),
        state_dof=model.jnt_dofadr[state_ids].copy(),
        tool_site=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, TOOL_SITE),
        object_mocap=int(model.body_mocapid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, OBJECT_BODY)]),
        task_camera=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, TASK_CAMERA),
        overview_camera=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, OVERVIEW_CAMERA),
        gains=gains,
        warnings=tuple(warnings),
    )


# -- the robot ---------------------------------------------------------------------------


def _prepare_urdf(arm: Arm) -> tuple[ET.Element, list[str]]:
    """The URDF with absolute mesh paths, undecodable visuals dropped and MuJoCo compiler settings."""
    source = arm.description.source
    resolution = resolve_mesh_paths(arm.description)
    root = resolution.description.root()
    warnings: list[str] = []
    for link in root.findall("link"):
        link_name = link.get("name", "?")
        for kind in ("visual", "collision"):
            for element in list(link.findall(kind)):
                mesh = element.find("geometry/mesh")
                if mesh is None:
                    continue
                filename = mesh.get("filename", "")
                if not Path(filename).is_file():
                    raise DescriptionError(
                        f"{source}: link '{link_name}' {kind} mesh '{filename}' not found "
                        "(expected a file, a package:// path in the ament index, or a path relative to the URDF)"
                    )
                if Path(filename).suffix.lower() in DECODABLE_MESH_SUFFIXES:
                    continue
                if kind == "collision":
                    raise DescriptionError(
                        f"{source}: link '{link_name}' collision mesh '{filename}' cannot be decoded by MuJoCo "
                        f"(expected {', '.join(DECODABLE_MESH_SUFFIXES)}); convert it or use primitive geometry"
                    )
                link.remove(element)
                warnings.append(_visual_warning(link_name, filename, "MuJoCo has no decoder for this format"))
    for existing in root.findall("mujoco"):
        root.remove(existing)
    extension = ET.SubElement(root, "mujoco")
    ET.SubElement(
        extension,
        "compiler",
        strippath="false",
        discardvisual="false",
        fusestatic="false",
        balanceinertia="true",
        boundmass="1e-4",
        boundinertia="1e-8",
    )
    return root, warnings


def _visual_warning(link: str, filename: str, reason: str) -> str:
    message = f"link '{link}' visual mesh '{Path(filename).name}': {reason}; showing its collision geometry"
    LOGGER.warning(message)
    return message


def _compile_robot(root: ET.Element, source: str, warnings: list[str]) -> tuple[mujoco.MjSpec, mujoco.MjModel]:
    """Parse and compile the URDF; a visual mesh MuJoCo fails to decode is dropped and retried."""
    for _ in range(_MAX_VISUAL_RETRIES):
        xml = ET.tostring(root, encoding="unicode")
        spec = None
        try:
            spec = mujoco.MjSpec.from_string(xml)
            return spec, spec.compile()
        except ValueError as error:
            text = str(error)
            named = _mesh_file_in(text)
            candidates = [named] if named else _mesh_files_of_element(spec, text)
            dropped, bad_file = None, None
            for bad_file in candidates:
                dropped = _drop_visual_mesh(root, bad_file)
                if dropped:
                    break
            if bad_file and bad_file not in text:
                text = f"{_first_line(text)} in mesh file '{bad_file}'"
            if dropped is None:
                raise DescriptionError(_compile_error(source, text, root)) from None
            warnings.append(_visual_warning(dropped, bad_file or "", f"MuJoCo cannot decode it ({_first_line(text)})"))
    raise DescriptionError(f"{source}: too many undecodable visual meshes (more than {_MAX_VISUAL_RETRIES})")


def _checked_compile(spec: mujoco.MjSpec, source: str) -> mujoco.MjModel:
    try:
        return spec.compile()
    except ValueError as error:
        raise DescriptionError(f"{source}: MuJoCo cannot compile the scene: {_first_line(str(error))}") from None


_MESH_FILE = re.compile(r"(?:mesh file|file) '([^']+)'")


def _mesh_file_in(text: str) -> str | None:
    match = _MESH_FILE.search(text)
    return match.group(1) if match else None


def _mesh_files_of_element(spec: mujoco.MjSpec | None, text: str) -> list[str]:
    """Files of the mesh assets MuJoCo names in an error (``Element name 'link_2'``)."""
    element = re.search(r"Element name '([^']*)'", text)
    if spec is None or element is None:
        return []
    return [str(mesh.file) for mesh in spec.meshes if mesh.name == element.group(1)]


def _drop_visual_mesh(root: ET.Element, filename: str | None) -> str | None:
    """Remove visuals using ``filename``; returns the first link touched, or None if only collisions use it."""
    touched = None
    for link in root.findall("link"):
        for visual in list(link.findall("visual")):
            mesh = visual.find("geometry/mesh")
            if mesh is not None and filename and mesh.get("filename") == filename:
                link.remove(visual)
                touched = touched or link.get("name", "?")
    return touched


def _compile_error(source: str, text: str, root: ET.Element) -> str:
    """One line naming the file and, when MuJoCo says which, the link or mesh at fault."""
    first = _first_line(text)
    part = ""
    element = re.search(r"Element name '([^']*)'", text)
    filename = _mesh_file_in(text)
    if filename:
        links = [
            link.get("name", "?")
            for link in root.findall("link")
            for mesh in link.iter("mesh")
            if mesh.get("filename") == filename
        ]
        part = f" (link {', '.join(repr(n) for n in dict.fromkeys(links))}, collision)" if links else ""
    elif element and element.group(1):
        part = f" (part '{element.group(1)}')"
    return f"{source}: MuJoCo cannot compile the description: {first}{part}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].removeprefix("Error: ") if text.strip() else "unknown error"


def _configure_robot(spec: mujoco.MjSpec, options: SceneOptions) -> None:
    """Integrator, contacts, groups and gravity compensation of the robot's bodies."""
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.timestep = options.timestep
    if options.arm_rgba is not None:
        for geom in spec.geoms:  # only the robot's so far (the environment comes later), the root link's included
            geom.material = ""
            geom.rgba = list(options.arm_rgba)
    for body in spec.bodies:
        if body.name == "world":
            continue
        if options.gravity_compensation:
            body.gravcomp = 1.0
        has_visual = any(g.group == GROUP_ROBOT_VISUAL for g in body.geoms)
        for geom in body.geoms:
            if geom.contype == 0 and geom.conaffinity == 0:
                continue  # a visual
            geom.conaffinity = 1 if options.self_collision else 0
            geom.group = GROUP_HIDDEN if has_visual else GROUP_ROBOT_COLLISION_SHOWN


def _default_gains(
    model: mujoco.MjModel, arm: Arm, layout: Layout, gripper: tuple[str, ...], options: SceneOptions
) -> dict[str, tuple[float, float]]:
    """kp = I·ω², kv = 2ζ·sqrt(kp·I) with I the joint's reflected inertia at home (mass-scaled gains)."""
    data = mujoco.MjData(model)
    for name, value in zip(arm.spec.joint_names, layout.home, strict=True):
        data.qpos[model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)]] = value
    mujoco.mj_forward(model, data)
    mass_matrix = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, data, mass_matrix)
    omega = 2.0 * math.pi * options.bandwidth_hz
    gains: dict[str, tuple[float, float]] = {}
    for name in (*arm.spec.joint_names, *gripper):
        dof = model.jnt_dofadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)]
        inertia = max(float(mass_matrix[dof, dof]), 1e-4)
        kp = inertia * omega * omega
        gains[name] = (kp, 2.0 * options.damping_ratio * math.sqrt(kp * inertia))
    for name, pair in options.gains.items():
        if name not in gains:
            raise ConfigurationError(
                f"gains: unknown joint '{name}'; expected one of {', '.join(gains)}"
            )
        if len(pair) != 2 or pair[0] <= 0 or pair[1] < 0:
            raise ConfigurationError(f"gains['{name}']: expected [kp > 0, kv >= 0], found {list(pair)}")
        gains[name] = (float(pair[0]), float(pair[1]))
    return gains


def _add_actuators(
    spec: mujoco.MjSpec, arm: Arm, gripper: tuple[str, ...], gains: Mapping[str, tuple[float, float]]
) -> None:
    limits = {name: (arm.spec.lower[i], arm.spec.upper[i]) for i, name in enumerate(arm.spec.joint_names)}
    limits.update({name: (arm.spec.gripper_lower[i], arm.spec.gripper_upper[i])
                   for i, name in enumerate(arm.spec.gripper_joints)})
    for name in (*arm.spec.joint_names, *gripper):
        kp, kv = gains[name]
        actuator = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        actuator.set_to_position(kp=kp, kv=kv)
        low, high = limits[name]
        if math.isfinite(low) and math.isfinite(high):
            actuator.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
            actuator.ctrlrange = [low, high]
        else:
            actuator.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE


# -- the environment ---------------------------------------------------------------------


def _add_environment(spec: mujoco.MjSpec, layout: Layout, base_pose: np.ndarray, options: SceneOptions) -> None:
    """Floor, table, lights, the task object and the cameras, placed in the arm's base frame."""
    reach = layout.reach
    base_quat = _quat(base_pose[:3, :3])
    frame = spec.worldbody.add_body(name="task_frame", pos=base_pose[:3, 3], quat=base_quat)
    table_height = float(np.clip(0.8 * reach, 0.3, 1.0))
    thickness = 0.04 * max(reach, 0.5)
    top = np.array([*layout.table_center, -0.5 * thickness])
    frame.add_geom(
        name="table_top",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[*layout.table_half_size, 0.5 * thickness],
        pos=top,
        rgba=list(options.table_rgba),
        contype=0,
        conaffinity=1,
        group=GROUP_SCENE,
    )
    leg = 0.03 * max(reach, 0.5)
    for sx in (-1, 1):
        for sy in (-1, 1):
            corner = layout.table_center + np.array([sx, sy]) * (layout.table_half_size - leg)
            frame.add_geom(
                type=mujoco.mjtGeom.mjGEOM_BOX,
                size=[leg, leg, 0.5 * (table_height - thickness)],
                pos=[*corner, -thickness - 0.5 * (table_height - thickness)],
                rgba=list(options.table_rgba),
                contype=0,
                conaffinity=0,
                group=GROUP_SCENE,
            )
    floor_z = base_pose[2, 3] - table_height
    spec.worldbody.add_geom(
        name="floor",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[0, 0, 0.05],
        pos=[0, 0, floor_z],
        rgba=[0.32, 0.34, 0.38, 1.0],
        contype=0,
        conaffinity=1,
        group=GROUP_SCENE,
    )
    height = 2.5 * max(reach, 0.4)
    spec.worldbody.add_light(name="key", pos=[0.3 * reach, -0.6 * reach, height], dir=[-0.1, 0.3, -1.0],
                             diffuse=[0.7, 0.7, 0.7], castshadow=False)
    spec.worldbody.add_light(name="fill", pos=[-reach, reach, height], dir=[0.4, -0.4, -1.0],
                             diffuse=[0.35, 0.35, 0.35], castshadow=False)
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.3, 0.3, 0.3]

    start = base_pose[:3, :3] @ layout.region_center + base_pose[:3, 3]
    obj = spec.worldbody.add_body(name=OBJECT_BODY, mocap=True, pos=start, quat=base_quat)
    half = 0.5 * layout.object_size
    obj.add_geom(name="task_object_geom", type=mujoco.mjtGeom.mjGEOM_BOX, size=[half, half, half],
                 rgba=list(options.object_rgba), contype=0, conaffinity=0, group=GROUP_SCENE)

    for name, pose in ((TASK_CAMERA, layout.camera_pose), (OVERVIEW_CAMERA, _overview_pose(layout))):
        # MuJoCo cameras look along -z with y up: the optical frame (z forward, y down) turned by pi about x.
        rotation = pose[:3, :3] @ np.diag([1.0, -1.0, -1.0])
        frame.add_camera(name=name, pos=pose[:3, 3], quat=_quat(rotation), fovy=layout.camera_fovy_deg)
    spec.visual.global_.offwidth = max(options.camera_width, 640)
    spec.visual.global_.offheight = max(options.camera_height, 480)


def _overview_pose(layout: Layout) -> np.ndarray:
    """A wider view from the other side, for videos and contact sheets."""
    target = np.array([0.25 * layout.region_radius[1], 0.0, 0.25 * layout.reach])
    return look_at(target, distance=2.6 * layout.reach, elevation=math.radians(25.0), azimuth=math.radians(40.0))


def _quat(rotation: np.ndarray) -> np.ndarray:
    """MuJoCo's ``[w x y z]`` quaternion of a rotation matrix."""
    quaternion = np.zeros(4)
    mujoco.mju_mat2Quat(quaternion, np.ascontiguousarray(rotation, dtype=float).reshape(9))
    return quaternion
