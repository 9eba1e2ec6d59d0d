"""Which robot to run: a preset in ``config/robots``, a bundled arm, or any URDF/xacro file.

``config_dir`` finds ``config/`` in the source tree or the installed ``share/robot_brain``;
:func:`resolve_robot` turns ``--robot``/``--urdf`` into a :class:`Robot` (description file,
chain hints, and the preset's per-node parameter refinements).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robot_brain.embodiment import Arm, load_arm
from robot_brain.embodiment.catalog import BUNDLED_ARMS, bundled_arm_path
from robot_brain.errors import ConfigurationError

PACKAGE = "robot_brain"
BRAIN_NODES = ("perception", "policy", "arm_controller")
#: Every node a plan may hold (parameter overrides and presets name them).
KNOWN_NODES = (*BRAIN_NODES, "sim", "teleop", "recorder")
DEFAULT_ROBOT = "panda"


def config_dir() -> Path:
    """``config/`` of the source tree, else the installed ``share/robot_brain/config``."""
    source = Path(__file__).resolve().parents[2] / "config"
    if source.is_dir():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE)) / "config"
    except Exception:  # PackageNotFoundError, or ament_index missing
        raise ConfigurationError(
            f"robot_brain config: expected {source} or an installed share/{PACKAGE}/config, found neither"
        ) from None


def preset_names() -> list[str]:
    return sorted(path.stem for path in (config_dir() / "robots").glob("*.yaml"))


@dataclass(frozen=True)
class Robot:
    """A robot to run: its description file, chain hints and the preset's parameter refinements."""

    name: str
    urdf: Path
    base_link: str = ""
    tip_link: str = ""
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    preset: Path | None = None

    def load(self) -> Arm:
        return load_arm(self.urdf, base_link=self.base_link or None, tip_link=self.tip_link or None)


def resolve_robot(robot: str | None = None, urdf: str | os.PathLike[str] | None = None) -> Robot:
    """``--robot NAME`` (a preset in ``config/robots``, else a bundled arm) or ``--urdf PATH``.

    With both, the URDF is used with the named preset's refinements.
    """
    if robot is None and urdf is None:
        robot = DEFAULT_ROBOT
    preset = config_dir() / "robots" / f"{robot}.yaml" if robot else None
    data: dict[str, Any] = {}
    if preset is not None and preset.is_file():
        data = read_yaml(preset)
    elif robot is not None and robot not in BUNDLED_ARMS:
        raise ConfigurationError(
            f"robot '{robot}': expected a preset ({', '.join(preset_names())}) or a bundled arm "
            f"({', '.join(sorted(BUNDLED_ARMS))})"
        )
    else:
        preset = None
    if urdf is not None:
        path = Path(urdf).expanduser()
    elif data.get("urdf"):
        path = Path(str(data["urdf"]))
        path = path if path.is_absolute() or preset is None else (preset.parent / path)
    else:
        path = bundled_arm_path(str(data.get("robot") or robot))
    parameters = data.get("parameters") or {}
    unknown = set(parameters) - set(KNOWN_NODES)
    if unknown:
        raise ConfigurationError(
            f"{preset}: parameters for unknown node(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(KNOWN_NODES)}"
        )
    return Robot(
        name=str(robot or path.stem),
        urdf=path.resolve() if path.exists() else path,
        base_link=str(data.get("base_link") or ""),
        tip_link=str(data.get("tip_link") or ""),
        parameters={node: dict(values or {}) for node, values in parameters.items()},
        preset=preset,
    )


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping; a one-line :class:`ConfigurationError` otherwise."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigurationError(f"{path}: cannot read the YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data
