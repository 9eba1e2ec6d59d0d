"""Finding the arm in a URDF: its serial chain, joint limits and gripper.

A URDF is a tree of links joined by joints. An *arm* is the serial chain of movable joints
from a base link to a tool link (flange or TCP). Gripper joints (fingers, jaws, mimic joints
and everything below them) are kept apart so that a policy's arm actions and gripper
channel map onto the right joints. All of this is derived from the tree alone: there is
no per-robot code.

Rules, in order:

1. A movable joint is a *gripper joint* when it has a ``<mimic>`` tag, is the leader of one,
   its name says so (gripper, finger, jaw, claw, knuckle), or it lies below another gripper
   joint.
2. The remaining movable joints must lie on one path from the root: otherwise the chain is
   ambiguous and the error lists the candidate tips, to be chosen with ``tip_link``.
3. The base is the parent link of the first arm joint; the tip is found by following fixed
   joints below the last arm joint while the way is unique, preferring at a fork the
   branch that carries the gripper, then a link named like a TCP, ``tool0`` or a flange.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from robot_brain.embodiment.description import RobotDescription
from robot_brain.errors import ChainError, DescriptionError

LOGGER = logging.getLogger(__name__)

MOVABLE_TYPES = ("revolute", "continuous", "prismatic")
GRIPPER_NAME = re.compile(r"gripper|finger|jaw|claw|knuckle", re.IGNORECASE)
# Tool-link names preferred at a fork of fixed joints below the last arm joint, best first.
TOOL_LINK_PREFERENCES = (
    re.compile(r"tcp", re.IGNORECASE),
    re.compile(r"grasp", re.IGNORECASE),
    re.compile(r"tool0|tool_?frame|^tool$", re.IGNORECASE),
    re.compile(r"flange", re.IGNORECASE),
    re.compile(r"ee_?link|eef|end_?effector", re.IGNORECASE),
)

#: Conservative defaults for limits a URDF leaves out (documented in the README).
DEFAULT_REVOLUTE_RANGE = (-math.pi, math.pi)
DEFAULT_PRISMATIC_RANGE = (0.0, 0.1)
DEFAULT_REVOLUTE_VELOCITY = 1.0  # rad/s
DEFAULT_PRISMATIC_VELOCITY = 0.1  # m/s
DEFAULT_EFFORT = 10.0  # N·m or N; informative only, never used to command


@dataclass(frozen=True)
class JointInfo:
    """One URDF joint, as declared."""

    name: str
    type: str
    parent: str
    child: str
    lower: float | None
    upper: float | None
    velocity: float | None
    effort: float | None
    mimic_of: str | None

    @property
    def movable(self) -> bool:
        return self.type in MOVABLE_TYPES


@dataclass(frozen=True)
class UrdfTree:
    """The kinematic tree of a URDF: links, joints and the parent/child relations."""

    name: str
    links: tuple[str, ...]
    joints: dict[str, JointInfo]
    root: str
    child_joints: dict[str, tuple[str, ...]]  # link -> joints whose parent it is
    parent_joint: dict[str, str]  # link -> joint whose child it is

    @classmethod
    def from_description(cls, description: RobotDescription) -> UrdfTree:
        return cls.from_element(description.root(), description.source)

    @classmethod
    def from_element(cls, robot: ET.Element, source: str) -> UrdfTree:
        links = tuple(link.get("name", "") for link in robot.findall("link"))
        if not links:
            raise DescriptionError(f"{source}: the URDF declares no <link>")
        joints: dict[str, JointInfo] = {}
        for element in robot.findall("joint"):
            joint = _parse_joint(element, source)
            if joint.name in joints:
                raise DescriptionError(f"{source}: joint '{joint.name}' is declared twice")
            joints[joint.name] = joint
        link_set = set(links)
        child_joints: dict[str, list[str]] = {link: [] for link in links}
        parent_joint: dict[str, str] = {}
        for joint in joints.values():
            for end in (joint.parent, joint.child):
                if end not in link_set:
                    raise DescriptionError(f"{source}: joint '{joint.name}' refers to unknown link '{end}'")
            if joint.child in parent_joint:
                raise DescriptionError(
                    f"{source}: link '{joint.child}' has two parent joints "
                    f"('{parent_joint[joint.child]}' and '{joint.name}')"
                )
            parent_joint[joint.child] = joint.name
            child_joints[joint.parent].append(joint.name)
        roots = [link for link in links if link not in parent_joint]
        if len(roots) != 1:
            raise DescriptionError(
                f"{source}: expected one root link, found {len(roots)}: {', '.join(roots[:8]) or 'none (a cycle)'}"
            )
        return cls(
            name=robot.get("name", "robot"),
            links=links,
            joints=joints,
            root=roots[0],
            child_joints={link: tuple(names) for link, names in child_joints.items()},
            parent_joint=parent_joint,
        )

    def path_to_root(self, link: str) -> list[str]:
        """Joint names from the root down to ``link``."""
        joints: list[str] = []
        while link in self.parent_joint:
            name = self.parent_joint[link]
            joints.append(name)
            link = self.joints[name].parent
        return joints[::-1]

    def is_ancestor(self, ancestor: str, link: str) -> bool:
        while True:
            if link == ancestor:
                return True
            if link not in self.parent_joint:
                return False
            link = self.joints[self.parent_joint[link]].parent

    def subtree_joints(self, link: str) -> list[str]:
        out: list[str] = []
        stack = list(self.child_joints[link])
        while stack:
            name = stack.pop()
            out.append(name)
            stack.extend(self.child_joints[self.joints[name].child])
        return out


def _parse_joint(element: ET.Element, source: str) -> JointInfo:
    name = element.get("name")
    joint_type = element.get("type")
    parent = element.find("parent")
    child = element.find("child")
    if not name or not joint_type or parent is None or child is None:
        raise DescriptionError(f"{source}: a <joint> lacks its name, type, <parent> or <child>")
    limit = element.find("limit")
    mimic = element.find("mimic")

    def number(attribute: str) -> float | None:
        if limit is None or limit.get(attribute) is None:
            return None
        try:
            return float(limit.get(attribute, ""))
        except ValueError:
            raise DescriptionError(
                f"{source}: joint '{name}' limit {attribute}='{limit.get(attribute)}' is not a number"
            ) from None

    return JointInfo(
        name=name,
        type=joint_type,
        parent=parent.get("link", ""),
        child=child.get("link", ""),
        lower=number("lower"),
        upper=number("upper"),
        velocity=number("velocity"),
        effort=number("effort"),
        mimic_of=mimic.get("joint") if mimic is not None else None,
    )


@dataclass(frozen=True)
class ArmSpec:
    """Everything the brain needs to know about an arm, derived from its URDF.

    Arrays are aligned with ``joint_names`` (base to tip). Continuous joints have infinite
    position limits and ``continuous`` set. ``warnings`` lists every default that was used.
    """

    name: str
    base_link: str
    tip_link: str
    joint_names: tuple[str, ...]
    joint_types: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    continuous: np.ndarray
    gripper_joints: tuple[str, ...]
    gripper_lower: np.ndarray
    gripper_upper: np.ndarray
    mimic_joints: dict[str, str]
    warnings: tuple[str, ...] = field(default=())

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def as_dict(self) -> dict[str, object]:
        """The JSON-able summary used by ``robot-brain inspect --json``."""

        def finite_or_none(values: np.ndarray) -> list[float | None]:
            return [float(v) if math.isfinite(v) else None for v in values]

        return {
            "name": self.name,
            "base_link": self.base_link,
            "tip_link": self.tip_link,
            "dof": self.dof,
            "joints": list(self.joint_names),
            "lower": finite_or_none(self.lower),
            "upper": finite_or_none(self.upper),
            "velocity": [float(v) for v in self.velocity],
            "effort": [float(v) for v in self.effort],
            "gripper_joints": list(self.gripper_joints),
            "mimic_joints": dict(self.mimic_joints),
            "warnings": list(self.warnings),
        }

    @property
    def driven_gripper_joints(self) -> tuple[str, ...]:
        """Gripper joints that take commands: mimic joints follow their leader and are left out."""
        return tuple(name for name in self.gripper_joints if name not in self.mimic_joints)

    def gripper_open_closed(self) -> tuple[np.ndarray, np.ndarray]:
        """Open and closed positions of the driven gripper joints.

        URDFs do not say which end of a gripper joint's range is open. The convention used by
        the controller and the simulator alike: open is the limit farther from zero (Panda
        fingers 0.04 m apart, SO-101 jaw at 1.7 rad), closed the nearer one.
        """
        driven = [self.gripper_joints.index(name) for name in self.driven_gripper_joints]
        lower, upper = self.gripper_lower[driven], self.gripper_upper[driven]
        farther_up = np.abs(upper) >= np.abs(lower)
        return np.where(farther_up, upper, lower), np.where(farther_up, lower, upper)

    def middle_configuration(self) -> np.ndarray:
        """A configuration in the middle of the joint ranges (0 for continuous joints)."""
        finite = np.isfinite(self.lower) & np.isfinite(self.upper)
        middle = np.zeros(self.dof)
        middle[finite] = 0.5 * (self.lower[finite] + self.upper[finite])
        return middle


def find_arm(tree: UrdfTree, base_link: str | None = None, tip_link: str | None = None) -> ArmSpec:
    """Find the arm chain of a URDF tree; see the module docstring for the rules.

    Raises:
        ChainError: unknown link names, no movable joint, base not above tip, or an
            ambiguous tree (the message lists the candidate tips).
    """
    for label, link in (("base_link", base_link), ("tip_link", tip_link)):
        if link is not None and link not in tree.child_joints:
            close = [name for name in tree.links if link.lower() in name.lower()][:5]
            hint = f" (similar: {', '.join(close)})" if close else ""
            raise ChainError(f"unknown {label} '{link}'{hint}; links are: {_abbreviate(tree.links)}")
    movable = [name for name, joint in tree.joints.items() if joint.movable]
    if not movable:
        raise ChainError(f"'{tree.name}' has no movable joint (revolute, continuous or prismatic): nothing to control")
    gripper = _gripper_joints(tree)

    if tip_link is None:
        tip_link = _auto_tip(tree, gripper, base_link)
    chain_joints = tree.path_to_root(tip_link)
    if base_link is not None:
        if not tree.is_ancestor(base_link, tip_link):
            raise ChainError(f"base_link '{base_link}' is not an ancestor of tip_link '{tip_link}'")
        below_base = set(tree.path_to_root(tip_link)) - set(tree.path_to_root(base_link))
        chain_joints = [name for name in chain_joints if name in below_base]
    arm_joints = [name for name in chain_joints if tree.joints[name].movable]
    if not arm_joints:
        raise ChainError(f"no movable joint between '{base_link or tree.root}' and '{tip_link}'")
    if base_link is None:
        base_link = tree.joints[arm_joints[0]].parent
    arm_set = set(arm_joints)
    gripper_joints = [name for name in tree.joints if name in gripper and name not in arm_set]
    return _build_spec(tree, base_link, tip_link, arm_joints, gripper_joints)


def _gripper_joints(tree: UrdfTree) -> set[str]:
    leaders = {joint.mimic_of for joint in tree.joints.values() if joint.mimic_of}
    seeds = [
        name
        for name, joint in tree.joints.items()
        if joint.movable and (joint.mimic_of or name in leaders or GRIPPER_NAME.search(name))
    ]
    gripper: set[str] = set()
    for name in seeds:
        gripper.add(name)
        gripper.update(j for j in tree.subtree_joints(tree.joints[name].child) if tree.joints[j].movable)
    return gripper


def _auto_tip(tree: UrdfTree, gripper: set[str], base_link: str | None) -> str:
    """The tool link of the unique arm chain, or a ChainError listing candidate tips."""
    candidates = [
        name
        for name, joint in tree.joints.items()
        if joint.movable and name not in gripper and (base_link is None or tree.is_ancestor(base_link, joint.child))
    ]
    if not candidates:
        raise ChainError(
            f"'{tree.name}' has only gripper-like movable joints ({', '.join(sorted(gripper))}); "
            "pass tip_link to choose the chain"
        )
    # The deepest joints: those with no other candidate below them.
    candidate_set = set(candidates)
    deepest = [
        name for name in candidates if not any(j in candidate_set for j in tree.subtree_joints(tree.joints[name].child))
    ]
    if len(deepest) > 1:
        tips = [_follow_fixed(tree, tree.joints[name].child, gripper) for name in deepest]
        raise ChainError(
            f"'{tree.name}' has {len(deepest)} chains of movable joints; choose one with tip_link: "
            f"candidate tips are {', '.join(tips)}"
        )
    return _follow_fixed(tree, tree.joints[deepest[0]].child, gripper)


def _follow_fixed(tree: UrdfTree, link: str, gripper: set[str]) -> str:
    """Descend from ``link`` through fixed joints while the way is unique or a preference decides."""
    while True:
        fixed = [name for name in tree.child_joints[link] if tree.joints[name].type == "fixed"]
        if not fixed:
            return link
        if len(fixed) == 1:
            link = tree.joints[fixed[0]].child
            continue
        carrying_gripper = [
            name for name in fixed if any(j in gripper for j in tree.subtree_joints(tree.joints[name].child))
        ]
        if len(carrying_gripper) == 1:
            link = tree.joints[carrying_gripper[0]].child
            continue
        chosen = None
        for pattern in TOOL_LINK_PREFERENCES:
            matches = [name for name in fixed if pattern.search(tree.joints[name].child)]
            if len(matches) == 1:
                chosen = matches[0]
                break
        if chosen is None:
            return link
        link = tree.joints[chosen].child


def _build_spec(
    tree: UrdfTree, base_link: str, tip_link: str, arm_joints: list[str], gripper_joints: list[str]
) -> ArmSpec:
    warnings: list[str] = []
    lower, upper, velocity, effort, continuous = [], [], [], [], []
    for name in arm_joints:
        low, high, vel, eff, is_continuous = _limits(tree.joints[name], warnings)
        lower.append(low)
        upper.append(high)
        velocity.append(vel)
        effort.append(eff)
        continuous.append(is_continuous)
    gripper_lower, gripper_upper, kept_gripper_joints = [], [], []
    for name in gripper_joints:
        low, high, _, _, _ = _limits(tree.joints[name], warnings)
        if not (math.isfinite(low) and math.isfinite(high)):
            # A continuous joint in the hand (a servo horn, a spinning tool) has no open and closed
            # end to command; driving it would mean an infinite target. It is left passive.
            warnings.append(f"gripper joint '{name}' has no finite range (continuous): left passive, not driven")
            continue
        kept_gripper_joints.append(name)
        gripper_lower.append(low)
        gripper_upper.append(high)
    gripper_joints = kept_gripper_joints
    for message in warnings:
        warn_once(f"{tree.name}: {message}")
    return ArmSpec(
        name=tree.name,
        base_link=base_link,
        tip_link=tip_link,
        joint_names=tuple(arm_joints),
        joint_types=tuple(tree.joints[name].type for name in arm_joints),
        lower=np.array(lower, dtype=float),
        upper=np.array(upper, dtype=float),
        velocity=np.array(velocity, dtype=float),
        effort=np.array(effort, dtype=float),
        continuous=np.array(continuous, dtype=bool),
        gripper_joints=tuple(gripper_joints),
        gripper_lower=np.array(gripper_lower, dtype=float),
        gripper_upper=np.array(gripper_upper, dtype=float),
        mimic_joints={name: joint.mimic_of for name, joint in tree.joints.items() if joint.mimic_of},
        warnings=tuple(warnings),
    )


_REPORTED: set[str] = set()
_REPORTED_LOCK = threading.Lock()


def warn_once(message: str) -> bool:
    """Log ``message`` as a warning the first time this process sees it; True if it was logged.

    A process loads the same description several times (the launch plan, the demo's observer,
    a node's configure after a cleanup), and a default that was used once is news only once:
    ``ArmSpec.warnings`` keeps every message for callers that report them their own way.
    """
    with _REPORTED_LOCK:
        if message in _REPORTED:
            return False
        _REPORTED.add(message)
    LOGGER.warning("%s", message)
    return True


def _limits(joint: JointInfo, warnings: list[str]) -> tuple[float, float, float, float, bool]:
    """Position, velocity and effort limits of one joint, with documented defaults."""
    prismatic = joint.type == "prismatic"
    if joint.type == "continuous":
        low, high = -math.inf, math.inf
    elif joint.lower is None or joint.upper is None or joint.lower >= joint.upper:
        low, high = DEFAULT_PRISMATIC_RANGE if prismatic else DEFAULT_REVOLUTE_RANGE
        unit = "m" if prismatic else "rad"
        warnings.append(f"joint '{joint.name}' has no usable position limits; using [{low:g}, {high:g}] {unit}")
    else:
        low, high = joint.lower, joint.upper
    if joint.velocity is None or joint.velocity <= 0.0 or not math.isfinite(joint.velocity):
        velocity = DEFAULT_PRISMATIC_VELOCITY if prismatic else DEFAULT_REVOLUTE_VELOCITY
        warnings.append(
            f"joint '{joint.name}' has no velocity limit; using {velocity:g} {'m/s' if prismatic else 'rad/s'}"
        )
    else:
        velocity = joint.velocity
    if joint.effort is None or joint.effort <= 0.0 or not math.isfinite(joint.effort):
        effort = DEFAULT_EFFORT
        warnings.append(f"joint '{joint.name}' has no effort limit; using {effort:g}")
    else:
        effort = joint.effort
    return low, high, velocity, effort, joint.type == "continuous"


def _abbreviate(names: tuple[str, ...] | list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")
