"""One URDF load, one layout and one warning per default limit, per process (the README's promise)."""

from __future__ import annotations

import ast
import logging
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import robot_brain.bringup.robots as launch_plan
from robot_brain.cli.main import build_parser
from robot_brain.cli.up import plan_from_arguments
from robot_brain.embodiment import load_arm
from robot_brain.embodiment.catalog import bundled_arm_path

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def urdf_without_velocity_limits(tmp_path: Path) -> Path:
    """The real KUKA iiwa (pybullet_data) with its velocity limits removed, under a name no other test uses."""
    source = bundled_arm_path("iiwa")
    text = source.read_text(encoding="utf-8")
    text = re.sub(r'\svelocity="[^"]*"', "", text)
    text = text.replace('"meshes/', f'"{source.parent}/meshes/')
    text = re.sub(r'<robot name="[^"]*"', f'<robot name="iiwa_{uuid.uuid4().hex[:8]}"', text, count=1)
    path = tmp_path / "iiwa_no_velocity.urdf"
    path.write_text(text, encoding="utf-8")
    return path


def _limit_warnings(text: str) -> list[str]:
    return re.findall(r"joint '[^']+' has no velocity limit[^\n]*", text)


def test_each_default_limit_warning_is_logged_once_per_process(urdf_without_velocity_limits: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="robot_brain.embodiment")
    arms = [load_arm(urdf_without_velocity_limits) for _ in range(3)]
    assert len(arms[0].spec.warnings) == 7  # every load still reports them in ArmSpec.warnings
    assert all(arm.spec.warnings == arms[0].spec.warnings for arm in arms)
    logged = _limit_warnings(caplog.text)
    assert len(logged) == 7 and len(set(logged)) == 7


def test_the_demo_loads_the_arm_and_computes_the_layout_once(urdf_without_velocity_limits: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from robot_brain import sim

    loads, layouts = [], []
    real_load, real_layout = launch_plan.load_arm, sim.compute_layout
    monkeypatch.setattr(launch_plan, "load_arm", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    monkeypatch.setattr(sim, "compute_layout", lambda *a, **k: layouts.append(a) or real_layout(*a, **k))
    args = build_parser().parse_args(["demo", "--urdf", str(urdf_without_velocity_limits)])
    plan = plan_from_arguments(args, sim=True)
    assert len(loads) == 1 and len(layouts) == 1
    assert layouts[0][0] is plan.arm
    assert plan.node("sim").parameters["camera_pose"] == plan.layout.camera_pose_list()
    assert plan.node("perception").parameters["target_frame"] == plan.arm.spec.base_link


def test_the_demo_command_reuses_the_plans_arm_and_layout() -> None:
    """After the plan, ``robot-brain demo`` neither loads a description nor computes a layout again."""
    called = set()
    for source in (REPO / "robot_brain" / "cli" / "demo.py", REPO / "robot_brain" / "demo" / "session.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        called |= {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                   for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert not called & {"load", "load_arm", "load_description", "compute_layout"}


def test_robot_brain_up_prints_each_warning_once(urdf_without_velocity_limits: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "robot_brain.cli.main", "up", "--sim", "--urdf", str(urdf_without_velocity_limits),
         "--dry-run", "--params-dir", str(tmp_path / "params")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    logged = _limit_warnings(result.stderr)
    assert len(logged) == 7 and len(set(logged)) == 7
