#!/usr/bin/env python3
"""Register the editable robot_brain in an ament prefix (the venv), as colcon would install it.

``pip install -e .`` installs the Python package and its console scripts into ``bin/`` but
none of setup.py's ``data_files`` (editable wheels carry no data files), so from the venv
``ament_index_python.get_package_share_directory('robot_brain')`` fails, and launch_ros,
which runs ``<prefix>/lib/robot_brain/<executable>`` of a package found in the ament index,
cannot start a node. This tool creates what colcon's install step would, as symbolic links
into the source tree (edits take effect at once, as with the editable install):

    <prefix>/share/ament_index/resource_index/packages/robot_brain   (the index marker)
    <prefix>/share/robot_brain/{package.xml, launch, config}
    <prefix>/lib/robot_brain/<console script>                       (-> this interpreter's scripts)

It is idempotent: links are replaced, and links left from console scripts that no longer
exist are removed. ``make install`` runs it after ``pip install -e .``.

Usage: python tools/ament_package.py --prefix .venv
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import sys
import sysconfig
from pathlib import Path

PACKAGE = "robot_brain"
SOURCE = Path(__file__).resolve().parents[1]
SHARED = ("package.xml", "launch", "config")


def console_scripts(distribution: str = PACKAGE) -> list[str]:
    """Names of the console scripts the installed ``distribution`` declares (the node executables and the CLI)."""
    try:
        entry_points = importlib.metadata.distribution(distribution).entry_points
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(f"{distribution} is not installed in {sys.prefix}: run `pip install -e .` first") from None
    return sorted(ep.name for ep in entry_points if ep.group == "console_scripts")


def link(path: Path, target: Path) -> None:
    """Make ``path`` a symbolic link to ``target``, replacing whatever is there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():  # a real folder, e.g. from an earlier non-editable install
        shutil.rmtree(path)
    path.symlink_to(target)


def install(prefix: Path, scripts_dir: Path, source: Path = SOURCE) -> list[Path]:
    """Create the index marker, the share folder and the executables' links; returns the links made."""
    made = []
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    link(marker, source / "resource" / PACKAGE)
    made.append(marker)
    share = prefix / "share" / PACKAGE
    for name in SHARED:
        link(share / name, source / name)
        made.append(share / name)
    executables = prefix / "lib" / PACKAGE
    wanted = console_scripts()
    for name in wanted:
        script = scripts_dir / name
        if not script.is_file():
            raise SystemExit(f"{script}: expected the console script '{name}' of {PACKAGE}, found nothing")
        link(executables / name, script)
        made.append(executables / name)
    for stale in executables.iterdir():
        if stale.is_symlink() and stale.name not in wanted:
            stale.unlink()
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=Path, default=Path(sys.prefix),
                        help="ament prefix to register in (default: this interpreter's prefix, the venv)")
    parser.add_argument("--scripts-dir", type=Path, default=Path(sysconfig.get_path("scripts")),
                        help="where pip put the console scripts (default: this interpreter's bin/)")
    args = parser.parse_args(argv)
    made = install(args.prefix.resolve(), args.scripts_dir.resolve())
    print(f"{PACKAGE}: {len(made)} links in {args.prefix} (ament index, share/{PACKAGE}, lib/{PACKAGE})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
