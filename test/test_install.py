"""What an install gives: the ament index entry and share folder from the venv, and runtime requirements.

- ``make install`` (pip's editable install plus ``tools/ament_package.py``) must make the venv
  an ament prefix that knows robot_brain: ``get_package_share_directory`` finds ``config/``
  and ``launch/``, and ``<prefix>/lib/robot_brain/<executable>``, where launch_ros looks for
  a node, runs the node's console script.
- ``requirements/base.txt`` (all the colcon path installs with pip) lists every third-party
  package the runtime imports, and nothing the runtime does not import.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NODE_EXECUTABLES = ("arm_controller", "perception", "policy", "sim")
LOOKUP = """
import os, sys
from ament_index_python.packages import get_package_prefix, get_package_share_directory
share = get_package_share_directory("robot_brain")
prefix = get_package_prefix("robot_brain")
print(share)
print(prefix)
"""


def _lookup(prefix: Path) -> tuple[Path, Path]:
    """``get_package_share_directory`` and ``get_package_prefix`` in a process whose only ament prefix is ``prefix``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AMENT_", "COLCON_"))}
    result = subprocess.run([sys.executable, "-c", LOOKUP], env={**env, "AMENT_PREFIX_PATH": str(prefix)},
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1:]
    share, found_prefix = result.stdout.split()
    return Path(share), Path(found_prefix)


def _check_prefix(prefix: Path) -> None:
    share, found_prefix = _lookup(prefix)
    assert found_prefix == prefix and share == prefix / "share" / "robot_brain"
    assert (share / "config" / "sim.yaml").is_file() and (share / "config" / "robots" / "panda.yaml").is_file()
    assert {p.name for p in (share / "launch").glob("*.launch.py")} >= {"brain.launch.py", "sim.launch.py",
                                                                         "gazebo.launch.py"}
    assert (share / "package.xml").read_text(encoding="utf-8") == (REPO / "package.xml").read_text(encoding="utf-8")
    for name in NODE_EXECUTABLES:  # launch_ros: <get_package_prefix>/lib/<package>/<executable>
        executable = found_prefix / "lib" / "robot_brain" / name
        assert os.access(executable, os.X_OK), executable
        assert f"from robot_brain.nodes.{name} import main" in executable.read_text(encoding="utf-8")


def test_the_venv_is_an_ament_prefix_that_knows_robot_brain() -> None:
    """What ``make install`` left in the venv this suite runs in."""
    _check_prefix(Path(sys.prefix))


def test_ament_package_tool_registers_a_fresh_prefix_and_is_idempotent(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    tool = [sys.executable, str(REPO / "tools" / "ament_package.py"), "--prefix", str(prefix)]
    # Without the tool, the lookup fails: this is what an editable pip install alone leaves.
    result = subprocess.run([sys.executable, "-c", LOOKUP], env={**os.environ, "AMENT_PREFIX_PATH": str(prefix)},
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0 and "PackageNotFoundError" in result.stderr
    subprocess.run(tool, check=True, capture_output=True, timeout=60)
    stale = prefix / "lib" / "robot_brain" / "removed_node"
    stale.symlink_to(prefix / "nowhere")
    subprocess.run(tool, check=True, capture_output=True, timeout=60)
    assert not stale.is_symlink()
    _check_prefix(prefix)


# -- requirements/base.txt against the runtime's imports ----------------------------------

#: Modules whose distribution Python's metadata cannot name: cmeel wheels (Pinocchio and the
#: libraries it ships with) install their modules under ``cmeel.prefix``.
CMEEL_MODULES = {"pinocchio": "pin", "eigenpy": "eigenpy", "coal": "coal"}
#: Imported but not from PyPI, each with the reason.
NOT_FROM_PYPI = {
    "robot_brain": "this package",
    "robot_brain_msgs": "built from msg/ by tools/build_interfaces.py (or colcon)",
    "launch": "full ROS install only: imported by robot_brain/launch_actions.py, which only launch files import",
    "launch_ros": "full ROS install only, as launch",
}


#: Imported only by the training modules, which only ``robot-brain train`` and ``factory`` load
#: (after ``robot_brain.learning.requirements.require_torch``): listed in this requirements file instead.
EXTRAS = {"torch": "train.txt"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _base_requirements(file: str = "base.txt") -> set[str]:
    names = set()
    for line in (REPO / "requirements" / file).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(_normalise(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0]))
    return names


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(getattr(t, "id", "") in ("ImportError", "ModuleNotFoundError") for t in types)


def _guarded(tree: ast.Module) -> set[int]:
    """Line numbers of imports inside ``try`` bodies that catch ImportError (optional imports)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(handler) for handler in node.handlers):
            lines |= {inner.lineno for statement in node.body for inner in ast.walk(statement)
                      if isinstance(inner, (ast.Import, ast.ImportFrom))}
    return lines


def _runtime_imports() -> dict[str, dict[str, bool]]:
    """Top-level module → {file: optional} for every absolute import in robot_brain/."""
    found: dict[str, dict[str, bool]] = {}
    for path in sorted((REPO / "robot_brain").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        optional = _guarded(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                file = str(path.relative_to(REPO))
                found.setdefault(top, {})[file] = found.get(top, {}).get(file, True) and node.lineno in optional
    return found


def _distributions(module: str) -> set[str]:
    """Every installed distribution that provides ``module`` (normalised names).

    ROS wheels also write egg-info records named like the ROS package (``rclpy`` beside
    ``ros-rclpy``), and a meta package can provide a module through another (``mujoco`` and
    ``mujoco-core``): a requirement naming any of them covers the module.
    """
    if module in CMEEL_MODULES:
        return {CMEEL_MODULES[module]}
    return {_normalise(name) for name in _packages_distributions().get(module, [])}


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


@pytest.fixture(scope="module")
def imports() -> dict[str, dict[str, bool]]:
    return _runtime_imports()


def test_every_package_the_runtime_imports_is_in_base_txt(imports: dict[str, dict[str, bool]]) -> None:
    required = _base_requirements()
    missing = []
    for module, files in sorted(imports.items()):
        if module in NOT_FROM_PYPI or all(files.values()):  # ours, or only imported as optional
            continue
        distributions = _distributions(module)
        if module in EXTRAS:
            assert distributions & _base_requirements(EXTRAS[module]), f"requirements/{EXTRAS[module]} lacks {module}"
            continue
        if not distributions & required:
            missing.append(f"{module} ({' or '.join(sorted(distributions)) or 'not installed'}; {', '.join(files)})")
    assert not missing, "requirements/base.txt lacks: " + "; ".join(missing)


def test_base_txt_lists_nothing_the_runtime_does_not_import(imports: dict[str, dict[str, bool]]) -> None:
    provided = set().union(*(_distributions(module) for module in imports))
    unused = sorted(_base_requirements() - provided)
    assert not unused, f"requirements/base.txt lists packages nothing in robot_brain/ imports: {', '.join(unused)}"


def test_the_only_imports_left_out_of_base_txt_are_known_optional_ones(imports: dict[str, dict[str, bool]]) -> None:
    """Imports guarded by ``except ImportError`` may stay out of base.txt: these, and no others, do."""
    required = _base_requirements()
    left_out = {module for module, files in imports.items()
                if all(files.values()) and not _distributions(module) & required}
    # pybullet_data: the bundled-arm catalog says "pip install pybullet" without it (robots.txt has it);
    # compression: the stdlib's zstd from Python 3.14 (backports.zstd before, in base.txt).
    assert left_out == {"pybullet_data", "compression"}


def test_only_training_modules_import_torch_and_nothing_else_imports_them_at_module_level(
        imports: dict[str, dict[str, bool]]) -> None:
    """torch stays out of every command but train and factory: no module outside training imports it eagerly."""
    torch_users = {Path(file).stem for file, optional in imports["torch"].items() if not optional}
    assert torch_users <= {"training", "training_loop", "training_config", "policies", "onnx_export"}, torch_users
    eager = []
    for path in sorted((REPO / "robot_brain").rglob("*.py")):
        if path.stem in torch_users:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only: imports inside functions run on demand
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[-1] in torch_users:
                eager.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not eager, f"module-level imports of the training modules: {eager}"


@pytest.mark.parametrize("command", [["train", "some_dataset", "--out", "model.onnx"],
                                     ["factory", "--out", "factory_out"]])
def test_train_and_factory_without_torch_say_how_to_install_it(command: list[str], tmp_path: Path) -> None:
    """Without torch (as after the colcon path's base.txt), one line names requirements/train.txt."""
    script = ("import sys; sys.modules['torch'] = None\n"  # 'import torch' now fails as it would uninstalled
              "from robot_brain.cli.main import main\nsys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "pip install -r requirements/train.txt" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "factory_out").exists()  # refused before collecting anything
