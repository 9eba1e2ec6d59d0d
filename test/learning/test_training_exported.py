"""Training on what ``robot-brain data export`` writes: recorded bags → LeRobot dataset → ONNX policy.

The episodes are recorded through the episode store's own writer by the export tests' helpers
(real CDR, a Panda's minimum-jerk motions, a camera, a perceived target); one of Bob's has a
camera dropout, so the exporter splits it into two dataset episodes with the same
``episode_id``: both segments must be trained on, not mistaken for duplicates.
"""

from __future__ import annotations

import pytest
from helpers.export_support import make_site, record_episode
from helpers.training_support import cli
from robots import ARMS

from robot_brain.episodes.store import EpisodeStore
from robot_brain.learning.training import TrainConfig, train


@pytest.mark.parametrize("policy", ["state", "visuomotor"])
def test_train_on_an_exported_dataset(tmp_path, policy: str) -> None:
    root = tmp_path / "site"
    site = make_site(root)
    store = EpisodeStore(root)
    recordings = [
        record_episode(store, "panda", site.ada, site.ada_consent, seed=1),
        record_episode(store, "panda", site.bob, site.bob_consent, seed=2, offset_s=10, camera_gap=(1.0, 1.3)),
        record_episode(store, "panda", "scripted", None, (), seed=3, offset_s=20),
    ]
    dataset = root / "datasets" / "demo"
    status, _, err = cli(
        "data", "export", *[r.episode_id for r in recordings], "--out", str(dataset), "--data-root", str(root)
    )
    assert status == 0, err
    config = TrainConfig(policy=policy, steps=6, batch_size=16, image_size=16)
    result = train([dataset], tmp_path / "model.onnx", config, data_root=root, log=lambda _line: None)
    assert result is not None and not result.selection.excluded
    segments = [(e.episode_id, e.segment) for e in result.selection.included]
    bob = [s for s in segments if s[0] == recordings[1].episode_id]
    assert len(bob) == 2 and len(set(segments)) == len(segments) == result.provenance["datasets"][0]["total_episodes"]
    assert {e["operator"] for e in result.provenance["episodes"]} == {site.ada, site.bob, "scripted"}
    assert result.export.max_abs_diff <= 1e-4
    for arm in ("panda", "ur5"):
        status, out, _ = cli("model", "validate", str(result.model), "--urdf", str(ARMS[arm]))
        assert status == 0, out
