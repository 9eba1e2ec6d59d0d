"""A simulated session's private DDS domain never collides with the user's or a live participant's on this host.

The live-participant case runs a real rclpy participant in another process and reads the host's
real UDP table; nothing about DDS or the kernel is simulated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robot_brain.bringup.isolation import (
    DOMAIN_GAIN,
    DOMAIN_RANGE,
    PORT_BASE,
    DomainUnavailableError,
    choose_private_domain,
    domains_in_use,
    inherited_domain,
    isolate_dds,
)

#: The variables isolate_dds sets; each test gets them back as they were.
ISOLATION_VARIABLES = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS",
                       "FASTDDS_DEFAULT_PROFILES_FILE")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ISOLATION_VARIABLES:
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_private_domain_is_never_the_inherited_one(environment: pytest.MonkeyPatch) -> None:
    """The old choice, 1 + pid % 100, is exactly this process's inherited domain here: it must be skipped."""
    environment.setenv("ROS_DOMAIN_ID", str(1 + os.getpid() % DOMAIN_RANGE))
    chosen = isolate_dds()
    assert chosen != 1 + os.getpid() % DOMAIN_RANGE
    assert 1 <= chosen <= DOMAIN_RANGE and os.environ["ROS_DOMAIN_ID"] == str(chosen)
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"


def test_an_unset_domain_is_ros_default_zero(environment: pytest.MonkeyPatch) -> None:
    environment.delenv("ROS_DOMAIN_ID", raising=False)
    assert inherited_domain() == 0
    assert inherited_domain({"ROS_DOMAIN_ID": "42"}) == 42


def test_the_choice_skips_used_domains_wraps_around_and_says_when_none_is_left() -> None:
    assert choose_private_domain(inherited=7, in_use=set(), start=7) == 8
    assert choose_private_domain(inherited=0, in_use={99, 100}, start=99) == 1
    assert choose_private_domain(inherited=3, in_use={1, 2, 4}, start=1) == 5
    with pytest.raises(DomainUnavailableError, match="no private DDS domain is free"):
        choose_private_domain(inherited=1, in_use=set(range(2, DOMAIN_RANGE + 1)), start=1)


def test_domains_are_read_off_the_kernels_udp_table_format(tmp_path: Path) -> None:
    """Rows as /proc/net/udp writes them: a participant's unicast port of domain 42, one of domain 7, noise."""
    def row(port: int) -> str:
        return f"  12: 0100007F:{port:04X} 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 0\n"

    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    table = tmp_path / "udp"
    table.write_text(header + row(PORT_BASE + DOMAIN_GAIN * 42 + 10) + row(PORT_BASE + DOMAIN_GAIN * 7 + 249)
                     + row(53) + row(40000), encoding="ascii")
    assert domains_in_use((table, tmp_path / "missing")) == {42, 7}


PARTICIPANT = """
import sys, time, rclpy
rclpy.init(domain_id=int(sys.argv[1]))
node = rclpy.create_node("cell_controller_stand_in")
print("up", flush=True)
sys.stdin.read()
"""


@pytest.mark.dds
def test_a_domain_a_live_participant_on_this_host_is_in_is_never_chosen(environment: pytest.MonkeyPatch) -> None:
    """A cell's controller in the domain the session would otherwise pick (1 + pid % 100): it picks another."""
    environment.setenv("ROS_DOMAIN_ID", "0")  # the user's domain is not the one at stake here
    target = choose_private_domain(0, domains_in_use(), 1 + os.getpid() % DOMAIN_RANGE)
    cell = subprocess.Popen([sys.executable, "-c", PARTICIPANT, str(target)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "ROS_DOMAIN_ID": str(target)})
    try:
        assert cell.stdout is not None and cell.stdout.readline().strip() == "up"
        deadline = time.monotonic() + 10.0
        while target not in domains_in_use() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert target in domains_in_use(), f"the participant in domain {target} holds none of its ports"
        chosen = isolate_dds()
        assert chosen != target and chosen != 0
    finally:
        if cell.stdin is not None:
            cell.stdin.close()
        cell.wait(timeout=30)
