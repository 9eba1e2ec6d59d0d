"""The controller core's inputs and fallbacks on real arms: gripper seeding, joint jog, the operator's gripper,
braking after a fault (through the real ControlLoop), and chunks judged by their age when converted."""

from __future__ import annotations

import math
import sys
import threading
import time

import numpy as np
import pytest
from test_chunks_and_actions import PANDA, Q0, core, raw
from test_safety import assert_within_limits

from robot_brain.control.controller import ArmController, Counters, gripper_closed_fraction
from robot_brain.control.loop import ControlLoop
from robot_brain.control.safety import SafetyLimits
from robot_brain.embodiment import load_arm
from robot_brain.embodiment.catalog import bundled_arm_path

UR5 = load_arm(str(bundled_arm_path("ur5")))
UR5_START = np.array([0.3, -1.2, 1.5, -0.8, 1.2, 0.2])  # away from the stretched-out singularity at zero


class Cell:
    """A position-controlled arm that follows the published command exactly, at loop time ``t``."""

    def __init__(self, controller: ArmController, start: np.ndarray, t: float = 100.0) -> None:
        self.controller = controller
        self.t = t
        self.position = start.copy()
        self.commands: list[np.ndarray] = []
        self.grippers: list[float] = []
        controller.on_joint_state(self.position, t, t)

    def step(self, count: int = 1) -> None:
        controller = self.controller
        for _ in range(count):
            self.t += controller.config.period
            command = controller.cycle(self.t)
            if command.positions is not None:
                self.position = command.positions.copy()
            if command.gripper is not None:
                self.grippers.append(command.gripper[0])
            self.commands.append(controller.filter.position.copy())
            controller.on_joint_state(self.position, self.t, self.t)


def test_gripper_closed_fraction_follows_the_open_closed_convention() -> None:
    spec = PANDA.spec
    open_, closed = spec.gripper_open_closed()  # Panda finger: open 0.04 m, closed 0
    assert gripper_closed_fraction(open_, open_, closed) == 0.0
    assert gripper_closed_fraction(closed, open_, closed) == 1.0
    assert gripper_closed_fraction(0.75 * open_, open_, closed) == pytest.approx(0.25)
    assert gripper_closed_fraction(open_ + 1.0, open_, closed) == 0.0  # clamped
    assert math.isnan(gripper_closed_fraction(np.array([math.nan]), open_, closed))


def test_first_gripper_command_after_each_activation_is_rate_limited() -> None:
    """Seeded from the measured opening, else from the last command; it never jumps (item 5 of issue 8)."""
    controller = core(gripper_max_speed=1.0)  # 1 stroke/s at 500 Hz: 0.002 per cycle
    step = controller.gripper.max_delta
    cell = Cell(controller, Q0)
    controller.on_gripper_state(0.8, cell.t)  # measured: nearly closed
    controller.resume()
    cell.step(10)
    assert cell.grippers == [], "seeding alone must publish nothing (a grasp is not loosened to the measurement)"
    opening = np.column_stack((np.tile(Q0, (10, 1)), np.zeros(10)))  # the policy opens the gripper
    assert controller.on_chunk(raw("joint_position", opening, stamp=cell.t, gripper=True), cell.t) is None
    cell.step(50)
    assert cell.grippers[0] == pytest.approx(0.8 - step), "the first command jumped"
    assert np.all(np.abs(np.diff([0.8, *cell.grippers])) <= step + 1e-12)
    last = cell.grippers[-1]
    # Deactivate, then activate again with no fresh gripper measurement: the last command is the seed.
    controller.request_stop()
    cell.step(300)
    assert controller.stopped
    cell.grippers.clear()
    controller.resume()
    cell.t += 5.0  # a while later: the gripper measurement is stale now
    controller.on_joint_state(cell.position, cell.t, cell.t)
    cell.step()  # the first cycle after an activation discards what was sent before it
    closing = np.column_stack((np.tile(Q0, (10, 1)), np.ones(10)))
    assert controller.on_chunk(raw("joint_position", closing, stamp=cell.t, gripper=True), cell.t) is None
    cell.step(20)
    assert cell.grippers[0] == pytest.approx(last + step), "the first command after re-activation jumped"
    # A non-finite measurement is refused and counted.
    assert not controller.on_gripper_state(math.nan, cell.t)
    assert controller.counters.gripper_rejected == 1


def test_joint_jog_moves_one_joint_within_the_limits_and_the_newest_teleop_input_wins() -> None:
    spec = UR5.spec
    limits = SafetyLimits.from_spec(spec.lower, spec.upper, spec.velocity)
    controller = ArmController(UR5, limits, core().config)
    cell = Cell(controller, UR5_START)
    controller.resume()
    jog = np.zeros(6)
    jog[2] = 10.0  # far above the velocity limit: the filter bounds it
    for _ in range(60):  # jogs at 100 Hz (every 5 cycles) for 0.6 s
        assert controller.on_joint_jog(jog, cell.t)
        cell.step(5)
    assert controller.source == "teleop"
    moved = cell.position - UR5_START
    assert moved[2] > 0.1 and np.allclose(np.delete(moved, 2), 0.0, atol=1e-12), moved
    # A twist sent after the jog takes over (the newest teleop input wins): several joints move.
    before = cell.position.copy()
    for _ in range(40):
        assert controller.on_teleop(np.array([0.0, 0.0, 0.1, 0.0, 0.0, 0.0]), False, cell.t)
        cell.step(5)
    assert np.count_nonzero(np.abs(cell.position - before) > 1e-4) >= 2
    # ...and a jog sent after the twist takes over again: now only joint 0 changes speed.
    jog = np.zeros(6)
    jog[0] = -0.3
    for _ in range(100):
        assert controller.on_joint_jog(jog, cell.t)
        cell.step(5)
    velocity = controller.filter.velocity
    assert velocity[0] == pytest.approx(-0.3) and np.allclose(velocity[1:], 0.0, atol=1e-12)
    # Silence: after teleop_timeout the arm brakes to rest and holds.
    cell.step(round((controller.config.teleop_timeout + 0.2) * controller.config.rate_hz))
    assert controller.source == "hold" and not controller.filter.moving
    assert controller.counters.teleop_timeouts >= 1
    assert_within_limits(np.array(cell.commands), limits, controller.config.period)
    # Non-finite, wrong-sized and e-stopped jogs are refused and counted.
    rejected = controller.counters.teleop_rejected
    assert not controller.on_joint_jog(np.array([0.1, math.nan, 0, 0, 0, 0]), cell.t)
    assert not controller.on_joint_jog(np.zeros(7), cell.t)
    assert not controller.on_joint_jog(np.zeros((2, 3)), cell.t)
    controller.estop(cell.t)
    assert not controller.on_joint_jog(np.zeros(6), cell.t)
    assert controller.counters.teleop_rejected == rejected + 4


def test_operator_gripper_works_while_teleop_drives_or_the_arm_holds_and_not_under_the_policy() -> None:
    controller = core(gripper_max_speed=2.0)
    step = controller.gripper.max_delta
    cell = Cell(controller, Q0)
    controller.on_gripper_state(0.0, cell.t)
    controller.resume()
    cell.step(5)
    assert controller.source == "idle"
    assert controller.on_teleop_gripper(1.0, cell.t)  # close, while nothing drives the arm
    cell.step(300)
    assert controller.gripper.value == pytest.approx(1.0)
    assert np.all(np.abs(np.diff([0.0, *cell.grippers])) <= step + 1e-12) and cell.grippers[0] == pytest.approx(step)
    # While teleop drives: a request is applied too.
    for _ in range(30):
        controller.on_joint_jog(np.full(7, 0.05), cell.t)
        if _ == 0:
            assert controller.on_teleop_gripper(0.5, cell.t)
        cell.step(5)
    assert controller.source == "teleop" and controller.gripper.value == pytest.approx(0.5)
    # Under the policy the operator's gripper requests are ignored: the chunk's gripper channel rules.
    cell.step(200)
    chunk = np.column_stack((np.tile(Q0, (10, 1)), np.full(10, 0.5)))
    assert controller.on_chunk(raw("joint_position", chunk, stamp=cell.t, gripper=True), cell.t) is None
    cell.step(5)
    assert controller.source == "policy"
    assert controller.on_teleop_gripper(0.0, cell.t)
    cell.step(100)
    assert controller.gripper.value == pytest.approx(0.5)
    assert not controller.on_teleop_gripper(math.inf, cell.t)
    assert controller.counters.gripper_rejected == 1


def test_a_chunk_that_waited_in_a_queue_is_judged_by_its_age_when_converted() -> None:
    controller = core(chunk_timeout=0.5)
    controller.on_joint_state(Q0, 9.99, 9.99)
    arrived = 10.0
    chunk = raw("joint_position", np.tile(Q0 + 0.1, (3, 1)), stamp=arrived - 0.01)
    # Converted right away: accepted. Converted 0.6 s later (a busy slow lane): stale, although it arrived fresh.
    assert controller.on_chunk(chunk, arrived + 0.6, arrival=arrived) == "stale"
    assert controller.counters.chunks_rejected == {"stale": 1}
    assert controller.on_chunk(chunk, arrived, arrival=arrived) is None
    # The arrival time runs the chunk watchdog; the conversion time starts the blend.
    late = raw("joint_position", np.tile(Q0 + 0.2, (20, 1)), stamp=arrived + 0.05)
    assert controller.on_chunk(late, arrived + 0.1, arrival=arrived + 0.06) is None
    controller.on_joint_state(Q0, arrived + 0.09, arrived + 0.09)
    controller.cycle(arrived + 0.1)
    assert controller.source == "policy"
    assert controller._last_chunk_arrival == pytest.approx(arrived + 0.06)


@pytest.mark.parametrize(("name", "fault_in"), [("panda", "blender"), ("ur5", "teleop")])
def test_a_fault_in_the_cycle_brakes_to_rest_within_the_limits_and_repeats_the_halt(name: str, fault_in: str) -> None:
    """An exception injected into ``cycle`` mid-motion, with the real ControlLoop: brake() takes over."""
    arm, start = (PANDA, Q0) if name == "panda" else (UR5, UR5_START)
    spec = arm.spec
    limits = SafetyLimits.from_spec(spec.lower, spec.upper, spec.velocity)
    controller = ArmController(arm, limits, core(rate=500.0).config)
    config = controller.config
    measured = {"q": start.copy(), "t": 0.0}
    published: list[np.ndarray | None] = []
    errors: list[BaseException] = []
    cycles = {"count": 0}

    def compute(now: float) -> object:
        cycles["count"] += 1
        if cycles["count"] == 2:  # the motion (after the first cycle, which flushes older input)
            if fault_in == "blender":
                target = np.clip(start + 1.0, limits.lower, limits.upper)
                controller.on_chunk(raw("joint_position", np.tile(target, (2, 1)), stamp=now, dt=1.0), now)
        if fault_in == "teleop" and cycles["count"] < 200:
            controller.on_teleop(np.array([0.0, 0.0, 0.25, 0.0, 0.0, 0.0]), False, now)
        if cycles["count"] == 150:  # mid-motion, a bug deep inside the cycle
            def broken(*args: object) -> None:
                raise ZeroDivisionError("injected")
            if fault_in == "blender":
                controller.blender.sample_into = broken  # type: ignore[method-assign]
            else:
                controller._refresh_teleop = broken  # type: ignore[method-assign]
                controller.on_teleop(np.array([0.0, 0.0, -0.25, 0.0, 0.0, 0.0]), False, now)
        return controller.cycle(now)

    def publish(command: object) -> None:
        positions = command.positions  # type: ignore[attr-defined]
        published.append(None if positions is None else positions.copy())
        if positions is not None:
            measured["q"] = positions.copy()

    def idle(until: float) -> None:
        now = time.monotonic()
        controller.on_joint_state(measured["q"], now, now)

    def on_error(error: BaseException) -> None:
        errors.append(error)
        controller.request_stop()  # what the node does: brake, then end the loop when at rest

    loop = ControlLoop(config.period, compute, publish, should_stop=lambda: controller.stopped,
                       realtime_priority=0, on_error=on_error, idle_margin=1e-4, fallback=controller.brake)
    controller.on_joint_state(start, time.monotonic(), time.monotonic())
    controller.resume()
    loop.run(idle, max_seconds=5.0)

    assert [type(error) for error in errors] == [ZeroDivisionError] and loop.failed_over
    assert isinstance(loop.error, ZeroDivisionError) and controller.source == "fault"
    assert controller.counters.fault_brakes == 1
    assert not loop.running and controller.stopped, "the loop should end once the arm is at rest"
    commands = np.array([q for q in published if q is not None])
    assert_within_limits(np.vstack([start, commands]), limits, config.period)
    fault_index = 149  # the 150th period's command is the first braking one
    speeds = np.abs(np.diff(commands, axis=0))[fault_index - 1 :].max(axis=1)
    assert speeds[0] > 0.05 * config.period, "the arm was not moving (0.05 rad/s) when the fault hit"
    assert np.all(np.diff(speeds) <= 1e-12), "braking after the fault must only slow down"
    # At rest, the halt is published halt_messages more times, then the loop ends.
    assert all(q is not None for q in published[fault_index:])
    moved = [i for i in range(1, len(commands)) if not np.array_equal(commands[i], commands[i - 1])]
    assert len(commands) - 1 - moved[-1] == config.halt_messages


def test_control_loop_without_a_fallback_ends_and_a_failing_fallback_ends_too() -> None:
    seen: list[BaseException] = []
    computed = {"calls": 0}

    def failing(now: float) -> None:
        computed["calls"] += 1
        raise RuntimeError("compute")

    loop = ControlLoop(0.001, failing, lambda result: None, realtime_priority=0, on_error=seen.append)
    loop.run(lambda until: None, max_seconds=1.0)
    assert isinstance(loop.error, RuntimeError) and not loop.failed_over and len(seen) == 1
    fallbacks = {"calls": 0}

    def fallback(now: float) -> None:
        fallbacks["calls"] += 1
        if fallbacks["calls"] == 10:
            raise ValueError("fallback")

    loop = ControlLoop(0.001, failing, lambda result: None, realtime_priority=0, on_error=seen.append,
                       fallback=fallback)
    loop.run(lambda until: None, max_seconds=1.0)
    assert loop.failed_over and fallbacks["calls"] == 10 and isinstance(loop.error, ValueError)
    assert [type(error) for error in seen] == [RuntimeError, RuntimeError, ValueError]
    # The next run starts with compute again (a new activation tries the real cycle first).
    loop.run(lambda until: None, max_seconds=0.05)
    assert computed["calls"] == 3 and loop.failed_over and fallbacks["calls"] > 10


def test_rejection_counts_can_be_read_while_the_loop_counts_new_reasons() -> None:
    """The diagnostics thread reads the counts while the loop thread adds reasons; reading must never raise.

    With a live-dict iteration this raised "dictionary changed size during iteration" hundreds of
    times in 20 000 reads (switch interval 1 µs); the copy never does.
    """
    counters = Counters()
    stop = threading.Event()

    def loop() -> None:
        index = 0
        while not stop.is_set():
            counters.reject(f"reason-{index % 2000}")
            index += 1
            if index % 2000 == 0:
                counters.chunks_rejected.clear()  # a fresh run of first rejections

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        for _ in range(20_000):
            snapshot = {f"rejected_{key}": value for key, value in counters.rejections().items()}
            assert all(value >= 1 for value in snapshot.values())
    finally:
        stop.set()
        thread.join(timeout=5.0)
        sys.setswitchinterval(previous)
