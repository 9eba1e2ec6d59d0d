"""No allocation per control cycle in the steady state: tracemalloc around every cycle, on real arms.

Each measured cycle (and its publish step: the reusable messages filled in place, as the node
does) runs between ``tracemalloc.reset_peak()`` and ``get_traced_memory()``. A cycle
*allocates* when the traced peak rose above what an empty window shows (the probe's own
result objects: calibrated first, the most common rise over 100 empty windows; every
non-allocating cycle shows exactly that rise). Only event cycles may allocate: a new input taking effect
(a chunk, a teleop twist or jog) and the kinematics refresh every ``SINGULARITY_CHECK_S`` for
end-effector sources. Every other cycle must allocate nothing at all. Inputs are delivered
between cycles, outside the measured windows, as the node's callbacks do.
"""

from __future__ import annotations

import gc
import math
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from test_chunks_and_actions import raw

from robot_brain.control.controller import SINGULARITY_CHECK_S, ArmController, ControllerConfig
from robot_brain.control.safety import SafetyLimits
from robot_brain.embodiment import load_arm
from robot_brain.embodiment.catalog import bundled_arm_path
from robot_brain.ros.control_msgs import ForwardCommand, TrajectoryCommand

RATE = 1000.0
PERIOD = 1.0 / RATE
CYCLES = 1000
REFRESH_EVERY = round(SINGULARITY_CHECK_S * RATE)
#: Steady state: the joint-state history (1024 samples at 500 Hz) is full, so each new sample's
#: floats are balanced by the oldest one's (CPython's float free list is not drained between cycles).
WARM_UP = 2500
_arms = {name: load_arm(str(bundled_arm_path(name))) for name in ("panda", "ur5")}


def controller_for(name: str) -> ArmController:
    arm = _arms[name]
    spec = arm.spec
    limits = SafetyLimits.from_spec(spec.lower, spec.upper, spec.velocity)
    config = ControllerConfig(rate_hz=RATE, chunk_timeout=1.0, gripper_open=(0.04,), gripper_closed=(0.0,))
    return ArmController(arm, limits, config)


def start_configuration(controller: ArmController) -> np.ndarray:
    """Away from the middle of the ranges (all zeros on the UR5: stretched out, singular)."""
    limits = controller.filter.limits
    offsets = np.array([0.3, -0.6, 0.9, -0.5, 0.4, 0.2, 0.1])[: controller.dof]
    return np.clip(controller.spec.middle_configuration() + offsets, limits.lower, limits.upper)


@contextmanager
def traced() -> Iterator[None]:
    gc.disable()  # a collection is work of its own, not the cycle's
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()
        gc.enable()


class Allocations:
    """Which measured cycles allocated: right after an input, or not."""

    def __init__(self) -> None:
        self.on_inputs: list[int] = []
        self.others: list[int] = []

    def periodic(self, every: int) -> bool:
        """Whether the cycles that allocated without an input all fall on one phase of ``every`` cycles."""
        return len({k % every for k in self.others}) <= 1


class Run:
    """Drives one controller at 1 kHz of loop time, measuring each cycle and its publish with tracemalloc."""

    def __init__(self, controller: ArmController) -> None:
        self.controller = controller
        self.t = 1000.0
        dof = controller.dof
        order = list(range(dof))[::-1]  # a controller joint order unlike the arm's
        self.forward = ForwardCommand(dof, order)
        self.trajectory = TrajectoryCommand([f"j{i}" for i in range(dof)], PERIOD, order)
        self.gripper = ForwardCommand(1)
        self.start = start_configuration(controller)
        controller.on_joint_state(self.start, self.t, self.t)
        controller.on_gripper_state(0.2, self.t)
        controller.resume()

    def _window(self, work: Callable[[], None]) -> tuple[int, int]:
        """(peak rise, current rise) over ``work``, the probe's own objects included."""
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        work()
        current, peak = tracemalloc.get_traced_memory()
        return peak - before, current - before

    def _probe_overhead(self) -> int:
        """The peak rise of an empty window in the steady state: its most common value (the first few differ)."""
        for _ in range(20):
            self._window(_nothing)
        rises = [self._window(_nothing)[0] for _ in range(100)]
        return max(set(rises), key=rises.count)

    def cycles(self, count: int, inputs: Callable[[int, float], bool], measure: bool = True) -> Allocations:
        """Run ``count`` cycles; ``inputs(k, t)`` delivers the inputs of cycle k and says whether it gave any."""
        result = Allocations()
        controller = self.controller
        empty_peak = self._probe_overhead()
        for k in range(count):
            self.t += PERIOD
            if k % 2 == 0:  # /joint_states at 500 Hz, following the command
                measured = controller.filter.position if controller.filter.seeded else self.start
                controller.on_joint_state(measured, self.t, self.t)
            event = inputs(k, self.t)
            if not measure:
                self._cycle()
                continue
            peak, _ = self._window(self._cycle)
            if peak > empty_peak:
                (result.on_inputs if event else result.others).append(k)
        return result

    def _cycle(self) -> None:
        command = self.controller.cycle(self.t)
        if command.positions is not None:
            self.forward.fill(command.positions)
            self.trajectory.fill(command.positions, command.velocities)
        if command.gripper is not None:
            self.gripper.fill(command.gripper)


def _nothing() -> None:
    return None


@pytest.mark.parametrize("name", ["panda", "ur5"])
def test_joint_space_sources_and_hold_allocate_nothing_but_their_inputs(name: str) -> None:
    """joint_position chunks at 20 Hz, joint jogs at 100 Hz, then hold and e-stop: only input cycles allocate."""
    controller = controller_for(name)
    run = Run(controller)
    q0 = start_configuration(controller)
    dof = controller.dof

    def chunks(k: int, t: float) -> bool:
        if k % 50:
            return False
        values = np.tile(q0 + 0.3 * math.sin(t), (10, 1)) + np.linspace(0.0, 0.05, 10)[:, None]
        values = np.column_stack((values, np.full(10, 0.5 + 0.4 * math.sin(t))))  # a gripper channel
        assert controller.on_chunk(raw("joint_position", values, stamp=t - 0.01, gripper=True), t) is None
        return True

    def jogs(k: int, t: float) -> bool:
        if k % 10:
            return False
        velocity = np.zeros(dof)
        velocity[(k // 300) % dof] = 0.3 * math.sin(t)
        assert controller.on_joint_jog(velocity, t)
        return True

    run.cycles(WARM_UP, chunks, measure=False)  # warm-up: buffers sized, free lists filled
    with traced():
        policy = run.cycles(CYCLES, chunks)
        assert controller.source == "policy" and controller.filter.moving
        assert policy.others == [], "policy cycles allocated without an input"
        assert policy.on_inputs, "the instrument should see the cycles that take a new chunk"
        run.cycles(500, jogs, measure=False)
        jog = run.cycles(CYCLES, jogs)
        assert controller.source == "teleop" and controller.filter.moving
        assert jog.others == [], "jog cycles allocated without an input"
        run.cycles(500, lambda k, t: False, measure=False)  # teleop times out: brake, hold
        assert controller.source == "hold" and not controller.filter.moving
        assert controller.on_teleop_gripper(0.9, run.t)  # an operator closes the gripper of the resting arm
        hold = run.cycles(CYCLES, lambda k, t: False)
        assert hold.others == [], "hold cycles (the gripper closing) allocated"
        assert controller.gripper.value == pytest.approx(0.9)
        controller.estop(run.t)  # an input: its first cycle may flush what was pending
        estop = run.cycles(CYCLES, lambda k, t: k == 0)
        assert estop.others == []


@pytest.mark.parametrize("name", ["panda", "ur5"])
def test_end_effector_sources_allocate_only_on_inputs_and_the_kinematics_refresh(name: str) -> None:
    """ee_pose_delta chunks at 20 Hz, then tool-frame twists: besides inputs, at most one refresh per 10 ms."""
    controller = controller_for(name)
    run = Run(controller)

    def chunks(k: int, t: float) -> bool:
        if k % 50:
            return False
        actions = np.zeros((10, 7))
        actions[:, 0] = 0.002 * np.arange(1, 11) * math.cos(t)
        actions[:, 1] = 0.002 * np.arange(1, 11) * math.sin(t)
        actions[:, 6] = 1.0
        assert controller.on_chunk(raw("ee_pose_delta", actions, stamp=t - 0.01), t) is None
        return True

    def twists(every: int) -> Callable[[int, float], bool]:
        def inputs(k: int, t: float) -> bool:
            if k % every:
                return False
            twist = np.array([0.05 * math.cos(5 * t), 0.05 * math.sin(5 * t), 0.0, 0.0, 0.0, 0.1])
            assert controller.on_teleop(twist, True, t)
            return True
        return inputs

    run.cycles(WARM_UP, chunks, measure=False)
    with traced():
        policy = run.cycles(CYCLES, chunks)
        assert controller.source == "policy" and controller.filter.moving
        # Besides the chunks, only the condition-number refresh, once every REFRESH_EVERY cycles.
        assert policy.periodic(REFRESH_EVERY) and len(policy.others) <= CYCLES // REFRESH_EVERY, policy.others[:20]
        run.cycles(500, twists(10), measure=False)
        teleop = run.cycles(CYCLES, twists(10))
        assert controller.source == "teleop" and controller.filter.moving
        # Twists every 10 ms restart the refresh count: the Jacobian is solved on their cycles only.
        assert teleop.others == [], teleop.others[:20]
        slow = run.cycles(CYCLES, twists(50))  # twists at 20 Hz: refreshed in between, every 10 ms
        assert controller.source == "teleop"
        assert 0 < len(slow.others) <= CYCLES // REFRESH_EVERY
        assert all(k % 50 % REFRESH_EVERY == 0 for k in slow.others), slow.others[:20]


def test_the_instrument_sees_an_allocation_per_cycle() -> None:
    """Building the command list per cycle, as the node did before, is caught on every cycle."""
    controller = controller_for("panda")
    run = Run(controller)
    order = np.arange(controller.dof)[::-1]
    message = ForwardCommand()

    def old_publish_step() -> None:
        controller.cycle(run.t)
        message.fill(controller.filter.position[order].tolist())

    run._cycle = old_publish_step  # type: ignore[method-assign]
    run.cycles(WARM_UP, lambda k, t: False, measure=False)
    with traced():
        assert len(run.cycles(200, lambda k, t: False).others) == 200
