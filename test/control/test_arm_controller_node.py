"""The arm_controller node over real DDS, on real URDF arms, against a fake position-controlled cell."""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pinocchio as pin
import pytest
from control_harness import bench
from lifecycle_msgs.msg import Transition
from test_chunks_and_actions import quaternion

pytestmark = [pytest.mark.dds, pytest.mark.timeout(60)]


def moved(b, target: np.ndarray, atol: float = 2e-3, timeout: float = 5.0) -> None:
    b.wait_for(lambda: np.allclose(b.position(), target, atol=atol), timeout, f"the arm to reach {target}")


@pytest.mark.parametrize("arm_name", ["panda", "ur5"])
def test_joint_position_chunk_drives_the_arm_in_controller_order(arm_name: str) -> None:
    with bench(arm_name) as b:
        target = b.position() + 0.15
        names = tuple(reversed(b.arm.spec.joint_names))
        b.fake.chunks.publish(b.fake.chunk("joint_position", np.tile(target[::-1], (10, 1)), joint_names=names))
        moved(b, target)
        commands = b.fake.commands()
        limits = b.node.controller.filter.limits
        assert np.all(commands >= limits.lower) and np.all(commands <= limits.upper)


def test_end_effector_action_spaces_move_the_tool_where_they_say() -> None:
    with bench("panda") as b:
        kin = b.arm.kinematics
        start = kin.fk(b.position())
        # ee_pose_delta: 4 cm along x and a 0.2 rad yaw, relative to the observation-time pose.
        rotation = pin.exp3(np.array([0.0, 0.0, 0.2]))
        delta = np.r_[0.04, 0.0, 0.0, quaternion(rotation)]
        b.fake.chunks.publish(b.fake.chunk("ee_pose_delta", np.tile(delta, (10, 1))))
        b.wait_for(lambda: np.allclose(kin.fk(b.position())[:3, 3], start[:3, 3] + delta[:3], atol=2e-3), 5.0,
                   "ee_pose_delta to be reached")
        assert np.allclose(kin.fk(b.position())[:3, :3], rotation @ start[:3, :3], atol=5e-3)
        # ee_pose (absolute): back to the start pose.
        pose = np.r_[start[:3, 3], quaternion(start[:3, :3])]
        b.fake.chunks.publish(b.fake.chunk("ee_pose", np.tile(pose, (10, 1))))
        b.wait_for(lambda: np.allclose(kin.fk(b.position()), start, atol=2e-3), 5.0, "ee_pose to be reached")
        # ee_twist: 0.1 m/s along z for 10 x 0.05 s = 5 cm up.
        here = kin.fk(b.position())[:3, 3]
        b.fake.chunks.publish(b.fake.chunk("ee_twist", np.tile([0, 0, 0.1, 0, 0, 0], (10, 1))))
        b.wait_for(lambda: np.allclose(kin.fk(b.position())[:3, 3], here + np.array([0, 0, 0.05]), atol=2e-3), 5.0,
                   "ee_twist to be integrated")
        # joint_delta relative to the observation.
        q = b.position()
        b.fake.chunks.publish(b.fake.chunk("joint_delta", np.tile(np.full(7, -0.05), (10, 1))))
        moved(b, q - 0.05)


def test_streamed_chunks_blend_without_stopping_at_the_seams() -> None:
    with bench("panda", blend_mode="rtc") as b:
        q0 = b.position()
        start = time.monotonic()
        while time.monotonic() - start < 1.5:  # a 20 Hz policy, horizon 10, a ramp at 0.2 rad/s
            t = time.monotonic() - start + 0.05 * np.arange(10)
            targets = q0 + 0.2 * t[:, None]
            b.fake.chunks.publish(b.fake.chunk("joint_position", targets))
            time.sleep(0.05)
        times = np.array([t for t, _ in b.fake.recorded.commands])
        commands = b.fake.commands()
        period = b.node.controller.config.period
        window = (times > times[0] + 0.5) & (times < times[0] + 1.2)  # away from start and end
        velocity = np.diff(commands[window, 0]) / period
        assert np.all(velocity > 0.1), f"the command stalled at a seam (min velocity {velocity.min()})"
        # Successive commands differ by one filtered step: no jump at any seam.
        limits = b.node.controller.filter.limits
        assert np.all(np.abs(np.diff(commands, axis=0)) <= limits.velocity * period * 1.001 + 1e-12)
        assert b.node.controller.counters.chunks_accepted >= 25


def test_chunk_watchdog_decelerates_holds_and_repeats_the_halt() -> None:
    with bench("panda", chunk_timeout=0.2, halt_messages=4) as b:
        q0 = b.position()
        b.fake.chunks.publish(b.fake.chunk("joint_position", np.tile(q0 + 1.0, (1, 1)), dt=1.0))
        b.wait_for(lambda: b.node.controller.source == "hold", 3.0, "the chunk watchdog")
        final = b.wait_until_still()
        assert not np.allclose(final, q0 + 1.0, atol=0.05), "the watchdog did not stop the motion"
        commands = b.fake.commands()
        still = np.all(commands == commands[-1], axis=1)
        assert still[-4:].all() and np.count_nonzero(still) == 5, "expected the halt once plus 4 repeats"
        accel = np.diff(commands, n=2, axis=0) / b.node.controller.config.period ** 2
        assert np.all(np.abs(accel) <= b.node.controller.filter.limits.acceleration * 1.001)
        assert b.node.controller.counters.chunk_timeouts == 1


def test_stale_joint_states_hold_and_report_a_fault() -> None:
    with bench("ur5", state_timeout=0.1) as b:
        q0 = b.position()
        b.fake.chunks.publish(b.fake.chunk("joint_position", np.tile(q0 + 1.0, (1, 1)), dt=1.0))
        b.wait_for(lambda: b.node.controller.filter.moving, 3.0, "motion")
        b.fake.publishing = False
        b.wait_for(lambda: b.node.controller.source == "stale_state", 2.0, "the stale-state watchdog")
        assert "stale" in b.node.controller.fault
        final = b.wait_until_still()
        assert not np.allclose(final, q0 + 1.0, atol=0.05)
        assert b.node.controller.counters.stale_state_events == 1


def test_estop_stops_until_reset_and_is_latched() -> None:
    with bench("panda") as b:
        q0 = b.position()
        b.fake.chunks.publish(b.fake.chunk("joint_position", np.tile(q0 + 0.8, (1, 1)), dt=1.0))
        b.wait_for(lambda: b.node.controller.filter.moving, 3.0, "motion")
        assert b.fake.trigger("estop").success
        b.wait_for(lambda: b.fake.recorded.estopped[-1:] == [True], 2.0, "the latched estopped topic")
        stopped_at = b.wait_until_still()
        # Nothing moves while stopped, whatever arrives.
        b.fake.chunks.publish(b.fake.chunk("joint_position", np.tile(q0 - 0.5, (10, 1))))
        b.fake.twist([0.1, 0, 0, 0, 0, 0])
        time.sleep(0.4)
        assert np.array_equal(b.position(), stopped_at)
        assert b.node.controller.counters.chunks_rejected.get("estopped", 0) >= 1
        response = b.fake.trigger("reset")
        assert response.success and response.message == "e-stop released by unnamed"
        b.wait_for(lambda: b.fake.recorded.estopped[-1:] == [False], 2.0, "estopped false")
        time.sleep(0.3)
        assert np.array_equal(b.position(), stopped_at), "a command sent before the reset was executed"
        b.fake.chunks.publish(b.fake.chunk("joint_position", np.tile(q0, (10, 1))))
        moved(b, q0)


def test_an_estop_is_released_only_by_its_sources_or_an_operator_reset_that_says_who() -> None:
    """A real cell's rule: every source that engaged the stop releases its own, or an operator resets, by name."""
    with bench("panda") as b:
        q0 = b.position()
        b.fake.chunks.publish(b.fake.chunk("joint_position", np.tile(q0 + 0.8, (1, 1)), dt=1.0))
        b.wait_for(lambda: b.node.controller.filter.moving, 3.0, "motion")
        engaged = b.fake.estop_service("engage_estop", "teleop:/pad_a")
        assert engaged.success and list(engaged.engaged_by) == ["teleop:/pad_a"]
        stopped_at = b.wait_until_still()

        # Anyone else's release is refused, and says who holds the stop.
        foreign = b.fake.trigger("reset")  # std_srvs/Trigger: the unnamed source
        assert not foreign.success and "teleop:/pad_a" in foreign.message
        other_pad = b.fake.estop_service("release_estop", "teleop:/pad_b")
        assert not other_pad.success and list(other_pad.engaged_by) == ["teleop:/pad_a"]
        unnamed_reset = b.fake.estop_service("release_estop", "", operator_reset=True)
        assert not unnamed_reset.success and "who" in unnamed_reset.message

        # A second source holds it too: the first one's release is not enough.
        assert b.fake.estop_service("engage_estop", "pendant").success
        first = b.fake.estop_service("release_estop", "teleop:/pad_a")
        assert not first.success and list(first.engaged_by) == ["pendant"]
        assert b.node.controller.estopped and b.fake.recorded.estopped[-1] is True
        b.fake.chunks.publish(b.fake.chunk("joint_position", np.tile(q0, (10, 1))))
        time.sleep(0.3)
        assert np.array_equal(b.position(), stopped_at), "the arm moved while a source still held the stop"

        # An operator reset releases every stop and names who did it.
        reset = b.fake.estop_service("release_estop", "operator:op-3f2a9c", operator_reset=True)
        assert reset.success and list(reset.engaged_by) == [] and "operator:op-3f2a9c" in reset.message
        assert "pendant" in reset.message
        b.wait_for(lambda: b.fake.recorded.estopped[-1:] == [False], 2.0, "estopped false")
        b.fake.chunks.publish(b.fake.chunk("joint_position", np.tile(q0, (10, 1))))
        moved(b, q0)


def test_a_twist_sent_before_an_estop_does_not_move_the_arm_after_the_release() -> None:
    """Teleop commands carry their epoch in their stamp: one in flight across a stop and release is refused."""
    with bench("panda", teleop_timeout=0.3) as b:
        start = b.position()
        sent_before_the_stop = b.fake.get_clock().now().to_msg()
        assert b.fake.trigger("estop").success
        assert b.fake.trigger("reset").success
        b.wait_for(lambda: b.fake.recorded.estopped[-1:] == [False], 2.0, "estopped false")
        refused = b.node.controller.counters.teleop_before_epoch
        for _ in range(10):  # delivered late: a twist the operator sent before pressing stop
            b.fake.twist([0.0, 0.0, 0.05, 0.0, 0.0, 0.0], stamp=sent_before_the_stop)
            time.sleep(0.02)
        b.wait_for(lambda: b.node.controller.counters.teleop_before_epoch >= refused + 5, 3.0, "refused twists")
        time.sleep(0.3)
        assert np.allclose(b.position(), start, atol=1e-9), "a twist sent before the e-stop moved the arm"
        deadline = time.monotonic() + 3.0
        while np.allclose(b.position(), start, atol=1e-4):  # one sent now moves it
            assert time.monotonic() < deadline, "a twist sent after the release did not move the arm"
            b.fake.twist([0.0, 0.0, 0.05, 0.0, 0.0, 0.0])
            time.sleep(0.02)


def test_lifecycle_transitions_and_deactivation_brakes_to_rest() -> None:
    with bench("xarm7", activate=False) as b:
        assert b.fake.lifecycle_state() == "unconfigured"
        b.activate()
        assert b.fake.lifecycle_state() == "active"
        q0 = b.position()
        b.fake.chunks.publish(b.fake.chunk("joint_position", np.tile(q0 + 1.0, (1, 1)), dt=1.0))
        b.wait_for(lambda: b.node.controller.filter.moving, 3.0, "motion")
        assert b.fake.transition(Transition.TRANSITION_DEACTIVATE)
        assert b.fake.lifecycle_state() == "inactive"
        assert not b.node.loop.running
        final = b.wait_until_still()
        commands = b.fake.commands()
        assert np.array_equal(commands[-1], final) and np.all(commands[-5:] == final)
        accel = np.diff(commands, n=2, axis=0) / b.node.controller.config.period ** 2
        assert np.all(np.abs(accel) <= b.node.controller.filter.limits.acceleration * 1.001)
        assert b.fake.transition(Transition.TRANSITION_ACTIVATE)
        b.fake.chunks.publish(b.fake.chunk("joint_position", np.tile(q0, (10, 1))))
        moved(b, q0)
        assert b.fake.transition(Transition.TRANSITION_DEACTIVATE)
        assert b.fake.transition(Transition.TRANSITION_CLEANUP)
        assert b.fake.lifecycle_state() == "unconfigured"


def test_teleop_twist_moves_the_tool_and_times_out() -> None:
    with bench("panda", teleop_timeout=0.15) as b:
        kin = b.arm.kinematics
        start = kin.fk(b.position())
        for _ in range(40):  # 0.05 m/s along y in the base frame for ~0.8 s
            b.fake.twist([0.0, 0.05, 0.0, 0.0, 0.0, 0.0], frame_id=b.arm.spec.base_link)
            time.sleep(0.02)
        b.wait_for(lambda: b.node.controller.source in ("hold", "idle"), 2.0, "the teleop timeout")
        end = kin.fk(b.wait_until_still())
        motion = end[:3, 3] - start[:3, 3]
        assert 0.02 < motion[1] < 0.06 and abs(motion[0]) < 5e-3 and abs(motion[2]) < 5e-3, motion
        assert b.node.controller.counters.teleop_timeouts == 1
        # Tool frame: +z of the Panda's TCP points down when the hand faces the table.
        before = kin.fk(b.position())
        for _ in range(20):
            b.fake.twist([0.0, 0.0, 0.05, 0.0, 0.0, 0.0], frame_id=b.arm.spec.tip_link)
            time.sleep(0.02)
        after = kin.fk(b.wait_until_still())
        direction = (after[:3, 3] - before[:3, 3]) / np.linalg.norm(after[:3, 3] - before[:3, 3])
        assert direction @ before[:3, 2] > 0.95
        b.fake.twist([0.0, 0.0, 0.05, 0.0, 0.0, 0.0], frame_id="camera")
        time.sleep(0.2)
        assert b.node.controller.counters.teleop_rejected >= 1


def test_trajectory_mode_and_gripper_channel() -> None:
    with bench("panda", command_mode="trajectory", publish_rate=100.0) as b:
        q0 = b.position()
        # "Closed", streamed: the gripper starts from its measured (open) position and closes at its rate
        # limit, 0.5 s for a full stroke, as long as the chunk watchdog (0.5 s after the last chunk) allows.
        actions = np.tile(q0 + 0.1, (20, 1))
        with b.streaming(lambda: b.fake.chunk("joint_position", actions, gripper=np.ones(20))):
            moved(b, q0 + 0.1)
            b.wait_for(lambda: b.fake.recorded.gripper and np.allclose(b.fake.recorded.gripper[-1][1], [0.0],
                                                                       atol=5e-4),
                       3.0, "the gripper to close (Panda fingers closed at 0 m)")
        trajectory = b.fake.recorded.trajectories[-1][1]
        assert list(trajectory.joint_names) == list(b.arm.spec.joint_names)
        assert trajectory.points[0].time_from_start.nanosec == 10_000_000
        # Closing, never opening, and never faster than 2 strokes/s of the 0.04 m finger: 0.8 mm per 100 Hz message.
        closing = [values[0] for _, values in b.fake.recorded.gripper]
        assert all(0.0 <= a - later <= 0.04 * 2.0 / 100.0 + 1e-9 for a, later in itertools.pairwise(closing)), closing
        assert len(b.fake.recorded.trajectories) < 0.3 * b.node.loop.stats.cycles  # 100 Hz of 500 Hz


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"controller_joints": ["panda_joint1", "elbow"]}, "unknown: ['elbow']"),
        ({"urdf_path": ""}, "expected a robot description"),
        ({"command_mode": "velocity"}, "command_mode must be one of"),
        ({"control_rate": 5000.0}, "control_rate must be in"),
    ],
)
def test_bad_configuration_fails_configure_with_a_clear_message(parameters: dict[str, object], message: str) -> None:
    with bench("panda", activate=False, **parameters) as b:
        assert not b.fake.transition(Transition.TRANSITION_CONFIGURE)
        assert message in b.node._status
        assert b.fake.lifecycle_state() == "unconfigured"


def test_joint_jog_moves_only_the_named_joint_and_times_out() -> None:
    from robot_brain_msgs.msg import JointJog

    with bench("panda") as b:
        publisher = b.fake.create_publisher(JointJog, "/teleop/joint_jog", 10)
        start = b.position()
        name = b.arm.spec.joint_names[2]
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            msg = JointJog(joint_names=[name], velocities=[0.3])
            msg.header.stamp = b.fake.get_clock().now().to_msg()
            publisher.publish(msg)
            time.sleep(0.02)
        end = b.wait_until_still()
        moved_by = end - start
        assert moved_by[2] > 0.05, moved_by
        assert np.allclose(np.delete(moved_by, 2), 0.0, atol=1e-9), moved_by
        bad = JointJog(joint_names=["not_a_joint"], velocities=[0.3])
        publisher.publish(bad)
        b.wait_for(lambda: b.node.controller.counters.teleop_rejected > 0, 5.0, "the bad jog to be counted")


def test_teleop_gripper_request_closes_the_gripper_rate_limited() -> None:
    from std_msgs.msg import Float64

    with bench("panda") as b:
        publisher = b.fake.create_publisher(Float64, "/teleop/gripper", 10)
        b.wait_for(lambda: publisher.get_subscription_count() > 0, 10.0, "the controller's gripper subscription")
        open_, closed = b.arm.spec.gripper_open_closed()
        publisher.publish(Float64(data=1.0))
        b.wait_for(lambda: b.fake.recorded.gripper and abs(b.fake.recorded.gripper[-1][1][0] - closed[0]) < 1e-9,
                   5.0, "the gripper to close")
        # Seeded from the measured (open) gripper: every command moves at most the rate limit, the first included.
        values = [float(open_[0])] + [float(v[0]) for _, v in b.fake.recorded.gripper]
        steps = np.abs(np.diff(values))
        span = abs(float(open_[0] - closed[0]))
        period = 1.0 / b.node.controller.config.rate_hz
        assert len(values) > 10 and np.all(steps <= span * b.node.controller.config.gripper_max_speed * period + 1e-9)


def test_a_control_loop_that_raises_brakes_to_rest_reports_and_takes_the_error_path() -> None:
    with bench("panda", activate=False) as b:
        assert b.fake.transition(1), "configure failed"
        controller, loop = b.node.controller, b.node.loop
        failing = threading.Event()
        cycle = controller.cycle

        def cycle_that_can_fail(now: float) -> object:  # fault injection: the cycle raises once asked to
            if failing.is_set():
                raise RuntimeError("injected control fault")
            return cycle(now)

        loop._compute = cycle_that_can_fail
        assert b.fake.transition(3), "activate failed"
        target = b.position() + 0.3
        b.fake.chunks.publish(b.fake.chunk("joint_position", np.tile(target[::-1], (10, 1)),
                                           joint_names=tuple(reversed(b.arm.spec.joint_names))))
        b.wait_for(lambda: controller.source == "policy" and controller.filter.moving, 5.0, "motion")
        failing.set()
        b.wait_for(lambda: b.node.fault.startswith("control loop failed: RuntimeError: injected control fault"), 5.0,
                   "the fault")
        end = b.wait_until_still()
        commands = b.fake.commands()
        limits = controller.filter.limits
        assert np.all(commands >= limits.lower - 1e-9) and np.all(commands <= limits.upper + 1e-9)
        velocity = np.diff(commands, axis=0) * controller.config.rate_hz
        assert np.all(np.abs(velocity) <= limits.velocity + 1e-6)
        assert np.all(np.abs(np.diff(velocity, axis=0)) * controller.config.rate_hz <= limits.acceleration + 1e-6)
        assert not np.allclose(end, target, atol=1e-3), "it braked instead of finishing the motion"
        b.wait_for(lambda: b.fake.lifecycle_state() == "unconfigured", 5.0, "the error path to end unconfigured")
