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

from robot_brain.errors import ConfigurationError

#: Domains 1..101 are valid for Fast DDS's default port mapping on Linux.
DOMAIN_RANGE = 100
#: The RTPS port mapping (DDSI-RTPS 9.6.1.1, Fast DDS's defaults): domain d owns the UDP ports
#: PORT_BASE + DOMAIN_GAIN * d ... + DOMAIN_GAIN - 1 (discovery multicast, then each participant's
#: unicast metatraffic and user-data ports).
PORT_BASE = 7400
DOMAIN_GAIN = 250
#: Where Linux lists the bound UDP sockets of every process on the host.
UDP_TABLES = (Path("/proc/net/udp"), Path("/proc/net/udp6"))
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


class DomainUnavailableError(ConfigurationError):
    """No private DDS domain is free on this host: every candidate is inherited or in use."""


def bound_udp_ports(tables: tuple[Path, ...] = UDP_TABLES) -> set[int]:
    """The local ports of every bound UDP socket on this host (any process, any user), from ``/proc/net``."""
    ports: set[int] = set()
    for table in tables:
        try:
            lines = table.read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 1 and ":" in fields[1]:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def domains_in_use(tables: tuple[Path, ...] = UDP_TABLES) -> set[int]:
    """DDS domains (0..DOMAIN_RANGE+1) some participant on this host is in, read off the UDP ports it holds.

    Every Fast DDS (and RTPS) participant binds unicast ports in its domain's block of the port
    mapping, also with localhost-only discovery, so a cell's controllers, a user's ``joy_node`` or
    another robot_brain session all show up here, whoever runs them.
    """
    last = PORT_BASE + DOMAIN_GAIN * (DOMAIN_RANGE + 2)
    return {(port - PORT_BASE) // DOMAIN_GAIN for port in bound_udp_ports(tables) if PORT_BASE <= port < last}


def inherited_domain(environ: Mapping[str, str] | None = None) -> int:
    """The domain this process would talk in without isolation (``ROS_DOMAIN_ID``, ROS's default 0)."""
    text = (os.environ if environ is None else environ).get("ROS_DOMAIN_ID", "").strip()
    return int(text) if text.isdigit() else 0


def choose_private_domain(inherited: int, in_use: set[int], start: int) -> int:
    """The first domain from ``start`` (wrapping within 1..DOMAIN_RANGE) that is neither inherited nor in use."""
    for offset in range(DOMAIN_RANGE):
        candidate = 1 + (start - 1 + offset) % DOMAIN_RANGE
        if candidate != inherited and candidate not in in_use:
            return candidate
    raise DomainUnavailableError(
        f"no private DDS domain is free on this host: domains 1-{DOMAIN_RANGE} are all in use or inherited "
        f"(ROS_DOMAIN_ID={inherited}); stop another session and try again"
    )


def isolate_dds() -> int:
    """Switch this process and its children to a private domain, localhost discovery only, with the shipped profile.

    The domain is never the one this process inherited (a cell's controllers may be listening
    there) nor any domain a participant on this host is in (:func:`domains_in_use`); among the
    free ones it starts from the process id, so parallel sessions spread out. Returns the domain;
    callers print it, so a user knows where the simulated cell talks.
    """
    domain = choose_private_domain(inherited_domain(), domains_in_use(), 1 + os.getpid() % DOMAIN_RANGE)
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_STATIC_PEERS", None)
    use_dds_profile()
    return domain
