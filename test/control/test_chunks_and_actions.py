"""Chunks: validation, time alignment, interpolation, seams; action spaces through real IK; the core loop."""

from __future__ import annotations

import math

import numpy as np
import pinocchio as pin
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_safety import assert_within_limits

from robot_brain.control.actions import ActionMapper
from robot_brain.control.chunks import Blender, ChunkError, JointChunk, RawChunk, first_kept_waypoint, validate
from robot_brain.control.controller import ArmController, ControllerConfig
from robot_brain.control.safety import SafetyLimits
from robot_brain.embodiment import load_arm
from robot_brain.embodiment.catalog import bundled_arm_path

PANDA = load_arm(str(bundled_arm_path("panda")))
Q0 = PANDA.spec.middle_configuration()


def raw(space: str, actions: np.ndarray, stamp: float = 10.0, dt: float = 0.05, gripper: bool = False,
        names: tuple[str, ...] = ()) -> RawChunk:
    actions = np.atleast_2d(actions)
    return RawChunk(stamp=stamp, action_space=space, horizon=actions.shape[0], dt=dt, dim=actions.shape[1],
                    joint_names=names, has_gripper=gripper, actions=actions.ravel())


def quaternion(rotation: np.ndarray) -> np.ndarray:
    q = pin.Quaternion(rotation)
    return np.array([q.x, q.y, q.z, q.w])


@pytest.mark.parametrize(
    ("chunk", "reason"),
    [
        (raw("joint_position", np.full((3, 6), 0.1)), "size"),
        (raw("joint_position", np.r_[Q0[:6], math.nan]), "nan"),
        (raw("joint_position", np.r_[Q0[:6], math.inf]), "nan"),
        (raw("joint_position", Q0, dt=0.0), "dt"),
        (raw("ee_pose", np.array([0.3, 0, 0.5, 0, 0, 0, 2.0])), "quaternion"),
        (raw("ee_velocity", np.zeros(6)), "action_space"),
        (RawChunk(10.0, "joint_position", 2, 0.05, 7, (), False, np.zeros(13)), "size"),
    ],
)
def test_invalid_chunks_are_rejected_with_a_reason(chunk: RawChunk, reason: str) -> None:
    with pytest.raises(ChunkError) as error:
        validate(chunk, 7)
    assert error.value.reason == reason


def test_time_alignment_keeps_the_waypoint_just_before_now() -> None:
    assert first_kept_waypoint(10.0, 0.05, 10, 10.0) == 0
    assert first_kept_waypoint(10.0, 0.05, 10, 10.12) == 2
    assert first_kept_waypoint(10.0, 0.05, 10, 99.0) == 9  # all past: hold the last one
    assert first_kept_waypoint(10.0, 0.05, 10, 9.0) == 0  # future stamp


def test_interpolation_passes_through_waypoints_and_holds_the_end() -> None:
    times = 10.0 + 0.05 * np.arange(5)
    values = np.column_stack((np.sin(times), np.cos(times)))
    for mode in ("linear", "cubic"):
        chunk = JointChunk(times, values, False, 10.0, 10.0, interpolation=mode)
        for t, v in zip(times, values, strict=True):
            assert np.allclose(chunk.sample(float(t)), v)
        assert np.allclose(chunk.sample(20.0), values[-1])
        middle = chunk.sample(10.075)
        assert np.all(np.minimum(values[1], values[2]) - 1e-3 <= middle)


@pytest.mark.parametrize("mode", ["rtc", "ensemble"])
def test_seam_between_chunks_is_continuous(mode: str) -> None:
    """A new chunk that disagrees with the running one by 0.2 rad never makes the target jump."""
    blender = Blender(mode, blend_time=0.1)
    times = 10.0 + 0.05 * np.arange(10)
    first = JointChunk(times, np.column_stack((np.linspace(0, 0.5, 10), np.zeros(10))), False, 10.0, 10.0)
    second = JointChunk(times + 0.1, np.column_stack((np.linspace(0.3, 0.8, 10), np.zeros(10))), False, 10.1, 10.2)
    blender.add(first)
    samples = []
    for t in np.arange(10.0, 10.6, 0.001):
        if abs(t - 10.2) < 5e-4:
            blender.add(second)
        samples.append(blender.sample(float(t))[0])
    steps = np.abs(np.diff(samples))
    # Chunk slope is 1.1 rad/s (1.1 mrad per ms); the 0.2 rad disagreement fades in over 0.1 s.
    assert steps.max() < 0.001 * 1.1 + 0.2 * 0.001 / 0.1 + 1e-6, f"jump of {steps.max()} rad at the seam"
    assert samples[-1] == pytest.approx(0.8, abs=1e-6) if mode == "rtc" else samples[-1] > 0.6


def test_rtc_keeps_the_committed_prefix() -> None:
    blender = Blender("rtc", blend_time=0.05, rtc_commit_time=0.1)
    times = 10.0 + 0.05 * np.arange(10)
    blender.add(JointChunk(times, np.zeros((10, 2)), False, 10.0, 10.0))
    blender.add(JointChunk(times, np.ones((10, 2)), False, 10.01, 10.0))
    assert blender.sample(10.09)[0] == 0.0  # still the old chunk's prefix
    assert blender.sample(10.2)[0] == 1.0


@pytest.fixture(scope="module")
def mapper() -> ActionMapper:
    return ActionMapper(PANDA.spec, PANDA.kinematics, lambda t: Q0)


def test_joint_position_reorders_by_name(mapper: ActionMapper) -> None:
    names = tuple(reversed(PANDA.spec.joint_names))
    chunk, _ = mapper.convert(raw("joint_position", Q0[::-1] + 0.1, names=names), 10.0)
    assert np.allclose(chunk.values[0, :7], Q0 + 0.1)
    with pytest.raises(ChunkError, match="unknown: \\['elbow'\\]"):
        mapper.convert(raw("joint_position", Q0, names=(*names[:6], "elbow")), 10.0)


def test_end_effector_spaces_reach_their_poses(mapper: ActionMapper) -> None:
    kin = PANDA.kinematics
    start = kin.fk(Q0)
    rng = np.random.default_rng(0)
    goal_q = Q0 + rng.uniform(-0.2, 0.2, 7)
    goal = kin.fk(goal_q)
    pose = np.r_[goal[:3, 3], quaternion(goal[:3, :3])]
    chunk, dropped = mapper.convert(raw("ee_pose", np.tile(pose, (3, 1)), gripper=False), 10.0)
    assert dropped == 0
    assert np.allclose(kin.fk(chunk.values[-1, :7]), goal, atol=1e-3)
    delta = np.r_[0.05, -0.02, 0.03, quaternion(pin.exp3(np.array([0.0, 0.0, 0.2])))]
    chunk, _ = mapper.convert(raw("ee_pose_delta", delta), 10.0)
    reached = kin.fk(chunk.values[0, :7])
    assert np.allclose(reached[:3, 3], start[:3, 3] + delta[:3], atol=1e-3)
    assert np.allclose(reached[:3, :3], pin.exp3(np.array([0.0, 0.0, 0.2])) @ start[:3, :3], atol=1e-3)
    chunk, _ = mapper.convert(raw("ee_twist", np.tile([0.1, 0, 0, 0, 0, 0], (4, 1)), dt=0.05), 10.0)
    assert len(chunk.times) == 5
    assert kin.fk(chunk.values[-1, :7])[:3, 3] - start[:3, 3] == pytest.approx([0.02, 0, 0], abs=1e-3)
    chunk, _ = mapper.convert(raw("joint_delta", np.full(7, 0.05)), 10.0)
    assert np.allclose(chunk.values[0, :7], Q0 + 0.05)


def test_unreachable_pose_ends_the_chunk(mapper: ActionMapper) -> None:
    far = np.array([5.0, 0.0, 0.5, 0, 0, 0, 1.0])
    with pytest.raises(ChunkError, match="IK"):
        mapper.convert(raw("ee_pose", far), 10.0)


def core(rate: float = 500.0, **config: object) -> ArmController:
    spec = PANDA.spec
    return ArmController(PANDA, SafetyLimits.from_spec(spec.lower, spec.upper, spec.velocity),
                         ControllerConfig(rate_hz=rate, **config))


chunk_case = st.tuples(
    st.sampled_from(["joint_position", "joint_delta", "ee_pose_delta", "ee_twist"]),
    st.floats(-0.5, 0.2),  # stamp offset (negative: old, may be out of order)
    st.sampled_from(["normal", "huge", "nan", "wrong_dim", "oscillating"]),
    st.integers(1, 12),
)


@settings(max_examples=6, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow])
@given(cases=st.lists(chunk_case, min_size=5, max_size=40), seed=st.integers(0, 2**31))
def test_core_loop_under_adversarial_chunks_stays_within_limits(cases: list[tuple[str, float, str, int]],
                                                                seed: int) -> None:
    """The whole cycle (alignment, IK, blending, watchdogs, filter) under hostile chunk streams."""
    controller = core()
    rng = np.random.default_rng(seed)
    period = controller.config.period
    t = 100.0
    controller.on_joint_state(Q0, t, t)
    commands = []
    for index in range(4000):
        t += period
        if index % 100 == 0:
            space, offset, kind, horizon = cases[(index // 100) % len(cases)]
            dim = {"ee_pose_delta": 7, "ee_twist": 6}.get(space, 7)
            values = rng.normal(0.0, 0.05, (horizon, dim))
            if space == "ee_pose_delta":
                values[:, 3:] = [0, 0, 0, 1]
            if kind == "huge":
                values *= 1e12
            elif kind == "nan":
                values[rng.integers(horizon), rng.integers(dim)] = math.nan
            elif kind == "wrong_dim":
                values = values[:, :-1]
            elif kind == "oscillating":
                values[::2] = -values[::2] * 20
            if space == "joint_position":
                values = values + Q0[: values.shape[1]]
            controller.on_chunk(raw(space, values, stamp=t + offset), t)
        controller.cycle(t)
        commands.append(controller.filter.position.copy())
        controller.on_joint_state(controller.filter.position, t, t)
    assert_within_limits(np.array(commands), controller.filter.limits, period)
    assert controller.counters.chunks_accepted > 0
