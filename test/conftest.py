"""Shared test set-up.

Every test run talks DDS in its own ``ROS_DOMAIN_ID`` (derived from the process id) and
only on this host, so parallel runs and other machines never see each other's topics.
Child processes started by tests inherit the same environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

REPO_ROOT = Path(__file__).resolve().parents[1]
# Shared test helpers (robots.py: paths of real URDFs from pip packages) import as top-level modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))
