"""Loading robot descriptions: URDF files, xacro files and ``robot_description`` XML strings.

A description is kept as text plus the folder it came from, because mesh paths in it
(``package://``, ``file://`` or relative) are resolved against that folder and against the
installed ROS packages.

What a description can do, truthfully: a plain URDF (and any ``robot_description`` XML string)
is parsed as XML and nothing in it runs. A **xacro file is a program**: the ``xacro`` library
evaluates its ``${...}`` and ``$(eval ...)`` expressions with Python's ``eval`` (builtins removed
and ``__`` names refused, which is not a sandbox: an expression can still reach every class
loaded in the process, ``test_a_xacro_file_is_a_program`` shows it), resolves ``$(env ...)``,
``$(find ...)`` and ``$(arg ...)``, and reads other files (``xacro:include``, ``load_yaml``),
all with this process's rights. A ``.urdf`` file that declares ``xmlns:xacro`` and uses
``<xacro:`` tags is expanded the same way. Load xacro only from a source you would run code from.
"""

from __future__ import annotations

import os
import site
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from robot_brain.errors import DescriptionError

XACRO_SUFFIXES = (".xacro", ".urdf.xacro")


@dataclass(frozen=True)
class RobotDescription:
    """The URDF text of a robot and where it came from.

    Attributes:
        xml: the URDF document (xacro already expanded).
        source: the file path, or ``"<robot_description>"`` for an XML string.
        base_dir: folder used to resolve relative mesh paths (``None`` for strings).
    """

    xml: str
    source: str
    base_dir: Path | None

    def root(self) -> ET.Element:
        """Parse the document; raises :class:`DescriptionError` on malformed XML."""
        return parse_urdf_xml(self.xml, self.source)


def parse_urdf_xml(xml: str, source: str) -> ET.Element:
    """Parse URDF text into its ``<robot>`` element with a one-line error on failure."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        line, column = error.position
        raise DescriptionError(
            f"{source}: malformed XML at line {line}, column {column}: {_first_line(str(error))}"
        ) from None
    if root.tag != "robot":
        raise DescriptionError(f"{source}: expected a <robot> root element, found <{root.tag}>")
    return root


def looks_like_xml(source: str | os.PathLike[str]) -> bool:
    """True when ``source`` is an XML document rather than a path (the robot_description convention)."""
    return isinstance(source, str) and source.lstrip().startswith("<")


def load_description(
    source: str | os.PathLike[str],
    xacro_args: Mapping[str, str] | None = None,
) -> RobotDescription:
    """Load a robot description from a ``.urdf`` file, a ``.xacro`` file or an XML string.

    Args:
        source: a path, or the URDF XML itself (as published on ``robot_description``).
        xacro_args: ``name:=value`` arguments for xacro files.

    Raises:
        DescriptionError: missing file, unreadable file, malformed XML or a xacro error.
    """
    if looks_like_xml(source):
        text = str(source)
        if "xmlns:xacro" in text:
            raise DescriptionError(
                "<robot_description>: the XML string is unexpanded xacro; expand it first or pass the .xacro file"
            )
        description = RobotDescription(xml=text, source="<robot_description>", base_dir=None)
        description.root()
        return description

    path = Path(source).expanduser()
    if not path.exists():
        raise DescriptionError(f"{path}: no such file (expected a .urdf or .xacro robot description)")
    if not path.is_file():
        raise DescriptionError(f"{path}: not a file (expected a .urdf or .xacro robot description)")
    path = path.resolve()
    if path.name.endswith(XACRO_SUFFIXES):
        text = _expand_xacro(path, xacro_args or {})
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DescriptionError(f"{path}: cannot read: {_first_line(str(error))}") from None
        if "xmlns:xacro" in text and "<xacro:" in text:
            text = _expand_xacro(path, xacro_args or {})
    description = RobotDescription(xml=text, source=str(path), base_dir=path.parent)
    description.root()
    return description


def _expand_xacro(path: Path, xacro_args: Mapping[str, str]) -> str:
    """Expand a xacro file with the ``xacro`` library; its errors become one-line DescriptionErrors."""
    try:
        import xacro
    except ImportError:  # pragma: no cover - xacro is a declared dependency
        raise DescriptionError(f"{path}: xacro is not installed (pip install xacro)") from None
    _extend_ros_package_path()
    try:
        document = xacro.process_file(str(path), mappings=dict(xacro_args))
        return document.toprettyxml(indent="  ")
    except Exception as error:  # xacro raises many types (XacroException, NameError, ...)
        raise DescriptionError(f"{path}: xacro error: {_first_line(str(error)) or type(error).__name__}") from None


def _extend_ros_package_path() -> None:
    """Let xacro's ``$(find pkg)`` see packages in the ament index and the pip robot-data prefix."""
    roots = [str(share.parent) for share in ament_share_roots()]
    current = [p for p in os.environ.get("ROS_PACKAGE_PATH", "").split(os.pathsep) if p]
    os.environ["ROS_PACKAGE_PATH"] = os.pathsep.join(dict.fromkeys(current + roots))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def ament_share_roots() -> list[Path]:
    """Every ``share/`` folder where ROS packages may live, most specific first.

    This covers ``AMENT_PREFIX_PATH`` (colcon/ROS installs), this interpreter's prefix (the
    venv is an ament prefix with the PyPI ROS wheels) and pip-installed ``cmeel.prefix``
    trees (example-robot-data registers itself there).
    """
    prefixes: list[Path] = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(Path(sys.prefix))
    for site_dir in _site_packages():
        prefixes.append(Path(site_dir) / "cmeel.prefix")
    roots = []
    for prefix in prefixes:
        share = prefix / "share"
        if share.is_dir() and share not in roots:
            roots.append(share)
    return roots


def _site_packages() -> Iterable[str]:
    try:
        yield from site.getsitepackages()
    except AttributeError:  # pragma: no cover - virtualenv without getsitepackages
        pass
    yield site.getusersitepackages()


def find_package_share(package: str) -> Path | None:
    """The share folder of a ROS package, looked up in the ament index of every known prefix."""
    for share in ament_share_roots():
        marker = share / "ament_index" / "resource_index" / "packages" / package
        candidate = share / package
        if marker.exists() and candidate.is_dir():
            return candidate
        if candidate.is_dir() and (candidate / "package.xml").exists():
            return candidate
    return None


def resolve_resource_uri(uri: str, base_dir: Path | None) -> Path | None:
    """Resolve a mesh or resource URI from a URDF to an existing file, or ``None``.

    Handles ``package://pkg/rest`` (ament index, pip robot-data prefixes, and the common
    layout of self-contained descriptions where ``pkg`` is a folder next to the URDF or the
    URDF's own folder), ``file://`` URIs and paths relative to the description's folder.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "package":
        package, rest = parsed.netloc, unquote(parsed.path).lstrip("/")
        candidates: list[Path] = []
        share = find_package_share(package)
        if share is not None:
            candidates.append(share / rest)
        if base_dir is not None:
            for folder in (base_dir, *base_dir.parents[:3]):
                candidates.append(folder / package / rest)
                candidates.append(folder / rest)
                if folder.name == package:
                    candidates.append(folder / rest)
        return next((c for c in candidates if c.is_file()), None)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        return path if path.is_file() else None
    if parsed.scheme:
        return None  # http(s) and other schemes are never fetched
    path = Path(uri)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path if path.is_file() else None


@dataclass(frozen=True)
class MeshResolution:
    """Outcome of rewriting a description's mesh URIs to absolute file paths."""

    description: RobotDescription
    resolved: dict[str, Path]
    missing: tuple[str, ...]


def resolve_mesh_paths(description: RobotDescription) -> MeshResolution:
    """Return a copy of ``description`` whose ``<mesh filename>`` attributes are absolute paths.

    Meshes are optional for kinematics, so unresolved ones are reported, not raised; the
    simulator decides what to do with them.
    """
    root = description.root()
    resolved: dict[str, Path] = {}
    missing: list[str] = []
    for mesh in root.iter("mesh"):
        uri = mesh.get("filename", "")
        path = resolve_resource_uri(uri, description.base_dir)
        if path is None:
            missing.append(uri)
            continue
        resolved[uri] = path
        mesh.set("filename", str(path))
    xml = ET.tostring(root, encoding="unicode")
    return MeshResolution(
        description=RobotDescription(xml=xml, source=description.source, base_dir=description.base_dir),
        resolved=resolved,
        missing=tuple(dict.fromkeys(missing)),
    )
