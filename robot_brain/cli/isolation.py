"""Keep self-contained runs (demo, benchmarks) off the network's ROS graph.

The demo's arm controller publishes on ros2_control's standard command topics. Run in the
default DDS domain, it could reach a real arm's controllers on the same network, so the
demo and the benchmarks always talk in a private domain, on this host only.
"""

from __future__ import annotations

import os

#: Domains 1..101 are valid for Fast DDS's default port mapping on Linux.
DOMAIN_RANGE = 100


def isolate_dds() -> int:
    """Switch this process and its children to a private domain, localhost discovery only.

    Returns the domain ID chosen (derived from the process id, so parallel runs differ).
    """
    domain = 1 + os.getpid() % DOMAIN_RANGE
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_STATIC_PEERS", None)
    return domain
