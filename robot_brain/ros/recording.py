"""What the recorder needs from ROS: message classes by type name, and subscriptions that adapt to publishers' QoS.

A recorder must hear every publisher of a topic, reliable or best effort, latched or not,
and keep their QoS for replay. ``ros2 bag record`` adapts its subscription to the offered
QoS of the publishers it finds; so does :func:`adapted_qos`: reliable only when every
publisher is reliable (a reliable subscription cannot match a best-effort publisher),
transient-local only when every publisher is, so a late-joining recorder still gets the
latched value. :func:`offered_qos` turns the publishers' profiles into the rosbags ``Qos``
records that rosbag2's ``metadata.yaml`` keeps.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from robot_brain.episodes.writer import make_qos
from robot_brain.errors import ConfigurationError

#: The recorder's default topics (name:type): everything an episode needs to be replayed,
#: exported and audited. Integrators add theirs in the ``topics`` parameter.
DEFAULT_TOPICS: tuple[str, ...] = (
    "/joint_states:sensor_msgs/msg/JointState",
    "/forward_position_controller/commands:std_msgs/msg/Float64MultiArray",
    "/joint_trajectory_controller/joint_trajectory:trajectory_msgs/msg/JointTrajectory",
    "/gripper_controller/commands:std_msgs/msg/Float64MultiArray",
    "/teleop/twist:geometry_msgs/msg/TwistStamped",
    "/teleop/joint_jog:robot_brain_msgs/msg/JointJog",
    "/teleop/gripper:std_msgs/msg/Float64",
    "/policy/action_chunk:robot_brain_msgs/msg/ActionChunk",
    "/camera/image_raw:sensor_msgs/msg/Image",
    "/camera/camera_info:sensor_msgs/msg/CameraInfo",
    "/perception/target_point:geometry_msgs/msg/PointStamped",
    "/episode/events:robot_brain_msgs/msg/EpisodeEvent",
    "/diagnostics:diagnostic_msgs/msg/DiagnosticArray",
)


def parse_topics(entries: Sequence[str]) -> dict[str, str]:
    """``["/joint_states:sensor_msgs/msg/JointState", ...]`` → ``{topic: type}``; a clear error otherwise."""
    topics: dict[str, str] = {}
    for entry in entries:
        name, separator, type_name = str(entry).partition(":")
        if not separator or not name.startswith("/") or type_name.count("/") != 2:
            raise ConfigurationError(
                f"topics: expected '/topic:package/msg/Type' entries, found '{entry}'"
            )
        if name in topics:
            raise ConfigurationError(f"topics: {name} is listed twice")
        topics[name] = type_name
    return topics


def message_class(type_name: str) -> Any:
    """The generated Python class of ``package/msg/Type`` (every type needs generated code in rclpy)."""
    package, kind, name = type_name.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError):
        raise ConfigurationError(
            f"topics: message type {type_name} is not installed (expected the {package} interfaces in this "
            "environment)"
        ) from None


def adapted_qos(publishers: Sequence[Any], depth: int = 100) -> QoSProfile:
    """A subscription QoS that matches every publisher in ``publishers`` (``TopicEndpointInfo`` list)."""
    reliable = bool(publishers) and all(
        p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers
    )
    latched = bool(publishers) and all(
        p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers
    )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def offered_qos(publishers: Sequence[Any]) -> tuple[Any, ...]:
    """The publishers' offered QoS as rosbags ``Qos`` records (what ``metadata.yaml`` keeps for replay)."""
    return tuple(
        make_qos(
            reliable=p.qos_profile.reliability == ReliabilityPolicy.RELIABLE,
            transient_local=p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL,
            depth=max(int(p.qos_profile.depth), 1),
            keep_all=p.qos_profile.history == HistoryPolicy.KEEP_ALL,
        )
        for p in publishers
    )
