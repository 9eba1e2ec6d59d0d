"""The operator's rules, driven through a real SDL virtual pad and a real Gamepad on a test clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from teleop_rig import (
    BACK,
    DEADMAN,
    DPAD_DOWN,
    DPAD_RIGHT,
    DPAD_UP,
    LEFT_STICK,
    LEFT_X,
    LEFT_Y,
    RIGHT_SHOULDER,
    RIGHT_TRIGGER,
    RIGHT_X,
    RIGHT_Y,
    START,
    A,
    B,
    Rig,
    X,
    Y,
)

from robot_brain.teleop.mapping import TeleopMapping
from robot_brain.teleop.operator import ZERO_TWIST, EpisodeRequest, Operator, status_line

RigFactory = Callable[..., Rig]
TOL = 1e-3  # SDL's 1/32767 resolution through the dead zone's rescaling


def test_no_motion_without_the_deadman_and_one_zero_twist_on_release(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.pad.set_axis(LEFT_Y, 1.0)  # full up: +x
    assert all(intent.twist is None for intent in rig.steps(5)), "moved without the dead-man"
    engaged = rig.hold(DEADMAN)
    assert engaged.twist == pytest.approx((0.1, 0, 0, 0, 0, 0), abs=TOL) and engaged.frame == "base"
    assert engaged.status.deadman == "held" and engaged.fault == ""
    assert all(i.twist == pytest.approx((0.1, 0, 0, 0, 0, 0), abs=TOL) for i in rig.steps(3))
    released = rig.release(DEADMAN)
    assert released.twist == ZERO_TWIST
    assert all(intent.twist is None for intent in rig.steps(20)), "more than one zero twist after the release"


def test_stick_directions_scales_and_deadzone(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.engage()
    rig.pad.set_axis(LEFT_X, 1.0)  # left: +y
    rig.pad.set_axis(RIGHT_Y, -1.0)  # down: -z
    rig.pad.set_axis(RIGHT_X, 0.55)  # left: +yaw, past the 0.1 dead zone
    twist = rig.step().twist
    assert twist == pytest.approx((0, 0.1, -0.1, 0, 0, 0.5 * 0.45 / 0.9), abs=TOL)
    for axis in (LEFT_X, RIGHT_Y, RIGHT_X):
        rig.pad.set_axis(axis, 0.08)  # inside the dead zone
    assert rig.step().twist == (0.0,) * 6, "the dead-man held with centred sticks streams zeros"


def test_speed_levels_slow_normal_turbo(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.engage()
    rig.pad.set_axis(LEFT_Y, 1.0)
    slow = rig.click(DPAD_DOWN)
    assert slow.status.speed == "slow" and rig.step().twist[0] == pytest.approx(0.025, abs=TOL)
    turbo = rig.hold(RIGHT_SHOULDER)
    assert turbo.status.speed == "turbo" and turbo.twist[0] == pytest.approx(0.25, abs=TOL)
    assert rig.release(RIGHT_SHOULDER).twist[0] == pytest.approx(0.025, abs=TOL)
    rig.click(DPAD_UP)
    assert rig.step().twist[0] == pytest.approx(0.1, abs=TOL)


def test_unplugging_stops_at_once_faults_and_reconnecting_never_resumes_by_itself(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.engage()
    rig.pad.set_axis(LEFT_Y, 1.0)
    assert rig.step().twist[0] > 0.09
    rig.pad.detach()
    lost = rig.step()
    assert lost.twist == ZERO_TWIST and rig.pad.name in lost.fault and "disconnected" in lost.fault
    assert lost.status.deadman == "released" and "FAULT" in status_line(lost.status)
    later = rig.steps(10)
    assert all(i.twist is None and rig.pad.name in i.fault for i in later)
    # Plugged back in with the stick deflected and the dead-man held: nothing moves...
    rig.pad.attach()
    rig.pad.set_axis(LEFT_Y, 1.0)
    rig.pad.set_button(DEADMAN, True)
    back = rig.steps(10)
    assert all(i.twist is None and i.fault == "" for i in back), "resumed motion by itself"
    assert back[-1].status.deadman == "re-arm"
    # ...until the dead-man is released and pressed again.
    assert rig.release(DEADMAN).twist is None
    assert rig.hold(DEADMAN).twist[0] == pytest.approx(0.1, abs=TOL)


def test_estop_latches_and_only_the_held_combination_resets(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.engage()
    rig.pad.set_axis(LEFT_Y, 1.0)
    stop = rig.hold(B)
    assert stop.estop and stop.twist == ZERO_TWIST and stop.status.estopped
    held = rig.steps(5)
    assert not any(i.estop for i in held), "e-stop is an edge, not a level"
    rig.release(B)
    assert all(i.twist is None for i in rig.steps(5)), "moved while e-stopped"
    # One button is never a reset, and neither is the combination held too briefly.
    assert not any(i.reset for i in (rig.hold(BACK), *rig.steps(150)))
    rig.pad.set_button(START, True)
    short = rig.steps(50)  # 0.5 s of the 1 s hold
    rig.release(START)
    assert not any(i.reset for i in short) and not any(i.episode for i in short), "reset buttons leaked episode events"
    rig.hold(START)
    resets = [i.reset for i in rig.steps(120)]
    assert resets.count(True) == 1 and rig.operator.estopped is False
    rig.release(BACK, START)
    # After a reset, motion needs a fresh dead-man press.
    assert rig.step().twist is None
    assert rig.engage().twist[0] == pytest.approx(0.1, abs=TOL)


def test_a_combination_held_before_the_estop_does_not_reset(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.hold(BACK, START)
    assert rig.hold(B).estop
    assert not any(i.reset for i in rig.steps(200))
    assert rig.operator.estopped


def test_toggles_are_edges_not_levels(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.pad.set_button(Y, True)
    frames = [i.frame for i in rig.steps(20)]
    assert frames == ["tool"] * 20, "holding Y toggled more than once"
    rig.release(Y)
    assert rig.hold(Y).frame == "base"


def test_gripper_buttons_and_proportional_trigger_need_the_deadman(make_rig: RigFactory) -> None:
    rig = make_rig()
    assert rig.click(A).gripper is None and rig.operator.gripper is None, "gripper moved without the dead-man"
    rig.engage()
    assert rig.click(A).gripper == 1.0
    assert rig.step().gripper == 1.0, "the target is repeated while the dead-man is held"
    assert rig.click(X).gripper == 0.0
    rig.pad.set_axis(RIGHT_TRIGGER, 0.55)
    assert rig.step().gripper == pytest.approx(0.5, abs=TOL)
    rig.pad.set_axis(RIGHT_TRIGGER, 0.0)
    assert rig.step().gripper == 0.0, "a released proportional trigger opens"
    assert rig.click(A).gripper == 1.0
    assert rig.step().gripper == 1.0, "a released trigger overrode a button"
    assert rig.release(DEADMAN).gripper is None


def test_joint_jog_mode(make_rig: RigFactory) -> None:
    rig = make_rig(joint_names=("shoulder", "elbow", "wrist"))
    rig.engage()
    rig.pad.set_axis(LEFT_Y, 1.0)
    assert rig.step().twist[0] > 0.09
    switched = rig.click(LEFT_STICK)
    assert switched.twist == ZERO_TWIST, "leaving Cartesian mode did not stop the twist"
    assert switched.jog is not None and switched.jog.joint == 0 and switched.jog.velocity == 0.0
    assert rig.click(DPAD_RIGHT).jog.name == "elbow"
    rig.pad.set_axis(RIGHT_Y, 1.0)
    jog = rig.step()
    assert jog.twist is None and jog.jog.joint == 1 and jog.jog.velocity == pytest.approx(0.3, abs=TOL)
    assert "jog elbow" in status_line(jog.status)
    stop = rig.release(DEADMAN)
    assert stop.jog is not None and stop.jog.velocity == 0.0 and stop.twist is None
    assert all(i.jog is None and i.twist is None for i in rig.steps(5))


def test_episode_buttons(make_rig: RigFactory) -> None:
    rig = make_rig()
    assert rig.click(START).episode == (EpisodeRequest("start"),)
    assert rig.click(START).episode == (EpisodeRequest("success", "success"),)
    assert rig.click(BACK).episode == (EpisodeRequest("discard"),)
    assert rig.click(BACK).episode == (), "discarded twice"
    rig.click(START)
    assert rig.click(BACK).episode == (EpisodeRequest("failure", "failure"),)
    rig.step(31.0)  # past the 30 s discard window
    assert rig.click(BACK).episode == ()
    assert rig.click(START).status.episode == "recording"
    # Both at once is ambiguous: nothing happens, the episode is not lost.
    rig.pad.set_button(START, True)
    rig.pad.set_button(BACK, True)
    assert rig.step().episode == ()
    rig.release(START, BACK)
    assert rig.operator.episode == "recording"
    rig.operator.observe_episode(False)  # the recorder refused or ended it
    assert rig.step().status.episode == "idle"


def test_an_estop_from_elsewhere_disarms_until_a_fresh_press(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.engage()
    rig.pad.set_axis(LEFT_Y, 1.0)
    rig.operator.observe_estop(True)
    assert rig.step().twist == ZERO_TWIST
    rig.operator.observe_estop(False)
    assert all(i.twist is None for i in rig.steps(5))
    assert rig.engage().twist[0] > 0.09


def test_without_a_deadman_centred_sticks_arm_and_hands_off_stops_once(make_rig: RigFactory) -> None:
    rig = make_rig(require_enable_button=False)
    rig.pad.detach()
    rig.step()
    rig.pad.attach()
    rig.pad.set_axis(LEFT_Y, 1.0)
    assert all(i.twist is None for i in rig.steps(5)), "a deflected stick at connection moved the arm"
    rig.pad.set_axis(LEFT_Y, 0.0)
    assert rig.step().twist is None
    rig.pad.set_axis(LEFT_Y, 1.0)
    assert rig.step().twist[0] == pytest.approx(0.1, abs=TOL)
    rig.pad.set_axis(LEFT_Y, 0.0)
    assert rig.step().twist == ZERO_TWIST
    assert all(i.twist is None for i in rig.steps(5))


def test_status_line_shows_the_operator_state(make_rig: RigFactory) -> None:
    rig = make_rig(joint_names=("j1", "j2"))
    rig.engage()
    rig.click(A)
    rig.click(Y)
    rig.click(DPAD_DOWN)
    rig.click(START)
    line = status_line(rig.step().status)
    for part in (f"pad {rig.pad.name}", "dead-man held", "frame tool", "speed slow", "gripper 1.00", "e-stop off",
                 "cartesian", "episode recording"):
        assert part in line, (part, line)
    assert "E-STOPPED" in status_line(rig.click(B).status)
    assert len(status_line(rig.step().status, width=60)) <= 60


def test_waiting_for_a_first_pad_is_not_a_fault() -> None:
    operator = Operator(TeleopMapping.default())
    intent = operator.step(None, 1.0)
    assert intent.fault == "" and intent.twist is None and "waiting for" in status_line(intent.status)
