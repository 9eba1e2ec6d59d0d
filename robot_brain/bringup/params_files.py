"""ROS 2 params files that rcl's own parser reads, and parameter values typed as the nodes declare them.

rcl refuses YAML anchors, empty lists and mixed-type lists, and rclpy refuses an override whose
type differs from the declared default; these helpers turn what a plan, a preset or
``--param`` gives into values that pass both, or into a one-line error before any process starts.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from robot_brain.bringup.robots import read_yaml
from robot_brain.errors import ConfigurationError


class _ParamsDumper(yaml.SafeDumper):
    """A YAML dumper for ROS params files: never anchors and aliases.

    PyYAML writes ``&id001``/``*id001`` whenever the same list or dict object appears twice in
    a document (one joint list shared by two controllers, one override dict reused); rcl's
    params parser refuses them ("Will not support aliasing"), and the node, or the whole
    controller manager, then fails to start.
    """

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_params_yaml(document: Mapping[str, Any]) -> str:
    """``document`` as params-file YAML that rcl's own parser reads (the one helper for every params file).

    Besides leaving out aliases, values are put in the forms rcl accepts: tuples become lists,
    numpy and other numeric scalars become ``int``/``float``, and a list mixing integers and
    floats (``[0.4, 1]`` from ``--param``) becomes a list of floats, since rcl refuses mixed
    lists. Lists rcl cannot represent at all raise :class:`ConfigurationError`.
    """
    return yaml.dump(_rcl_value(document, ""), Dumper=_ParamsDumper, sort_keys=False)


def write_params_file(path: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` to ``path`` with :func:`dump_params_yaml`; returns ``path``."""
    path.write_text(dump_params_yaml(document), encoding="utf-8")
    return path


def _rcl_value(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _rcl_value(item, f"{name}.{key}" if name else str(key)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return _rcl_list([_rcl_scalar(item, name) for item in value], name)
    return _rcl_scalar(value, name)


def _rcl_scalar(value: Any, name: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):  # numpy scalars (bool_)
        return _rcl_scalar(value.item(), name)
    raise ConfigurationError(
        f"parameter '{_leaf(name)}': expected a bool, number, string or a list of one of them, "
        f"found {type(value).__name__}"
    )


def _rcl_list(items: list[Any], name: str) -> list[Any]:
    """rcl arrays hold one type: bools, integers, floats or strings; integers mixed with floats become floats."""
    if not items:
        raise ConfigurationError(
            f"parameter '{_leaf(name)}': expected a non-empty list (rcl reads [] as an unset parameter), found []"
        )
    kinds = {"bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else type(v).__name__
             for v in items}
    if kinds == {"number"}:
        return [float(v) for v in items] if any(isinstance(v, float) for v in items) else items
    if len(kinds) == 1 and kinds <= {"bool", "str"}:
        return items
    raise ConfigurationError(
        f"parameter '{_leaf(name)}': expected a list of one type (bools, numbers or strings), found {items!r}"
    )


def _leaf(name: str) -> str:
    """The parameter's own name in a params document path (``/**.ros__parameters.home`` → ``home``)."""
    return name.partition("ros__parameters.")[2] or name


def parse_overrides(pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["sim.camera_rate_hz=30", "policy.model_path=m.onnx"]`` → ``{"sim": {...}, "policy": {...}}``.

    Values are parsed as YAML scalars or lists (``30`` is an int, ``[1, 2]`` a list).
    """
    overrides: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        node, dot, name = key.partition(".")
        if not separator or not dot or not node or not name:
            raise ConfigurationError(f"parameter override '{pair}': expected NODE.NAME=VALUE")
        try:
            parsed = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            parsed = text
        overrides.setdefault(node, {})[name] = parsed
    return overrides


def parse_bool(name: str, text: str) -> bool:
    """A launch argument's ``true``/``false`` (also ``1``/``0``, ``yes``/``no``, any case)."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(f"{name}: expected true or false, found '{text}'")


def declared_defaults(path: Path) -> dict[str, Any]:
    """The ``/**`` parameters of a node's defaults file (``{}`` when there is none)."""
    if not path.is_file():
        return {}
    section = read_yaml(path).get("/**") or {}
    return flat_parameters(dict((section.get("ros__parameters") if isinstance(section, dict) else None) or {}))


def flat_parameters(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params-file keys (``axis_linear: {x: 1}``, teleop_twist_joy's style) as parameter names."""
    flat: dict[str, Any] = {}
    for key, item in values.items():
        if isinstance(item, Mapping):
            flat.update(flat_parameters(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def typed_like(name: str, value: Any, default: Any) -> Any:
    """``value`` in the type the node declares (its default's type), or a one-line error.

    rclpy refuses an override whose type differs from the declared one ("Trying to set
    parameter 'camera_rate_hz' to '30' of type 'INTEGER', expecting type 'DOUBLE'") and the
    node dies at start-up, so ``--param sim.camera_rate_hz=30`` is made ``30.0`` here, and a
    value that cannot be converted is refused before any process starts.
    """
    if isinstance(default, list) and isinstance(value, (list, tuple)):
        if not default or not value:
            return list(value)
        return [typed_like(name, item, default[0]) for item in value]
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) and isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)):
        return float(value)
    elif isinstance(default, float) and isinstance(value, str) and _is_float(value):
        return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
    elif isinstance(default, int) and isinstance(value, (int, float)) and float(value).is_integer():
        return int(value)
    elif isinstance(default, str) and isinstance(value, str):
        return value
    elif not isinstance(default, (list, bool, int, float, str)):
        return value
    raise ConfigurationError(
        f"parameter '{name}': expected {_kind(default)} (the node declares {default!r}), found {value!r}"
    )


def _is_float(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _kind(default: Any) -> str:
    if isinstance(default, list):
        return f"a list of {_kind(default[0]).removeprefix('a ').removeprefix('an ')}s" if default else "a list"
    return {bool: "a bool", int: "an integer", float: "a number", str: "a string"}.get(type(default), "a value")
