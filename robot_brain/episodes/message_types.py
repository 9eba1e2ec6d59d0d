"""The message types episodes are written and read with: ROS 2 Kilted plus ``robot_brain_msgs``.

``rosbags`` ships Kilted's standard types; our own interfaces are registered from their
``.msg`` text, found without rclpy: first through the ament index (the installed
``share/robot_brain_msgs/msg``), then in the repository's ``msg/`` folder beside the package
(a source checkout without the interface build). The type hashes rosbags computes from that
text are the RIHS01 hashes rosidl generates (checked by the tests), so bags carry the same
``type_description_hash`` a ``ros2 bag record`` would.

Definitions are only ever taken from our own files, never from a bag: registering a type in
rosbags generates and executes Python code, and nothing read from a bag is executed.
"""

from __future__ import annotations

import functools
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

INTERFACE_PACKAGE = "robot_brain_msgs"


def interface_msg_dir() -> Path:
    """The folder holding ``robot_brain_msgs``' ``.msg`` files (installed share folder, else the repo's)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            installed = Path(get_package_share_directory(INTERFACE_PACKAGE)) / "msg"
        except (PackageNotFoundError, LookupError, ValueError):
            installed = None
        if installed is not None and any(installed.glob("*.msg")):
            return installed
    except ImportError:
        pass
    source = Path(__file__).resolve().parents[2] / "msg"
    if any(source.glob("*.msg")):
        return source
    raise FileNotFoundError(
        f"no {INTERFACE_PACKAGE} .msg files found: not in the ament index (AMENT_PREFIX_PATH) nor in {source}"
    )


@functools.lru_cache(maxsize=1)
def episode_typestore() -> Typestore:
    """Kilted's typestore with every ``robot_brain_msgs/msg/*`` type registered (built once per process)."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    definitions: dict = {}
    for path in sorted(interface_msg_dir().glob("*.msg")):
        definitions.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"{INTERFACE_PACKAGE}/msg/{path.stem}"))
    typestore.register(definitions)
    return typestore
