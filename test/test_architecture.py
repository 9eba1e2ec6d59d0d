"""The package layout holds: imports run one way, no import cycles, torch and rclpy only where they belong.

Imports are read from the source with ``ast`` (every ``import`` anywhere in a file, also inside
functions and ``TYPE_CHECKING`` blocks: a cycle hidden in a function is still a cycle), so the
test needs nothing installed. The table below is the architecture: a top-level package may
import only the packages it lists. The README's layout section says the same in words.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "robot_brain"

_BASE = {"errors"}
_CORE = {"embodiment", "control", "inference", "perception", "sim", "teleop", "scheduling"}
_DATA = {"storage", "consent", "episodes", "datasets", "learning", "erasure"}

#: What each top-level package (or module) of robot_brain may import from robot_brain, besides itself.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "scheduling": set(),
    "storage": _BASE,
    "embodiment": _BASE,
    "inference": _BASE,
    "teleop": _BASE,
    "control": _BASE | {"embodiment", "scheduling"},
    "perception": _BASE | {"embodiment", "inference"},
    "sim": _BASE | {"embodiment", "perception"},
    "consent": _BASE | {"storage"},
    "episodes": _BASE | {"storage", "consent"},
    "datasets": _BASE | {"storage", "consent", "episodes", "embodiment", "perception", "scheduling"},
    "learning": _BASE | {"storage", "consent", "episodes", "datasets", "inference", "perception"},
    "erasure": _BASE | {"storage", "consent", "episodes", "datasets"},
    "ros": _BASE | _CORE | {"storage", "consent", "episodes"},
    "benchmarks": _BASE | _CORE | {"ros", "nodes"},
    "nodes": _BASE | _CORE | _DATA | {"ros"},
    "bringup": _BASE | {"embodiment", "sim", "storage", "consent"},
    "demo": _BASE | {"embodiment", "ros", "bringup"},
    "factory": _BASE | _CORE | _DATA | {"ros", "bringup", "demo"},
    "cli": _BASE | _CORE | _DATA | {"ros", "benchmarks", "bringup", "demo", "factory"},
}
#: The only packages that may import rclpy (ROS client code: message conversions, the node
#: skeleton, the nodes, the node benchmarks, and the orchestration that drives a running cell).
RCLPY_ALLOWED = {"ros", "nodes", "benchmarks", "demo", "factory"}
#: The only package that may import torch.
TORCH_ALLOWED = {"learning"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, name: str) -> Iterator[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)  # `from pkg import module`


def top_level(module: str) -> str | None:
    """``robot_brain.datasets.export`` → ``datasets``; ``None`` outside robot_brain or for the root package."""
    parts = module.split(".")
    return parts[1] if parts[0] == "robot_brain" and len(parts) > 1 else None


def import_graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the robot_brain modules it imports (names that are not modules, e.g. classes, dropped)."""
    return {name: {target for target in imports_of(path, name) if target in known and target != name}
            for name, path in known.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for source, targets in sorted(graph.items()):
        package = top_level(source)
        if package is None:
            continue
        if package not in ALLOWED:
            problems.append(f"{source}: package '{package}' is not in the table of allowed imports")
            continue
        for target in sorted(targets):
            other = top_level(target)
            if other is not None and other != package and other not in ALLOWED[package]:
                problems.append(f"{source} imports {target}: '{package}' may not import '{other}'")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package_graph_importing(third_party: str, known: dict[str, Path]) -> set[str]:
    users = set()
    for name, path in known.items():
        if any(target == third_party or target.startswith(third_party + ".") for target in imports_of(path, name)):
            users.add(top_level(name) or name)
    return users


def test_every_top_level_package_is_in_the_table() -> None:
    tops = {top_level(name) for name in modules()} - {None}
    assert tops == set(ALLOWED), f"packages missing from ALLOWED: {tops - set(ALLOWED)}; stale: {set(ALLOWED) - tops}"


def test_every_folder_is_a_package_that_says_what_it_owns() -> None:
    """A folder without ``__init__.py`` imports from the source tree but is left out of a wheel or colcon install."""
    from setuptools import find_packages

    folders = sorted({path.parent for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts})
    found = set(find_packages(str(REPO), include=["robot_brain", "robot_brain.*"]))
    for folder in folders:
        name = ".".join(folder.relative_to(REPO).parts)
        init = folder / "__init__.py"
        assert init.is_file() and name in found, f"{folder.relative_to(REPO)}: expected an __init__.py"
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), f"{init.relative_to(REPO)}: no docstring"


def test_imports_run_one_way() -> None:
    problems = upward_imports(import_graph(modules()))
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_no_import_cycles() -> None:
    found = cycles(import_graph(modules()))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(component) for component in found)


def test_the_allowed_table_itself_has_no_cycle() -> None:
    graph = {package: set(targets) for package, targets in ALLOWED.items()}
    assert not cycles(graph), f"ALLOWED lets packages import each other: {cycles(graph)}"


def test_only_learning_imports_torch() -> None:
    users = _package_graph_importing("torch", modules())
    assert users and users <= TORCH_ALLOWED, f"torch imported by {sorted(users - TORCH_ALLOWED)}"


def test_only_the_ros_client_packages_import_rclpy() -> None:
    users = _package_graph_importing("rclpy", modules())
    assert users and users <= RCLPY_ALLOWED, f"rclpy imported by {sorted(users - RCLPY_ALLOWED)}"


@pytest.mark.parametrize("source, target", [
    ("robot_brain.consent.registry", "robot_brain.datasets.export"),
    ("robot_brain.embodiment.arm", "robot_brain.cli.main"),
    ("robot_brain.datasets.lerobot", "robot_brain.learning.training"),
])
def test_an_upward_import_is_caught(source: str, target: str) -> None:
    """The checks themselves fail on a violation (an import added to the real graph)."""
    graph = import_graph(modules())
    graph[source] = {*graph[source], target}
    assert any(f"{source} imports {target}" in problem for problem in upward_imports(graph))


def test_an_import_cycle_is_caught() -> None:
    graph = import_graph(modules())
    graph["robot_brain.consent.audit"] = {*graph["robot_brain.consent.audit"], "robot_brain.consent.registry"}
    assert any("robot_brain.consent.audit" in component and "robot_brain.consent.registry" in component
               for component in cycles(graph))


def test_a_relative_import_is_resolved(tmp_path: Path) -> None:
    path = tmp_path / "robot_brain" / "consent" / "audit.py"
    path.parent.mkdir(parents=True)
    path.write_text("from .registry import ConsentRegistry\nfrom ..datasets import export\n", encoding="utf-8")
    found = set(imports_of(path, "robot_brain.consent.audit"))
    assert {"robot_brain.consent.registry", "robot_brain.datasets", "robot_brain.datasets.export"} <= found


def test_the_core_and_nodes_without_a_model_import_neither_rclpy_onnxruntime_nor_torch_needlessly() -> None:
    """Importing the core loads no rclpy and no torch; a node that runs no model loads no ONNX Runtime."""
    script = textwrap.dedent("""
        import importlib, json, sys
        core = ["embodiment", "control", "inference", "perception", "sim", "teleop", "storage", "consent",
                "episodes", "datasets", "erasure", "learning.model_provenance", "learning.training_data"]
        for name in core:
            importlib.import_module("robot_brain." + name)
        core_loaded = sorted(m for m in ("rclpy", "torch") if m in sys.modules)
        for node in ("arm_controller", "recorder", "sim", "teleop"):
            importlib.import_module("robot_brain.nodes." + node)
        print(json.dumps({"core": core_loaded, "onnxruntime": "onnxruntime" in sys.modules,
                          "torch": "torch" in sys.modules}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    import json

    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {"core": [], "onnxruntime": False, "torch": False}, loaded
