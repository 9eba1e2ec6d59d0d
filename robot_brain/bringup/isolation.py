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
shared-memory segment per participant, which a killed process leaves behind with its ports'
files: :func:`remove_dead_dds_segments` removes those no live process uses (``NodeProcesses.stop``
calls it).
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
_PORT_LOCK = re.compile(r"^fastdds_port([0-9]{1,5})_(?:el|sl)$")
_PORT_SEGMENT = re.compile(r"^fastdds_port([0-9]{1,5})$")
_PORT_MUTEX = re.compile(r"^sem\.fastdds_port([0-9]{1,5})_mutex$")


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
    """Remove the shared-memory files of Fast DDS participants and ports no live process uses; how many.

    A process that ends without shutting rclpy down (``kill -9``, a crash, a node that exits
    uncleanly) leaves its files in ``/dev/shm``, in RAM until the next boot. Fast DDS names them
    (``SharedMemGlobal``, ``RobustExclusiveLock``/``RobustSharedLock``, ``fastdds shm clean``):

    - a participant's **data segment** ``fastdds_<16 hex>`` (0.5 MB with Fast DDS's defaults, 34 MB
      with the shipped profile) and its lock file ``<segment>_el``, which the participant holds
      (``flock``) while it lives;
    - a **port** ``fastdds_port<N>`` (52 KB), the lock file its listener holds (``_el`` exclusive,
      ``_sl`` shared) and the named mutex ``sem.fastdds_port<N>_mutex`` (a POSIX semaphore) that a
      process holds while it opens or closes the port. Writers map a port without a lock file.

    Removed, when created more than ``min_age_s`` ago (never one being set up at this moment) and
    owned by this user (others' files are theirs; /dev/shm is sticky):

    1. a data segment whose lock nobody holds (the rule of ``fastdds shm clean``);
    2. a port whose lock file nobody holds (a dead listener: what Fast DDS calls a zombie port and
       resets itself on the next open), unless a live process still maps its segment;
    3. a port segment with no lock file that no live process maps (its listener closed, a writer
       died holding a reference, so Fast DDS never removed it);
    4. a port mutex no live process maps, when its port is gone or the mutex is *locked*: its
       holder died inside the critical section (every live holder or waiter maps the semaphore),
       and every later participant opening that port would first wait out Fast DDS's lock timeout.

    "Maps" is read from ``/proc/<pid>/maps`` and ``/proc/<pid>/fd`` of this user's processes
    (:func:`shm_files_in_use`); when ``/proc`` cannot be read, rules 2-4 are skipped. A process
    that opens a port between that scan and the removal is the race any cleaner has (``fastdds
    shm clean`` too); ``NodeProcesses.stop`` calls this once its nodes have stopped.
    """
    try:
        names = {path.name: path for path in folder.iterdir()}
    except OSError:
        return 0
    now = time.time()
    owner = os.geteuid()

    def stale(path: Path) -> bool:
        try:
            info = path.stat()
        except OSError:
            return False
        return now - info.st_mtime >= min_age_s and (owner == 0 or info.st_uid == owner)

    removed = 0
    for name, lock in names.items():
        if _SEGMENT_LOCK.match(name) and stale(lock) and _remove_if_unlocked(lock, [lock.with_name(name[:-3])]):
            removed += 1
    in_use = shm_files_in_use(folder)
    if in_use is None:
        return removed
    gone: set[str] = set()
    for name, lock in names.items():
        match = _PORT_LOCK.match(name)
        if match is None or not stale(lock):
            continue
        segment, mutex = _port_names(match.group(1))
        if segment in in_use or mutex in in_use:
            continue  # a live writer still maps the dead listener's port: Fast DDS resets it on the next open
        if _remove_if_unlocked(lock, [folder / segment, folder / mutex]):
            gone |= {name, segment, mutex}
            removed += 1
    for name, path in names.items():
        match = _PORT_SEGMENT.match(name)
        if match is None or name in gone or name in in_use or not stale(path):
            continue
        if any(f"{name}_{kind}" in names for kind in ("el", "sl")):
            continue  # a lock file: a listener (rule 2 when it is dead)
        segment, mutex = _port_names(match.group(1))
        _unlink(path)
        if mutex not in in_use:
            _unlink(folder / mutex)
            gone.add(mutex)
        gone.add(segment)
        removed += 1
    for name, path in names.items():
        match = _PORT_MUTEX.match(name)
        if match is None or name in gone or name in in_use or not stale(path):
            continue
        segment, _ = _port_names(match.group(1))
        if (folder / segment).exists() and _semaphore_value(path) != 0:
            continue  # an unlocked mutex of a port that exists: Fast DDS's, to keep
        _unlink(path)
        removed += 1
    return removed


def shm_files_in_use(folder: Path = SHM_FOLDER) -> set[str] | None:
    """Names of the files in ``folder`` that a process of this user maps or holds open (root: any process).

    Read from ``/proc/<pid>/maps`` and ``/proc/<pid>/fd``; None when ``/proc`` cannot be listed. Processes
    whose maps this user may not read are not looked at: another user's cannot open this user's files
    read-write (Fast DDS creates them 0644, and opens them read-write), and one more privileged than this
    user (a container runtime's PID 1) runs no participant of this user's.
    """
    prefix = str(folder).rstrip("/") + "/"
    owner = os.geteuid()
    names: set[str] = set()
    try:
        processes = [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    except OSError:
        return None
    for process in processes:
        try:
            if owner != 0 and process.stat().st_uid != owner:
                continue
            maps = (process / "maps").read_text(encoding="utf-8", errors="replace")
            links = []
            for fd in (process / "fd").iterdir():
                try:
                    links.append(os.readlink(fd))
                except FileNotFoundError:
                    continue  # closed meanwhile
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # ended meanwhile, or not this user's to read (see above)
        except OSError:
            return None
        for line in maps.splitlines():
            at = line.find(prefix)
            if at >= 0:
                names.add(line[at + len(prefix):].removesuffix(" (deleted)"))
        names.update(link[len(prefix):].removesuffix(" (deleted)") for link in links if link.startswith(prefix))
    return names


def _port_names(port: str) -> tuple[str, str]:
    """A port number's segment and named-mutex file names."""
    return f"fastdds_port{port}", f"sem.fastdds_port{port}_mutex"


def _remove_if_unlocked(lock: Path, files: list[Path]) -> bool:
    """Take ``lock`` (``flock``, exclusive, not waiting) and, holding it, remove ``files`` and ``lock``.

    False when a live process holds the lock (a live participant or listener), or the lock is gone.
    """
    try:
        with open(lock, "ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while the owner lives
            for path in files:
                _unlink(path)
            lock.unlink(missing_ok=True)
    except OSError:  # held (alive), gone meanwhile, or not ours to remove
        return False
    return True


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _semaphore_value(path: Path) -> int | None:
    """The count of a glibc POSIX named semaphore file (``sem_t``, 32 bytes on 64-bit Linux: the value is the low
    32 bits of its first word); None when the file is not one. 0: locked (a boost ``named_mutex`` is a semaphore)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) != 32:
        return None
    return int.from_bytes(data[:8], "little") & 0xFFFFFFFF


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
