"""The e-stop latch's release rules (pure): who engaged it releases it, or an operator reset that says who."""

from __future__ import annotations

import numpy as np
import pytest

from robot_brain.control.controller import ArmController
from robot_brain.control.estop import MAX_SOURCE_LENGTH, UNNAMED, EStopLatch
from robot_brain.control.safety import SafetyLimits
from robot_brain.embodiment import load_arm
from robot_brain.embodiment.catalog import bundled_arm_path


def test_only_the_source_that_engaged_the_stop_releases_it() -> None:
    latch = EStopLatch()
    assert latch.engage("teleop:/pad_a").success and latch.holders == ("teleop:/pad_a",)
    for stranger in ("teleop:/pad_b", "", UNNAMED, " teleop:/pad_a_"):
        answer = latch.release(stranger)
        assert not answer.success and not answer.released, stranger
        assert "teleop:/pad_a" in answer.message and latch.engaged
    answer = latch.release(" teleop:/pad_a ")  # surrounding blanks are not part of a name
    assert answer.success and answer.released and not latch.engaged


def test_every_source_releases_its_own_before_the_arm_may_move() -> None:
    latch = EStopLatch()
    latch.engage("pendant")
    latch.engage("")  # std_srvs/Trigger ~/estop
    assert latch.holders == ("pendant", UNNAMED)
    first = latch.release(UNNAMED)
    assert not first.success and not first.released and first.engaged_by == ("pendant",)
    assert "still held by pendant" in first.message
    assert latch.release("pendant").released
    assert latch.release("pendant").message == "was not stopped"


def test_an_operator_reset_releases_everything_but_only_when_it_says_who() -> None:
    latch = EStopLatch()
    latch.engage("teleop:/pad_a")
    latch.engage("pendant")
    for anonymous in ("", "  ", UNNAMED):
        answer = latch.release(anonymous, operator_reset=True)
        assert not answer.success and "who" in answer.message and latch.engaged
    answer = latch.release("operator:op-3f2a9c", operator_reset=True)
    assert answer.released and answer.engaged_by == ()
    assert "operator:op-3f2a9c" in answer.message and "teleop:/pad_a" in answer.message and "pendant" in answer.message


def test_a_malformed_source_still_stops_but_cannot_release() -> None:
    latch = EStopLatch()
    long_name = "x" * (MAX_SOURCE_LENGTH + 1)
    assert latch.engage(long_name).success and latch.engaged  # a stop is never refused
    assert not latch.release(long_name).success
    assert not latch.release("a\x00b", operator_reset=True).success
    assert latch.release("operator:op-1", operator_reset=True).released


@pytest.fixture(scope="module")
def controller() -> ArmController:
    arm = load_arm(str(bundled_arm_path("panda")))
    spec = arm.spec
    return ArmController(arm, SafetyLimits.from_spec(spec.lower, spec.upper, spec.velocity))


def test_teleop_sent_before_the_last_stop_or_release_is_refused(controller: ArmController) -> None:
    twist = np.array([0.0, 0.0, 0.05, 0.0, 0.0, 0.0])
    jog = np.full(controller.dof, 0.05)
    assert controller.on_teleop(twist, False, 1.0, sent=0.99)  # no stop yet: every epoch is current
    controller.estop(2.0, "teleop:/pad")
    assert not controller.on_teleop(twist, False, 2.1, sent=2.05)  # stopped: refused whatever its stamp
    assert not controller.release(3.0, "someone else").released
    assert controller.release(3.0, "teleop:/pad").released and not controller.estopped
    before = controller.counters.teleop_before_epoch
    assert not controller.on_teleop(twist, False, 3.1, sent=2.9), "a twist sent before the release was accepted"
    assert not controller.on_joint_jog(jog, 3.1, sent=2.9)
    assert not controller.on_teleop(twist, False, 2.99), "an unstamped twist received before the release"
    assert not controller.on_teleop_gripper(1.0, 2.99)
    assert controller.counters.teleop_before_epoch == before + 3
    assert controller.on_teleop(twist, False, 3.1, sent=3.05)
    assert controller.on_joint_jog(jog, 3.1)
    assert controller.on_teleop_gripper(1.0, 3.1)
