"""One allocator of DDS domains for every test of a run, so no two live benches share one.

test/conftest.py gives the run its own ``ROS_DOMAIN_ID``; benches (a controller with its fake
cell, a recorder, a whole simulated cell) each take the next domain after it. Module-scoped
benches live on while later tests start theirs, and two sims or controllers in one domain would
command each other's arms. Domains stay in 1..100 (Fast DDS's default port mapping) and skip the
run's own domain; after 99 benches the numbers come round again (those benches are long gone).
"""

from __future__ import annotations

import itertools
import os

_counter = itertools.count(1)


def next_domain() -> int:
    base = int(os.environ.get("ROS_DOMAIN_ID", "0"))
    while True:
        domain = 1 + (base + next(_counter)) % 100
        if domain != base:
            return domain
