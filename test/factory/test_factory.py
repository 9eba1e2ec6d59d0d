"""The data factory end to end, small: scripted demonstrations through the teleop path, recorded, exported,
trained, the model checked and evaluated on a training arm and an arm it never saw. Success thresholds
belong to the benchmark (docs/benchmarks.md); this proves the loop is wired."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robot_brain.embodiment.catalog import bundled_arm_path
from robot_brain.episodes.store import EpisodeStore

pytestmark = [pytest.mark.dds, pytest.mark.slow, pytest.mark.timeout(600)]


def _cli(*args: str, timeout: float = 540) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "robot_brain.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_the_factory_loop_collects_exports_trains_and_evaluates(tmp_path: Path) -> None:
    # Four short demonstrations: one validation episode, and enough training frames (16 for batch 64)
    # when a busy machine's recorder stalls and the export drops a few frames.
    out = tmp_path / "factory"
    result = _cli("factory", "--train-robots", "ur5", "--eval-robots", "xarm6", "--demos", "4", "--steps", "150",
                  "--eval-episodes", "1", "--out", str(out), "--json",
                  "--param", "sim.camera_rate_hz=10.0", "--param", "arm_controller.realtime_priority=0")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report["train_success"]) == {"ur5"} and set(report["eval_success"]) == {"xarm6"}
    assert 0.0 <= report["train_success"]["ur5"] <= 1.0
    assert report["episodes"] == 4 and report["frames"] > 20 and report["train_seconds"] > 0
    assert report["provenance_ok"] is True
    # The demonstrations went through the teleop path and were recorded as machine-made episodes.
    episodes = EpisodeStore(out / "data").list_episodes()
    assert len(episodes) == 4
    for entry in episodes:
        manifest = entry.manifest
        assert manifest is not None and manifest.state == "complete" and manifest.operator == "scripted"
        assert manifest.label in ("success", "failure")
        assert manifest.topics["/teleop/twist"].count > 10 and manifest.topics["/camera/image_raw"].count > 5
    # The learned model drives any arm: it validates against a training arm and an unseen one.
    model = report["model"]
    for arm in ("ur5", "iiwa"):
        checked = _cli("model", "validate", model, "--urdf", str(bundled_arm_path(arm)), timeout=120)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    provenance = _cli("provenance", model, "--data-root", str(out / "data"), "--json", timeout=120)
    assert provenance.returncode == 0, provenance.stdout
    for name in ("report.json", "report.md", "success.png"):
        assert (out / name).stat().st_size > 0


def test_collect_refuses_an_operator_without_record_consent(tmp_path: Path) -> None:
    result = _cli("collect", "--robot", "ur5", "--episodes", "1", "--out", str(tmp_path), "--operator", "Ada Lovelace",
                  timeout=120)
    assert result.returncode == 2
    assert "recording refused" in result.stderr and "Ada" not in result.stderr
    assert not (tmp_path / "episodes").exists()
