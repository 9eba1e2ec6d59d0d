"""The fit check's own pieces, fast: its label definition is training's, its verdict is the ratio's."""

from __future__ import annotations

import numpy as np

from robot_brain.learning.fit_check import FitReport, SplitFit, demonstrated_offsets
from robot_brain.learning.training_data import chunk_labels


def test_the_check_rebuilds_the_positions_training_labels_with() -> None:
    rng = np.random.default_rng(3)
    observed = np.concatenate([rng.normal(size=(23, 3)), np.tile([0.0, 0.0, 0.0, 1.0], (23, 1))], axis=1)
    commanded = observed + np.concatenate([rng.normal(scale=0.1, size=(23, 3)), np.zeros((23, 4))], axis=1)
    for horizon, stride in ((1, 1), (10, 1), (6, 3)):
        expected = chunk_labels(observed, commanded, horizon, stride)[..., :3]
        np.testing.assert_allclose(demonstrated_offsets(observed, commanded, horizon, stride), expected, atol=1e-12)


def test_the_verdict_is_the_training_frames_ratio() -> None:
    good, poor = SplitFit(100, 8.0, 40.0, 31.0), SplitFit(20, 30.0, 35.0, 28.0)
    assert good.baseline == "mean" and good.baseline_mm == 31.0 and abs(good.ratio - 8 / 31) < 1e-12
    assert FitReport({"train": good}, 0.5, 10, 1).ok
    assert FitReport({"train": good, "validation": poor}, 0.5, 10, 1).ok  # held out: reported, not gated
    assert not FitReport({"train": poor, "validation": good}, 0.5, 10, 1).ok
    assert not FitReport({"all": poor}, 0.5, 10, 1).ok and FitReport({"all": good}, 0.5, 10, 1).ok
    assert not FitReport({"validation": good}, 0.5, 10, 1).ok  # nothing gated: no verdict to give
    document = FitReport({"train": good, "validation": poor}, 0.5, 10, 1).to_dict()
    assert document["gated"] == ["train"] and document["splits"]["train"]["baseline_mm"] == 31.0
