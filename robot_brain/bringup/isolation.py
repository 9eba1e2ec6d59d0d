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
camera (:func:`use_dds_profile`, called by :func:`isolate_dds`). Its cost is a 34 MB
shared-memory segment per participant, which a killed process leaves behind:
:func:`remove_dead_dds_segments` removes those (``NodeProcesses.stop`` calls it).
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path

#: Domains 1..101 are valid for Fast DDS's default port mapping on Linux.
DOMAIN_RANGE = 100
#: The variable Fast DDS reads its default XML profiles from when a participant is created.
PROFILES_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
PROFILE_NAME = "fastdds.xml"
#: Where Fast DDS keeps its shared-memory segments on Linux.
SHM_FOLDER = Path("/dev/shm")
_SEGMENT_LOCK = re.compile(r"^fastdds_[0-9a-z]{16}_el$")


def dds_profile_path() -> Path:
    """The shipped Fast DDS profile (absolute): ``config/fastdds.xml`` of the source tree or the install."""
    from robot_brain.bringup.robots import config_dir

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


def remove_dead_dds_segments(min_age_s: float = 60.0, folder: Path = SHM_FOLDER) -> int:
    """Remove the shared-memory segments of Fast DDS participants whose process is gone; how many.

    A process that ends without shutting rclpy down (``kill -9``, a crash, a node that exits
    uncleanly) leaves its segment in ``/dev/shm``, in RAM until the next boot: 0.5 MB with Fast
    DDS's defaults, 34 MB with the shipped profile. A live participant holds a lock on its
    segment's ``<segment>_el`` file; a segment whose lock nobody holds and that was created more
    than ``min_age_s`` ago (so not one being created at this moment) is dead. This is what
    ``fastdds shm clean`` does for segments; ``NodeProcesses.stop`` calls it.
    """
    removed = 0
    try:
        locks = [path for path in folder.iterdir() if _SEGMENT_LOCK.match(path.name)]
    except OSError:
        return 0
    now = time.time()
    for lock in locks:
        try:
            if now - lock.stat().st_mtime < min_age_s:
                continue
            with open(lock, "ab") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while the owner lives
                lock.with_name(lock.name[: -len("_el")]).unlink(missing_ok=True)
                lock.unlink(missing_ok=True)
        except OSError:  # held (alive), gone meanwhile, or not ours to remove
            continue
        removed += 1
    return removed


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
