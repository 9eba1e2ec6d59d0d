"""DDS settings of the processes robot_brain starts: a private domain, and the shipped transport profile.

The demo's arm controller publishes on ros2_control's standard command topics. Run in the
default DDS domain, it could reach a real arm's controllers on the same network, so the
demo and the benchmarks always talk in a private domain, on this host only.

Camera frames need the Fast DDS profile ``config/fastdds.xml``: Fast DDS's default
shared-memory segment (512 KB) cannot hold a 640x480 rgb8 frame (921,600 bytes), which then
goes out as UDP fragments, and with the sensor-data (best-effort) QoS the nodes use for images
almost no frame arrives whole (2 of 150 at 30 Hz; 150 of 150 with the profile,
docs/benchmarks.md). :func:`dds_environment` is the one place that says which processes get
it: every node process ``robot-brain up``/``demo``/``teleop`` starts (``NodeProcesses.start``),
the launch files' nodes (``launch_actions``), and the CLIs' own participants that watch the
camera (:func:`use_dds_profile`, called by :func:`isolate_dds`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: Domains 1..101 are valid for Fast DDS's default port mapping on Linux.
DOMAIN_RANGE = 100
#: The variable Fast DDS reads its default XML profiles from when a participant is created.
PROFILES_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
PROFILE_NAME = "fastdds.xml"


def dds_profile_path() -> Path:
    """The shipped Fast DDS profile (absolute): ``config/fastdds.xml`` of the source tree or the install."""
    from robot_brain.launch_plan import config_dir

    return (config_dir() / PROFILE_NAME).resolve()


def dds_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables to add to ``environ`` (default: this process's) so that a process uses the shipped profile.

    Empty when ``environ`` already names a profiles file: the user's own Fast DDS
    configuration wins (even an empty value, which turns the shipped profile off).
    """
    environ = os.environ if environ is None else environ
    if PROFILES_VARIABLE in environ:
        return {}
    return {PROFILES_VARIABLE: str(dds_profile_path())}


def use_dds_profile() -> str:
    """Make this process's own participants use the shipped profile (call before ``rclpy.init``).

    Returns the profiles file in effect ('' when the user set an empty one).
    """
    os.environ.update(dds_environment())
    return os.environ[PROFILES_VARIABLE]


def isolate_dds() -> int:
    """Switch this process and its children to a private domain, localhost discovery only, with the shipped profile.

    Returns the domain ID chosen (derived from the process id, so parallel runs differ).
    """
    domain = 1 + os.getpid() % DOMAIN_RANGE
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_STATIC_PEERS", None)
    use_dds_profile()
    return domain
