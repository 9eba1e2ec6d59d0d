"""Fast DDS shared-memory files a killed process leaves behind are removed; a live process's are kept.

Real participants: rclpy processes in private domains, one killed with SIGKILL, one alive, and a process
that dies holding the named mutex of the live one's port (every later participant opening that port then
waits out Fast DDS's lock timeout and breaks the mutex under whoever else is opening it). Their files are
told apart by what each process holds open (its lock files), not by timing, so other sessions' files in
/dev/shm never count. Files are made to look old (``min_age_s`` keeps brand-new files, which may be being
set up); everything else is the real thing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.domains import next_domain

from robot_brain.bringup.isolation import SHM_FOLDER, remove_dead_dds_segments, shm_files_in_use

pytestmark = [pytest.mark.dds, pytest.mark.timeout(120)]

PARTICIPANT = """
import sys
import rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node("shm_cleanup_probe")
publisher = node.create_publisher(String, "/shm_cleanup_probe", 10)
heard = []

def hear(msg):
    if not heard and msg.data == "talker":
        heard.append(msg)
        print("heard", flush=True)

node.create_subscription(String, "/shm_cleanup_probe", hear, 10)
if "--talk" in sys.argv:
    node.create_timer(0.05, lambda: publisher.publish(String(data="talker")))
print("ready", flush=True)
try:
    rclpy.spin(node)
except KeyboardInterrupt:
    pass
node.destroy_node()
rclpy.try_shutdown()
"""

MUTEX_HOLDER = """
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.sem_open.restype = ctypes.c_void_p
libc.sem_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.sem_wait.argtypes = [ctypes.c_void_p]
semaphore = libc.sem_open(sys.argv[1].encode(), 0)
assert semaphore not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
assert libc.sem_wait(semaphore) == 0
print("locked", flush=True)
time.sleep(600)
"""


def _start(code: str, *args: str, domain: int | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain if domain is not None else next_domain())}
    process = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line in ("ready", "locked"), line
    return process


def _owned_files(pid: int) -> set[str]:
    """A participant's files: the lock files it holds open, what they lock, and its ports' named mutexes."""
    locks = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith(f"{SHM_FOLDER}/fastdds_") and target.endswith(("_el", "_sl")):
            locks.add(Path(target).name)
    files = set(locks)
    for lock in locks:
        files.add(lock[:-3])
        if lock.startswith("fastdds_port"):
            files.add(f"sem.{lock[:-3]}_mutex")
    return {name for name in files if (SHM_FOLDER / name).exists()}


def _age(names: set[str], seconds: float = 120.0) -> None:
    then = time.time() - seconds
    for name in names:
        os.utime(SHM_FOLDER / name, (then, then))


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # rclpy shuts down: Fast DDS removes its own files
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_a_killed_participants_segment_and_ports_are_removed_and_a_live_ones_kept(processes) -> None:
    dead = _start(PARTICIPANT)
    processes.append(dead)
    alive = _start(PARTICIPANT)
    processes.append(alive)
    time.sleep(0.5)
    dead_files, live_files = _owned_files(dead.pid), _owned_files(alive.pid)
    assert any(n.startswith("fastdds_port") and not n.endswith(("_el", "_sl")) for n in dead_files), dead_files
    assert any(n.startswith("sem.fastdds_port") for n in dead_files), dead_files
    assert any(n.startswith("fastdds_port") for n in live_files) and not dead_files & live_files
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    assert all((SHM_FOLDER / name).exists() for name in dead_files)  # Fast DDS left them: nothing unlinked them
    _age(dead_files | live_files)

    remove_dead_dds_segments()

    assert not [name for name in dead_files if (SHM_FOLDER / name).exists()]
    assert [name for name in live_files if not (SHM_FOLDER / name).exists()] == []
    assert alive.poll() is None


def test_a_live_ports_mutex_left_locked_by_a_dead_process_is_removed(processes) -> None:
    domain = next_domain()
    alive = _start(PARTICIPANT, domain=domain)
    processes.append(alive)
    time.sleep(0.5)
    live_files = _owned_files(alive.pid)
    port = next(n for n in sorted(live_files) if n.startswith("fastdds_port") and n.endswith("_el"))[:-3]
    mutex = f"sem.{port}_mutex"
    assert mutex in live_files
    holder = _start(MUTEX_HOLDER, f"/{port}_mutex")  # dies inside Fast DDS's critical section for that port
    processes.append(holder)
    assert mutex in (shm_files_in_use() or set())  # a live holder maps the semaphore: kept
    _age(live_files)
    remove_dead_dds_segments()
    assert (SHM_FOLDER / mutex).exists()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (SHM_FOLDER / mutex).read_bytes()[:4] == bytes(4)  # locked for good
    _age({mutex})

    remove_dead_dds_segments()

    assert not (SHM_FOLDER / mutex).exists()
    assert [name for name in live_files - {mutex} if not (SHM_FOLDER / name).exists()] == []
    # The participant is unharmed: a new one in its domain reaches it (opening its port makes a fresh mutex).
    talker = _start(PARTICIPANT, "--talk", domain=domain)
    processes.append(talker)
    assert alive.stdout is not None and alive.stdout.readline().strip() == "heard"
    assert (SHM_FOLDER / mutex).exists()


def test_port_files_without_a_listener_go_when_nothing_maps_them(tmp_path: Path) -> None:
    """A port segment with no lock file (its listener closed, a writer died holding it), and port mutexes."""

    def make(name: str, data: bytes = bytes(64), age: float = 120.0) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        os.utime(path, (time.time() - age, time.time() - age))
        return path

    unlocked, locked = (1).to_bytes(8, "little") + bytes(24), bytes(32)
    orphan = make("fastdds_port9001"), make("sem.fastdds_port9001_mutex", unlocked)
    mapped = make("fastdds_port9002"), make("sem.fastdds_port9002_mutex", unlocked)
    listened = make("fastdds_port9003"), make("fastdds_port9003_el"), make("sem.fastdds_port9003_mutex", unlocked)
    stuck = make("fastdds_port9004"), make("fastdds_port9004_el"), make("sem.fastdds_port9004_mutex", locked)
    lonely_mutex = make("sem.fastdds_port9005_mutex", unlocked)
    fresh = make("fastdds_port9006", age=1.0), make("sem.fastdds_port9006_mutex", unlocked, age=1.0)
    import fcntl

    with open(mapped[0], "rb") as writer, open(listened[1], "ab") as listener, open(stuck[1], "ab") as other:
        fcntl.flock(listener, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live listener on 9003 and on 9004
        fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
        assert writer.readable()  # a live writer holds 9002 open
        remove_dead_dds_segments(min_age_s=60.0, folder=tmp_path)
    assert not any(path.exists() for path in (*orphan, lonely_mutex))
    assert all(path.exists() for path in (*mapped, *listened, *fresh, stuck[0], stuck[1]))
    assert not stuck[2].exists()  # locked, and no live process maps it: its holder is dead
