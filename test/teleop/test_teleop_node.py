"""The teleop node over real DDS: SDL's virtual game pad drives the real node into the real arm controller
and the MuJoCo sim (processes), through the one safety filter. And the ``joy`` input with Joy messages.

The default map (docs/teleop.md): left shoulder = dead-man, left stick = linear x/y, right stick =
z/yaw, Y = frame toggle, A/X = gripper close/open, B = e-stop, back + start held 1 s = reset.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from geometry_msgs.msg import TwistStamped
from helpers.cell_system import (
    PERIOD_S,
    System,
    analyse_commands,
    reach_plan,
    wait_for,
)
from helpers.domains import next_domain
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from robot_brain_msgs.msg import EpisodeEvent
from sensor_msgs.msg import Joy

from robot_brain.nodes.teleop import TeleopNode
from robot_brain.teleop.virtual_pad import VirtualPad

pytestmark = [pytest.mark.dds, pytest.mark.slow]
A, B, X, Y, BACK, START, LEFT_SHOULDER = 0, 1, 2, 3, 4, 6, 9
LEFT_X, LEFT_Y = 0, 1
TELEOP_TIMEOUT_S = 0.2  # the controller's default


@dataclass
class Rig:
    system: System
    teleop: TeleopNode
    pad: VirtualPad
    events: list[EpisodeEvent]

    def tool(self) -> np.ndarray:
        """The measured tool pose (FK of the sim's joint states)."""
        arm = self.system.arm
        return arm.kinematics.fk(self.system.observer.joint_positions(arm.spec.joint_names))

    def hold(self, seconds: float) -> None:
        time.sleep(seconds)

    def deadman(self, pressed: bool) -> None:
        self.pad.set_button(LEFT_SHOULDER, pressed)

    def tap(self, button: int) -> None:
        self.pad.set_button(button, True)
        time.sleep(0.1)
        self.pad.set_button(button, False)
        time.sleep(0.1)

    def still(self, seconds: float = 0.3) -> bool:
        recent = self.system.observer.commands_since(time.monotonic() - seconds)
        return len(recent) < 2 or analyse_commands(recent, self.system.limits).peak_speed == 0.0


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    folder = tmp_path_factory.mktemp("teleop_cell")
    system = System(reach_plan(("sim", "arm_controller"), sim={"camera_rate_hz": 0.0}), folder)
    pad = VirtualPad("robot_brain test pad")
    teleop = None
    executor = None
    thread = None
    try:
        system.start()
        wait_for(lambda: len(system.observer.joint_times) > 10, 60.0, "/joint_states from the sim")
        wait_for(lambda: (system.observer.value("arm_controller", "state") or "") == "active", 60.0,
                 "the arm controller to be active")
        pad.attach()
        teleop = TeleopNode(context=system.context, parameter_overrides=[
            Parameter("urdf_path", value=str(system.plan.robot.urdf)), Parameter("device_name", value="test pad"),
            Parameter("diagnostics_period_s", value=0.2)])
        events: list[EpisodeEvent] = []
        teleop.create_subscription(EpisodeEvent, "/episode/events", events.append, QoSProfile(depth=50))
        assert teleop.trigger_configure() == TransitionCallbackReturn.SUCCESS, teleop.startup_error
        assert teleop.trigger_activate() == TransitionCallbackReturn.SUCCESS, teleop.startup_error
        executor = SingleThreadedExecutor(context=system.context)
        executor.add_node(teleop)
        thread = threading.Thread(target=executor.spin, daemon=True)
        thread.start()
        wait_for(lambda: teleop._intent is not None and teleop._intent.status.connected, 20.0, "the pad to connect")
        yield Rig(system, teleop, pad, events)
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if thread is not None:
            thread.join(timeout=5.0)
        if teleop is not None:
            teleop.destroy_node()
        pad.detach()
        system.close()


def _drive(rig: Rig, axis: int, value: float, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Hold the dead-man and push ``axis`` for ``seconds``; returns the tool pose before and after (at rest)."""
    rig.deadman(False)
    rig.hold(0.1)
    wait_for(rig.still, 5.0, "the arm to be still")
    before = rig.tool()
    rig.deadman(True)
    rig.pad.set_axis(axis, value)
    rig.hold(seconds)
    rig.pad.set_axis(axis, 0.0)
    rig.deadman(False)
    rig.hold(0.3)
    wait_for(rig.still, 5.0, "the arm to stop")
    return before, rig.tool()


def test_stick_plus_x_moves_the_tool_along_plus_x_in_the_base_and_in_the_tool_frame(rig: Rig) -> None:
    before, after = _drive(rig, LEFT_Y, 1.0, 0.8)  # left stick up = +x
    motion = after[:3, 3] - before[:3, 3]
    assert np.linalg.norm(motion) > 0.03, motion
    assert motion @ np.array([1.0, 0.0, 0.0]) / np.linalg.norm(motion) > 0.9, motion
    rig.tap(Y)  # frame toggle: tool
    wait_for(lambda: rig.teleop._intent.status.frame == "tool", 2.0, "the tool frame")
    before, after = _drive(rig, LEFT_Y, 1.0, 0.8)
    motion = after[:3, 3] - before[:3, 3]
    assert motion @ before[:3, 0] / np.linalg.norm(motion) > 0.9, (motion, before[:3, 0])
    rig.tap(Y)
    wait_for(lambda: rig.teleop._intent.status.frame == "base", 2.0, "the base frame")


def test_releasing_the_deadman_stops_the_arm_within_the_teleop_timeout_plus_two_periods(rig: Rig) -> None:
    rig.deadman(False)
    rig.hold(0.1)
    rig.deadman(True)
    rig.pad.set_axis(LEFT_X, 1.0)
    rig.hold(0.6)
    released = time.monotonic()
    rig.deadman(False)  # the stick stays deflected: only the dead-man says stop
    rig.hold(0.8)
    rig.pad.set_axis(LEFT_X, 0.0)
    analysis = analyse_commands(rig.system.observer.commands_since(released - 0.3), rig.system.limits, after=released)
    assert analysis.within_limits, analysis
    assert analysis.braking_onset is not None and analysis.at_rest is not None, analysis
    assert analysis.braking_onset - released <= TELEOP_TIMEOUT_S + 2 * PERIOD_S, analysis.braking_onset - released
    assert rig.still(0.3)


def test_unplugging_halts_reports_and_a_held_stick_does_not_resume_after_replugging(rig: Rig) -> None:
    rig.deadman(True)
    rig.pad.set_axis(LEFT_X, 1.0)
    rig.hold(0.4)
    unplugged = time.monotonic()
    rig.pad.detach()
    wait_for(lambda: (s := rig.system.observer.status("teleop", unplugged)) is not None and s.level == b"\x02"
             and "test pad" in s.message, 5.0, "a diagnostics ERROR naming the pad")
    wait_for(rig.still, 5.0, "the arm to stop")
    analysis = analyse_commands(rig.system.observer.commands_since(unplugged - 0.3), rig.system.limits,
                                after=unplugged)
    assert analysis.within_limits, analysis
    assert analysis.braking_onset is not None and analysis.at_rest is not None, analysis
    assert analysis.braking_onset - unplugged <= TELEOP_TIMEOUT_S + 2 * PERIOD_S, analysis.braking_onset - unplugged
    # Plugged back in with the dead-man and the stick still held: no motion by itself.
    rig.pad.attach()
    rig.deadman(True)
    rig.pad.set_axis(LEFT_X, 1.0)
    wait_for(lambda: rig.teleop._intent.status.connected, 10.0, "the pad to reconnect")
    rig.hold(0.6)
    assert rig.still(0.5), "a stick held through an unplug moved the arm"
    assert rig.teleop._intent.status.deadman == "re-arm"
    rig.deadman(False)  # release, press again: now it moves
    rig.hold(0.15)
    rig.deadman(True)
    rig.hold(0.5)
    assert not rig.still(0.3)
    rig.pad.set_axis(LEFT_X, 0.0)
    rig.deadman(False)
    wait_for(rig.still, 5.0, "the arm to stop")


def test_gripper_buttons_close_and_open_the_simulated_gripper(rig: Rig) -> None:
    spec = rig.system.arm.spec
    finger = spec.driven_gripper_joints[0]
    open_, closed = spec.gripper_open_closed()
    rig.deadman(True)
    rig.tap(A)  # close
    wait_for(lambda: abs(rig.system.observer.joint_positions([finger])[0] - closed[0]) < 0.004, 5.0,
             "the gripper to close")
    rig.tap(X)  # open
    wait_for(lambda: abs(rig.system.observer.joint_positions([finger])[0] - open_[0]) < 0.004, 5.0,
             "the gripper to open")
    rig.deadman(False)


def test_the_estop_button_latches_and_only_the_held_combination_resets(rig: Rig) -> None:
    rig.tap(B)
    wait_for(lambda: rig.system.observer.estopped and rig.system.observer.estopped[-1], 5.0, "the e-stop")
    rig.tap(START)  # one button is never a reset
    rig.hold(0.5)
    assert rig.system.observer.estopped[-1]
    rig.pad.set_button(BACK, True)
    rig.pad.set_button(START, True)
    rig.hold(1.4)
    rig.pad.set_button(BACK, False)
    rig.pad.set_button(START, False)
    rig.hold(0.2)  # a person releases for longer than one poll: the next press of start is a new press
    wait_for(lambda: not rig.system.observer.estopped[-1], 5.0, "the reset")


def test_the_pad_cannot_release_a_stop_someone_else_engaged(rig: Rig) -> None:
    """A stop engaged by another source (``~/estop``: unnamed) stays engaged through the pad's reset combination."""
    response = rig.system.observer.call("/arm_controller/estop")
    assert response is not None and response.success
    wait_for(lambda: rig.system.observer.estopped and rig.system.observer.estopped[-1], 5.0, "the e-stop")
    rig.pad.set_button(BACK, True)
    rig.pad.set_button(START, True)
    rig.hold(1.4)
    rig.pad.set_button(BACK, False)
    rig.pad.set_button(START, False)
    rig.hold(0.5)
    assert rig.system.observer.estopped[-1], "the pad released a stop it did not engage"
    wait_for(lambda: rig.teleop._intent.status.estopped, 5.0, "the pad to show the stop again")
    response = rig.system.observer.call("/arm_controller/reset")  # the unnamed source releases its own
    assert response is not None and response.success, response
    wait_for(lambda: not rig.system.observer.estopped[-1], 5.0, "the release")


def test_episode_buttons_publish_episode_events(rig: Rig) -> None:
    count = len(rig.events)
    rig.tap(START)
    wait_for(lambda: any(e.event == "start" for e in rig.events[count:]), 5.0, "a start request")


@contextmanager
def joy_teleop(probe_name: str) -> Iterator[tuple[TeleopNode, Any, list[TwistStamped]]]:
    """An active teleop node on ``input: joy`` (the UR5) in a domain of its own: (node, Joy publisher, twists)."""
    import rclpy
    from rclpy.context import Context

    from robot_brain.embodiment.catalog import bundled_arm_path

    context = Context()
    rclpy.init(context=context, domain_id=next_domain())
    teleop = TeleopNode(context=context, parameter_overrides=[
        Parameter("input", value="joy"), Parameter("urdf_path", value=str(bundled_arm_path("ur5")))])
    probe = rclpy.create_node(probe_name, context=context)
    twists: list[TwistStamped] = []
    probe.create_subscription(TwistStamped, "/teleop/twist", twists.append, qos_profile_sensor_data)
    joy = probe.create_publisher(Joy, "/joy", 10)
    executor = SingleThreadedExecutor(context=context)
    for node in (teleop, probe):
        executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        assert teleop.trigger_configure() == TransitionCallbackReturn.SUCCESS, teleop.startup_error
        assert teleop.trigger_activate() == TransitionCallbackReturn.SUCCESS, teleop.startup_error
        yield teleop, joy, twists
    finally:
        executor.shutdown(timeout_sec=2.0)
        thread.join(timeout=5.0)
        teleop.destroy_node()
        probe.destroy_node()
        context.try_shutdown()


def test_joy_input_turns_joy_messages_into_twists_with_the_same_rules(tmp_path: Path) -> None:
    with joy_teleop("joy_probe") as (_teleop, joy, twists):

        def send(deadman: bool, left_y: float, seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                buttons = [0] * 15
                buttons[LEFT_SHOULDER] = int(deadman)
                joy.publish(Joy(axes=[0.0, left_y, 0.0, 0.0, 0.0, 0.0], buttons=buttons))
                time.sleep(0.02)

        send(False, 0.0, 0.3)  # seen released first (arming)
        send(True, 1.0, 0.5)
        wait_for(lambda: any(t.twist.linear.x > 0.05 for t in twists), 5.0, "a +x twist")
        assert all(t.header.frame_id == "base_link" for t in twists if t.twist.linear.x > 0.0)
        count = len(twists)
        send(False, 1.0, 0.5)  # dead-man released, stick still pushed
        # Joy messages sent with the dead-man held may still be on their way when `count` is taken
        # (a busy machine): those give motion twists first. Then exactly one zero twist, and nothing more.
        later = [t.twist.linear.x for t in twists[count:]]
        assert later and later[-1] == 0.0 and all(x > 0.05 for x in later[:-1]), later


def test_joy_messages_of_a_layout_the_map_cannot_use_are_refused_not_a_fault() -> None:
    """Bad input is never a node fault: a 2-axis Joy stream is dropped and counted, nothing moves, and a
    pad of the right layout afterwards drives again without a restart."""
    with joy_teleop("joy_probe_bad_layout") as (teleop, joy, twists):

        def send(axes: list[float], deadman: bool, seconds: float, buttons: int = 15) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pressed = [0] * buttons
                if deadman and buttons > LEFT_SHOULDER:
                    pressed[LEFT_SHOULDER] = 1
                joy.publish(Joy(axes=axes, buttons=pressed))
                time.sleep(0.02)

        send([0.0, 1.0], True, 0.6, buttons=2)  # a joystick with two axes and two buttons
        wait_for(lambda: teleop.diagnostics()[0] == b"\x02", 5.0, "a diagnostics ERROR")
        _level, message, values, _ = teleop.diagnostics()
        assert "Joy messages refused" in message and int(values["joy_messages_refused"]) > 0
        assert teleop.active and not teleop.fault, teleop.status
        assert not any(t.twist.linear.x > 0.0 for t in twists), "a refused message moved the arm"
        send([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], False, 0.3)  # the right pad: seen released first
        send([0.0, 1.0, 0.0, 0.0, 0.0, 0.0], True, 0.5)
        wait_for(lambda: any(t.twist.linear.x > 0.05 for t in twists), 5.0, "a +x twist from the right pad")
        assert teleop.diagnostics()[0] != b"\x02"
