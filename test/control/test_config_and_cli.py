"""The bench CLI runs the real controller node (config files are checked in test/test_node_configs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.dds
@pytest.mark.timeout(120)
def test_bench_control_prints_the_json_keys() -> None:
    """A short real run: the node, a peer process over DDS and both timer baselines."""
    result = subprocess.run(
        [sys.executable, "-m", "robot_brain.cli.main", "bench", "control", "--rate", "500", "--seconds", "1",
         "--realtime-priority", "0", "--json"],
        capture_output=True, text=True, timeout=110, cwd=REPO, env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("rate_hz", "cycles", "missed", "p50_us", "p99_us", "max_us", "compute_p50_us", "cpu_percent"):
        assert key in report, key
    assert report["rate_hz"] == 500.0 and report["cycles"] > 250 and report["source"] == "policy"
    assert report["chunks_per_s"] > 10
    assert set(report["baselines"]) == {"arm_controller_threaded", "timer_single_threaded", "timer_events"}
    assert report["loop_mode"] == "cooperative" and report["baselines"]["arm_controller_threaded"]["cycles"] > 250
