#!/usr/bin/env python3
"""Build the ``robot_brain_msgs`` interfaces (``msg/``) and install them into a venv.

Why this exists: there is no ROS install here, only ROS 2 (Kilted) wheels from PyPI. Those
wheels ship the rosidl generators and the ament CMake machinery, so a plain CMake + Ninja
build of ``msg/`` works with the venv as both the CMake prefix and the install prefix
(the venv *is* an ament prefix: the wheels register their packages in
``$VENV/share/ament_index``). After ``install`` the generated Python package lands in the
venv's ``site-packages`` and its C libraries in ``$VENV/lib`` (which the
``ros-wheels-bootstrapper`` puts on ``LD_LIBRARY_PATH``), so
``from robot_brain_msgs.msg import ActionChunk`` works with no environment variables.

One wrinkle makes a plain build fail: the message wheels' exported CMake files
(``$VENV/share/*/cmake/*__rosidl_generator_pyExport.cmake``) name the *wheel builder's*
Python and numpy include folders (``/opt/python/cp311-cp311/...``), which do not exist here.
This tool rewrites them, idempotently, to the venv interpreter's own include folders before
configuring.

Usage::

    .venv/bin/python tools/build_interfaces.py                # into the running venv
    python3 tools/build_interfaces.py --venv .venv            # into another venv
    python3 tools/build_interfaces.py --venv .venv --clean    # reconfigure from scratch

Exit status 0 on success; on any failure a single ``build_interfaces: error: ...`` line
(after the failing tool's own output) and a non-zero status.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT / "msg"
DEFAULT_BUILD_DIR = REPO_ROOT / ".build" / "robot_brain_msgs"
PACKAGE_NAME = "robot_brain_msgs"

# What the wheels were built with: manylinux's /opt/python/<tag>/... Any CPython tag is
# matched so a rebuilt wheel set for another minor version is fixed the same way.
_BUILDER_PYTHON_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+t?/include/python3\.\d+t?")
_BUILDER_NUMPY_INCLUDE = re.compile(
    r"/opt/python/cp3\d+-cp3\d+t?/lib/python3\.\d+t?/site-packages/numpy/(?:_core|core)/include"
)

# Statements that prove the installed package imports; run in a clean environment.
_IMPORT_CHECK = (
    "from robot_brain_msgs.msg import ActionChunk, EpisodeEvent, EpisodeResult, JointJog; "
    "from robot_brain_msgs.srv import GetEpisodeResult, ResetEpisode, StartEpisode, StopEpisode; "
    "print(ActionChunk.__module__)"
)

# Variables that would make the import check pass for the wrong reason (or fail for one).
_ENV_TO_DROP_FOR_CHECK = ("_ROS_WHEELS_BOOTSTRAP_COMPLETE", "LD_LIBRARY_PATH", "AMENT_PREFIX_PATH",
                          "PYTHONPATH", "CMAKE_PREFIX_PATH")


class BuildError(RuntimeError):
    """A failure the user can act on; its message says what to do."""


@dataclass(frozen=True)
class InterpreterPaths:
    """Include folders of the venv's interpreter, the ones the generated C code needs."""

    python_include: Path
    numpy_include: Path


def log(message: str) -> None:
    """Print a progress line; flushed so it interleaves correctly with CMake's output."""
    print(f"build_interfaces: {message}", flush=True)


def venv_python(venv: Path) -> Path:
    """Return the venv's interpreter, which CMake must use (not whoever runs this tool)."""
    python = venv / "bin" / "python"
    if not python.exists():
        raise BuildError(f"{python} does not exist: is {venv} a virtual environment? (make venv)")
    return python


def query_interpreter_paths(python: Path) -> InterpreterPaths:
    """Ask the venv's own interpreter for its include folders.

    Asked in a subprocess rather than read from this process so that the tool gives the
    right answer when run by another Python (e.g. the system ``python3`` from make).
    """
    code = (
        "import json, sysconfig, numpy; "
        "print(json.dumps({'python': sysconfig.get_paths()['include'], 'numpy': numpy.get_include()}))"
    )
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(
            f"cannot read include folders from {python} (is numpy installed? "
            f"pip install -r requirements/base.txt):\n{result.stderr.strip()}"
        )
    paths = json.loads(result.stdout.strip().splitlines()[-1])
    found = InterpreterPaths(Path(paths["python"]), Path(paths["numpy"]))
    if not (found.python_include / "Python.h").exists():
        raise BuildError(
            f"{found.python_include}/Python.h is missing: install the Python development headers "
            "(e.g. apt-get install python3.11-dev) or use a Python that ships them (pyenv, python.org)"
        )
    if not found.numpy_include.is_dir():
        raise BuildError(f"numpy include folder {found.numpy_include} does not exist")
    return found


def rewrite_builder_include_paths(venv: Path, paths: InterpreterPaths) -> list[Path]:
    """Point the wheels' exported CMake files at this venv's include folders.

    Idempotent: once rewritten, the builder's paths no longer occur, so a second run
    changes nothing. Returns the files that were changed.
    """
    changed: list[Path] = []
    for cmake_file in sorted(venv.glob("share/*/cmake/*.cmake")):
        try:
            text = cmake_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "/opt/python/" not in text:
            continue
        # Callables as replacements: the paths may contain backslashes or group references.
        new_text = _BUILDER_PYTHON_INCLUDE.sub(lambda _m: str(paths.python_include), text)
        new_text = _BUILDER_NUMPY_INCLUDE.sub(lambda _m: str(paths.numpy_include), new_text)
        if new_text != text:
            cmake_file.write_text(new_text, encoding="utf-8")
            changed.append(cmake_file)
    return changed


def find_tool(venv: Path, name: str) -> str:
    """Prefer the venv's pinned cmake/ninja (requirements/build.txt) over the system's."""
    candidate = venv / "bin" / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BuildError(f"'{name}' is not in {venv}/bin nor on PATH: pip install -r requirements/build.txt")
    return found


def build_environment(venv: Path) -> dict[str, str]:
    """Environment for CMake: the venv first on PATH and as the only ament prefix."""
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # A PYTHONPATH from elsewhere could make the generators import foreign rosidl modules.
    env.pop("PYTHONPATH", None)
    return env


def run(command: Sequence[str], env: Mapping[str, str], what: str) -> None:
    """Run one build step, streaming its output; raise with the step's name on failure."""
    log(f"{what}: {' '.join(command)}")
    result = subprocess.run(list(command), env=dict(env), check=False)
    if result.returncode != 0:
        raise BuildError(f"{what} failed with exit status {result.returncode} (see the output above)")


def stale_cache(build_dir: Path, venv: Path) -> bool:
    """True when the build folder was configured for another prefix or generator.

    CMake refuses to switch generators in place and silently keeps an old install prefix,
    so such a cache must be thrown away rather than reused.
    """
    cache = build_dir / "CMakeCache.txt"
    if not cache.exists():
        return False
    text = cache.read_text(encoding="utf-8", errors="replace")
    wanted = (f"CMAKE_INSTALL_PREFIX:PATH={venv}", "CMAKE_GENERATOR:INTERNAL=Ninja")
    return not all(line in text.splitlines() for line in wanted)


def check_import(python: Path) -> None:
    """Import the installed package in a clean environment, as a user's shell would."""
    env = {k: v for k, v in os.environ.items() if k not in _ENV_TO_DROP_FOR_CHECK}
    result = subprocess.run(
        [str(python), "-c", _IMPORT_CHECK], env=env, capture_output=True, text=True, cwd="/", check=False
    )
    if result.returncode != 0:
        raise BuildError(f"installed, but '{PACKAGE_NAME}' does not import:\n{result.stderr.strip()}")


def build(venv: Path, source: Path, build_dir: Path, clean: bool, jobs: int | None) -> None:
    """Patch, configure, build, install and check; raises BuildError on any failure."""
    venv = venv.absolute()
    source = source.resolve()
    build_dir = build_dir.absolute()
    if not (source / "CMakeLists.txt").exists():
        raise BuildError(f"{source}/CMakeLists.txt not found")
    python = venv_python(venv)
    if not (venv / "share" / "rosidl_default_generators").is_dir():
        raise BuildError(
            f"rosidl_default_generators is not installed in {venv}: pip install -r requirements/build.txt"
        )

    paths = query_interpreter_paths(python)
    changed = rewrite_builder_include_paths(venv, paths)
    log(f"rewrote builder include paths in {len(changed)} CMake file(s) under {venv}/share")

    if clean or stale_cache(build_dir, venv):
        shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True, exist_ok=True)

    env = build_environment(venv)
    cmake = find_tool(venv, "cmake")
    ninja = find_tool(venv, "ninja")
    run(
        [
            cmake, "-S", str(source), "-B", str(build_dir), "-G", "Ninja",
            f"-DCMAKE_MAKE_PROGRAM={ninja}",
            f"-DCMAKE_PREFIX_PATH={venv}",
            f"-DCMAKE_INSTALL_PREFIX={venv}",
            f"-DPython3_EXECUTABLE={python}",
            "-DBUILD_TESTING=OFF",
            "-DCMAKE_BUILD_TYPE=Release",
        ],
        env,
        "configure",
    )
    build_command = [cmake, "--build", str(build_dir)]
    if jobs:
        build_command += ["--parallel", str(jobs)]
    run(build_command, env, "build")
    run([cmake, "--install", str(build_dir)], env, "install")
    check_import(python)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; defaults build the repository's msg/ into the running venv."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix),
                        help="virtual environment to build against and install into (default: %(default)s)")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="the ament_cmake interface package (default: %(default)s)")
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR,
                        help="CMake build folder (default: %(default)s)")
    parser.add_argument("--clean", action="store_true", help="delete the build folder first")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="parallel build jobs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the build; returns the process exit status."""
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        build(args.venv, args.source, args.build_dir, args.clean, args.jobs)
    except BuildError as error:
        print(f"build_interfaces: error: {error}", file=sys.stderr, flush=True)
        return 1
    except OSError as error:
        print(f"build_interfaces: error: {error}", file=sys.stderr, flush=True)
        return 1
    log(f"{PACKAGE_NAME} installed into {args.venv.absolute()} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
