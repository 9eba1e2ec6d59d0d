"""The scripted operator plays a person on a pad: through the operator's own rules it reaches the target,
late, wobbling and hesitating like one, and lets go of the dead-man when it is there."""

from __future__ import annotations

import numpy as np
import pytest

from robot_brain.errors import ConfigurationError
from robot_brain.teleop.expert import ExpertStyle, ScriptedOperator
from robot_brain.teleop.mapping import TeleopMapping
from robot_brain.teleop.operator import Operator
from robot_brain.teleop.reading import PadReading


def _run(seed: int, target: np.ndarray, style: ExpertStyle | None = None, seconds: float = 8.0,
         rate: float = 100.0) -> tuple[np.ndarray, list[tuple[float, ...]], bool]:
    """The expert's pad through the teleop rules into a tool that moves at the commanded twist."""
    mapping = TeleopMapping.default()
    expert = ScriptedOperator(mapping, style, seed=seed)
    operator = Operator(mapping)
    tool = np.zeros(3)
    twists: list[tuple[float, ...]] = []
    # A person picks up the pad first: the dead-man is seen released before it is pressed (arming).
    operator.step(PadReading((0.0,) * 6, (False,) * 15, True, "expert", 0.0), 0.0)
    now = 0.0
    for _ in range(int(seconds * rate)):
        now += 1.0 / rate
        pad = expert.step(now, tool, target)
        intent = operator.step(PadReading(pad.axes, tuple(bool(b) for b in pad.buttons), True, "expert", now), now)
        if intent.twist is not None:
            twists.append(intent.twist)
            tool = tool + np.asarray(intent.twist[:3]) / rate
        if pad.done:
            break
    return tool, twists, expert.done


@pytest.mark.parametrize("seed", range(5))
def test_the_expert_reaches_the_target_through_the_operators_rules_and_lets_go(seed: int) -> None:
    rng = np.random.default_rng(seed)
    target = rng.uniform([-0.3, -0.3, -0.15], [0.3, 0.3, 0.05])
    tool, twists, done = _run(seed, target)
    assert done, f"did not settle; {np.linalg.norm(tool - target):.3f} m away"
    assert np.linalg.norm(tool - target) <= ExpertStyle().settle_radius_m + 0.005
    assert twists[-1] == (0.0,) * 6, "releasing the dead-man ends in one zero twist"
    speeds = np.linalg.norm(np.array(twists)[:, :3], axis=1)
    assert speeds.max() <= np.linalg.norm([0.25, 0.25, 0.25]) + 1e-9  # the pad's turbo scales bound it


def test_the_expert_is_human_like_late_wobbly_and_hesitant() -> None:
    target = np.array([0.3, 0.0, 0.0])
    _, twists, _ = _run(1, target, ExpertStyle(hesitation_rate_hz=2.0))
    moves = np.array(twists)[:, :3]
    assert np.all(moves[:15] == 0.0), "the first 0.15 s go by before the hands react (reaction_s 0.2)"
    sideways = moves[20:, 1]
    assert np.std(sideways) > 0.002, "a straight-line target still gets a wobbling stick"
    moving = np.linalg.norm(moves, axis=1) > 0
    stops = np.sum(moving[1:-5] & ~moving[2:-4])
    assert stops >= 1, "hesitations centre the sticks for a moment"
    fast, _, _ = _run(1, target, ExpertStyle(noise=0.0, hesitation_rate_hz=0.0, reaction_s=0.0))
    assert np.linalg.norm(fast - target) < 0.02


def test_style_and_mapping_errors_are_clear() -> None:
    with pytest.raises(ConfigurationError, match="gain must be > 0"):
        ExpertStyle(gain=0.0)
    mapping = TeleopMapping.from_parameters({"axis_linear.z": -1})
    with pytest.raises(ConfigurationError, match="axis_linear"):
        ScriptedOperator(mapping)
