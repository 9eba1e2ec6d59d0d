"""The arm controller's core: sources, watchdogs, e-stop and the safety filter, one cycle at a time (ROS-free).

:class:`ArmController` is everything the node does except talking DDS. Callbacks feed it
(``on_joint_state``, ``on_gripper_state``, ``on_chunk``, ``on_teleop``, ``on_joint_jog``,
``on_teleop_gripper``, ``estop``, ``release``); the control loop calls :meth:`ArmController.cycle`
once per period and publishes what it returns, and switches to :meth:`ArmController.brake`
if ``cycle`` ever raises. Chunk conversion (IK) happens on the callback side, so a cycle
only samples, filters and decides.

Source priority in a cycle, highest first:

1. e-stop engaged, or the node is stopping (deactivate): brake to rest, hold;
2. ``/joint_states`` stale (older than ``state_timeout``): brake, hold, fault;
3. teleop (a twist or a joint jog, the newest of the two) younger than ``teleop_timeout``:
   follow it (it overrides and clears the policy);
4. a policy chunk received within ``chunk_timeout``: follow the blended chunks;
5. otherwise: brake to rest and hold (a watchdog timeout when a source just lapsed).

Every branch ends in the one :class:`SafetyFilter`, so a halt is as limited as a policy.

The cycle allocates nothing in the steady state (test/control/test_cycle_allocations.py):
the :class:`Command` and every buffer are reused, inputs are read lock-free, and the scalar
loops are ``while`` loops (a ``for`` loop's iterator is an allocation). Work that needs numpy
or Pinocchio runs only on events: a chunk taking effect, a new teleop input, and the
kinematics refresh every ``SINGULARITY_CHECK_S`` (teleop's joint velocity from the twist, the
Jacobian's condition number), since the Jacobian changes little in a few milliseconds.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace

import numpy as np

from robot_brain.control.actions import ActionMapper, condition_scale, twist_in_base
from robot_brain.control.buffers import Inbox, Latest, StateBuffer
from robot_brain.control.chunks import Blender, ChunkError, JointChunk, RawChunk
from robot_brain.control.estop import UNNAMED, EStopAnswer, EStopLatch
from robot_brain.control.safety import LIMIT_NAMES, GripperFilter, SafetyFilter, SafetyLimits
from robot_brain.control.stall import StallMonitor
from robot_brain.embodiment import Arm, ArmKinematics
from robot_brain.errors import ConfigurationError

#: How often the Jacobian (teleop's twist-to-joint mapping, the condition number) is re-evaluated, s.
SINGULARITY_CHECK_S = 0.01
SOURCES = ("idle", "policy", "teleop", "hold", "estop", "stale_state", "stopping", "fault")


@dataclass(frozen=True)
class ControllerConfig:
    """Tuning of the controller core (the node's parameters of the same names)."""

    rate_hz: float = 500.0
    chunk_timeout: float = 0.5
    teleop_timeout: float = 0.2
    state_timeout: float = 0.1
    future_tolerance: float = 0.1
    halt_messages: int = 4
    blend_mode: str = "rtc"
    blend_time: float = 0.1
    rtc_commit_time: float = 0.0
    ensemble_decay: float = 5.0
    interpolation: str = "cubic"
    teleop_max_linear_speed: float = 0.25
    teleop_max_angular_speed: float = 1.0
    teleop_damping: float = 1e-4
    singularity_lower_threshold: float = 50.0
    singularity_hard_threshold: float = 200.0
    gripper_max_speed: float = 2.0
    gripper_open: tuple[float, ...] = (0.0,)
    gripper_closed: tuple[float, ...] = (1.0,)
    publish_every: int = 1
    stall_window: float = 1.0
    stall_min_residual: float = 0.01
    resolve_on_stall: bool = True

    def __post_init__(self) -> None:
        if not 1.0 <= self.rate_hz <= 2000.0:
            raise ConfigurationError(f"control_rate must be in [1, 2000] Hz, found {self.rate_hz}")
        for name in ("chunk_timeout", "teleop_timeout", "state_timeout", "blend_time", "stall_window",
                     "stall_min_residual"):
            if not getattr(self, name) > 0.0:
                raise ConfigurationError(f"{name} must be > 0 s, found {getattr(self, name)}")
        if self.blend_mode not in ("ensemble", "rtc"):
            raise ConfigurationError(f"blend_mode must be 'ensemble' or 'rtc', found '{self.blend_mode}'")
        if self.interpolation not in ("linear", "cubic"):
            raise ConfigurationError(f"interpolation must be 'linear' or 'cubic', found '{self.interpolation}'")
        if not 0.0 < self.singularity_lower_threshold < self.singularity_hard_threshold:
            raise ConfigurationError(
                "expected 0 < singularity_lower_threshold < singularity_hard_threshold, found "
                f"{self.singularity_lower_threshold} and {self.singularity_hard_threshold}"
            )
        if self.publish_every < 1:
            raise ConfigurationError(f"publish_every must be >= 1 cycle, found {self.publish_every}")
        if len(self.gripper_open) != len(self.gripper_closed) or not self.gripper_open:
            raise ConfigurationError(
                f"gripper open/closed positions need the same non-zero length, found "
                f"{len(self.gripper_open)} and {len(self.gripper_closed)}"
            )

    @property
    def period(self) -> float:
        return 1.0 / self.rate_hz


@dataclass
class Command:
    """What one cycle asks the node to publish (arm order); ``None`` fields mean nothing to send.

    The controller reuses one instance and its arrays (they are the safety filter's state):
    publish before the next cycle, copy to keep.
    """

    positions: np.ndarray | None = None
    velocities: np.ndarray | None = None
    gripper: list[float] | None = None

    def clear(self) -> None:
        self.positions = None
        self.velocities = None
        self.gripper = None


class QuietAfter:
    """Publish while something changes, then ``count`` more times, then stay quiet (MoveIt Servo's halt repeats)."""

    def __init__(self, count: int) -> None:
        self.count = max(count, 1)
        self._remaining = self.count

    @property
    def quiet(self) -> bool:
        return self._remaining == 0

    def silence(self) -> None:
        """Nothing to repeat (e.g. a value that was measured, not commanded)."""
        self._remaining = 0

    def due(self, changed: bool) -> bool:
        if changed:
            self._remaining = self.count
            return True
        if self._remaining > 0:
            self._remaining -= 1
            return True
        return False


@dataclass
class Counters:
    """Event counts reported in diagnostics."""

    chunks_accepted: int = 0
    chunks_rejected: dict[str, int] = field(default_factory=dict)
    ik_waypoints_dropped: int = 0
    teleop_rejected: int = 0
    teleop_before_epoch: int = 0
    gripper_rejected: int = 0
    chunk_timeouts: int = 0
    teleop_timeouts: int = 0
    stale_state_events: int = 0
    singularity_slowdowns: int = 0
    singularity_stops: int = 0
    fault_brakes: int = 0

    def reject(self, reason: str) -> None:
        self.chunks_rejected[reason] = self.chunks_rejected.get(reason, 0) + 1

    def rejections(self) -> dict[str, int]:
        """A copy of the rejection counts, safe to iterate while the loop thread counts a new reason.

        ``dict.copy`` runs in C without releasing the GIL; iterating the live dict from another
        thread raises "dictionary changed size during iteration" when a first rejection of a
        kind lands meanwhile (the diagnostics timer did that).
        """
        return self.chunks_rejected.copy()


@dataclass(frozen=True)
class Teleop:
    """A teleop input: a tip twist (base or tool frame, speed-clamped) or joint velocities (a jog)."""

    values: np.ndarray
    tool_frame: bool = False
    joint_space: bool = False

    @property
    def twist(self) -> np.ndarray:
        return self.values


def gripper_closed_fraction(positions: np.ndarray, open_: np.ndarray, closed: np.ndarray) -> float:
    """How closed a gripper is, in [0, 1], from its driven joints' positions (mean over joints).

    ``open_``/``closed``: each joint's open and closed position (``ArmSpec.gripper_open_closed``,
    swapped when the node's ``gripper_invert`` is set); joints whose two are equal are skipped.
    NaN when no joint tells (none movable, or a non-finite position).
    """
    positions, open_, closed = (np.asarray(x, dtype=float) for x in (positions, open_, closed))
    span = closed - open_
    usable = span != 0.0
    if positions.shape != open_.shape or not usable.any():
        return math.nan
    fraction = float(np.mean((positions[usable] - open_[usable]) / span[usable]))
    return min(max(fraction, 0.0), 1.0) if math.isfinite(fraction) else math.nan


class ArmController:
    """Policy chunks and teleop input in, safe joint commands out; see the module docstring."""

    def __init__(self, arm: Arm, limits: SafetyLimits, config: ControllerConfig | None = None) -> None:
        self.config = config = config or ControllerConfig()
        self.spec = arm.spec
        self.dof = dof = arm.spec.dof
        if limits.dof != dof:
            raise ConfigurationError(f"safety limits for {limits.dof} joints, the arm has {dof}")
        # Pinocchio data is not thread-safe: the loop gets its own kinematics, the chunk converter its own.
        self.kinematics = ArmKinematics(arm.spec, arm.description, arm.tree)
        self.state = StateBuffer(dof)
        # The chunk converter's own kinematics (Pinocchio data is per thread), bounded by the safety
        # filter's limits (the URDF's less the margin): an IK solution inside the margin would be
        # clamped by the filter, and the arm would stall there with no reason given.
        self.mapper = ActionMapper(
            arm.spec, ArmKinematics(replace(arm.spec, lower=limits.lower, upper=limits.upper), arm.description,
                                    arm.tree), self.state.at, interpolation=config.interpolation,
            stall_monitor=StallMonitor(config.stall_window, config.stall_min_residual),
            resolve_on_stall=config.resolve_on_stall)
        self.filter = SafetyFilter(limits, config.period, tip_position=self._tip_position)
        self.gripper = GripperFilter(config.gripper_max_speed, config.period)
        self.blender = Blender(config.blend_mode, config.blend_time, config.rtc_commit_time, config.ensemble_decay)
        self._gripper_open: list[float] = [float(x) for x in config.gripper_open]
        self._gripper_span: list[float] = [
            float(c) - float(o) for o, c in zip(config.gripper_open, config.gripper_closed, strict=True)
        ]
        self._gripper_values = [0.0] * len(self._gripper_open)
        self._inbox: Inbox[JointChunk] = Inbox()
        self._teleop: Latest[Teleop] = Latest()
        self._teleop_gripper: Latest[float] = Latest()
        self._gripper_state: Latest[float] = Latest()
        self.counters = Counters()
        self.source = "idle"
        self.fault = "no joint state received yet"
        self.condition_number = math.nan
        self._estopped = threading.Event()
        # e-stop and reset start a new epoch; a chunk converted off the callback thread (the
        # node's cooperative mode) is accepted only if no e-stop or reset happened meanwhile,
        # and a teleop command sent (stamped) before the epoch began is refused.
        self.epoch = 0
        self._epoch_began = -math.inf
        self._latch = EStopLatch()
        self._gate = threading.Lock()
        self._stopping = threading.Event()
        self._flush = threading.Event()
        self._last_stamp = -math.inf
        self._last_chunk_arrival = -math.inf
        self._was_teleop = False
        self._policy_in_ee_space = False
        self._singularity_every = max(1, round(SINGULARITY_CHECK_S * config.rate_hz))
        self._singularity_countdown = 0
        self._singularity_scale_value = 1.0
        self._singular_since = math.nan  # loop time the singularity guard began holding the policy
        self._singular_last = -math.inf  # and the last cycle it held it
        self._arm_publish = QuietAfter(config.halt_messages)
        self._gripper_publish = QuietAfter(config.halt_messages)
        self._last_gripper: float | None = None
        self._gripper_goal: float | None = None
        self._gripper_seed_pending = True
        self._teleop_gripper_seen = 0
        self._publish_countdown = config.publish_every
        # Reused every cycle: the command, the blended target (arm joints + gripper channel),
        # teleop's joint velocity (refreshed on a new input and every SINGULARITY_CHECK_S).
        self._command = Command()
        self._brake_command = Command()
        self._target = [0.0] * (dof + 1)
        self._teleop_velocity = [0.0] * dof
        self._teleop_scale = 1.0
        self._teleop_seen = -1
        self._teleop_countdown = 0
        self._stale_fault = ""

    # -- inputs (any thread) ------------------------------------------------------------

    def on_joint_state(self, positions: np.ndarray, stamp: float, received: float) -> None:
        """A measurement in arm order; ``stamp`` is the measurement time, ``received`` the arrival (loop clock)."""
        self.state.update(positions, stamp, received)

    def on_gripper_state(self, closed_fraction: float, received: float) -> bool:
        """The measured gripper opening in [0, 1] (1 closed; see :func:`gripper_closed_fraction`).

        Seeds the gripper's rate limit at each activation, so the first command after it
        starts from where the gripper is. Non-finite values are rejected and counted.
        """
        if not math.isfinite(closed_fraction):
            self.counters.gripper_rejected += 1
            return False
        self._gripper_state.put(min(max(float(closed_fraction), 0.0), 1.0), received)
        return True

    def on_chunk(
        self, chunk: RawChunk, now: float, epoch: int | None = None, *, arrival: float | None = None
    ) -> str | None:
        """Validate, align and convert a chunk for the loop; returns the rejection reason, or None if accepted.

        ``now`` is the loop time of this call: the chunk is judged (stale, future, which
        waypoints are past) by its age *now*, so one that waited in a queue is judged as it
        is when it would take effect. ``arrival``: when it reached the node (default ``now``),
        the chunk watchdog's clock. ``epoch``: the :attr:`epoch` when the chunk was received;
        a chunk received before an e-stop or reset that happened during its conversion is
        rejected (``estopped``).
        """
        received = now if arrival is None or arrival > now else arrival
        try:
            if self._estopped.is_set():
                raise ChunkError("estopped", "e-stop engaged: chunks are ignored until reset")
            if chunk.stamp > now + self.config.future_tolerance:
                raise ChunkError("future", f"stamp {chunk.stamp - now:.3f} s in the future")
            if chunk.stamp < self._last_stamp:
                raise ChunkError("out_of_order", "stamp older than the last accepted chunk")
            end = chunk.stamp + max(chunk.horizon - 1, 0) * chunk.dt if math.isfinite(chunk.dt) else chunk.stamp
            if now - end > self.config.chunk_timeout:
                raise ChunkError("stale", f"last waypoint {now - end:.3f} s in the past")
            joint_chunk, dropped = self.mapper.convert(chunk, now)
            joint_chunk.received = received
            with self._gate:
                if epoch is not None and epoch != self.epoch:
                    raise ChunkError("estopped", "received before an e-stop or reset")
                self._last_stamp = chunk.stamp
                self._inbox.put(joint_chunk)
        except ChunkError as error:
            self.counters.reject(error.reason)
            return error.reason
        self.counters.chunks_accepted += 1
        self.counters.ik_waypoints_dropped += dropped
        return None

    def on_teleop(self, twist: np.ndarray, tool_frame: bool, received: float, sent: float | None = None) -> bool:
        """A streaming twist ``[vx vy vz wx wy wz]``; non-finite ones are rejected, speeds clamped.

        ``sent``: when the command was sent (its stamp, loop clock; default ``received``). A
        command sent before the last e-stop or reset is refused: otherwise a twist still in
        flight when the operator pressed stop could move the arm after the reset.
        """
        if twist.shape != (6,) or not np.isfinite(twist).all():
            self.counters.teleop_rejected += 1
            return False
        twist = np.array(twist, dtype=float)
        for part, limit in ((slice(0, 3), self.config.teleop_max_linear_speed),
                            (slice(3, 6), self.config.teleop_max_angular_speed)):
            speed = float(np.linalg.norm(twist[part]))
            if speed > limit:
                twist[part] *= limit / speed
        return self._put_teleop(Teleop(twist, tool_frame), received, sent)

    def on_joint_jog(self, velocities: np.ndarray, received: float, sent: float | None = None) -> bool:
        """Streaming joint velocities (arm order, rad/s or m/s): teleop's joint-jog mode.

        Same priority, ``teleop_timeout`` and epoch rule (``sent``) as twists; the newest of
        the two wins. The safety filter bounds the speed (velocity and acceleration limits).
        Non-finite or wrong-sized jogs are rejected and counted.
        """
        velocities = np.asarray(velocities)
        if velocities.shape != (self.dof,) or not np.isfinite(velocities).all():
            self.counters.teleop_rejected += 1
            return False
        return self._put_teleop(Teleop(np.array(velocities, dtype=float), joint_space=True), received, sent)

    def _put_teleop(self, teleop: Teleop, received: float, sent: float | None) -> bool:
        """Accept a teleop input unless e-stopped or sent before the current epoch (checked under the gate)."""
        with self._gate:
            if self._estopped.is_set():
                self.counters.teleop_rejected += 1
                return False
            if (received if sent is None else sent) < self._epoch_began:
                self.counters.teleop_rejected += 1
                self.counters.teleop_before_epoch += 1
                return False
            self._teleop.put(teleop, received)
        return True

    def on_teleop_gripper(self, value: float, received: float) -> bool:
        """An operator's gripper request in [0, 1] (1 closed; clamped), rate-limited like every gripper command.

        Applied while teleop is the source and while no source is active (the arm holds), so
        an operator can open the gripper of a resting arm; ignored while the policy drives.
        Non-finite values are rejected and counted.
        """
        with self._gate:  # with the e-stop's gate: a request received before a release stays discarded
            if not math.isfinite(value) or self._estopped.is_set() or received < self._epoch_began:
                self.counters.gripper_rejected += 1
                return False
            self._teleop_gripper.put(min(max(float(value), 0.0), 1.0), received)
        return True

    def estop(self, now: float, source: str = UNNAMED) -> EStopAnswer:
        """Engage the software e-stop for ``source``: brake to rest, ignore every command until it is released.

        ``now`` (loop clock) starts a new epoch: teleop commands sent before it are refused
        even after the release. See :mod:`robot_brain.control.estop` for who may release.
        """
        with self._gate:
            self.epoch += 1
            self._epoch_began = now
            answer = self._latch.engage(source)
            self._estopped.set()
            self._flush.set()
        return answer

    def release(self, now: float, source: str = UNNAMED, *, operator_reset: bool = False) -> EStopAnswer:
        """Release ``source``'s stop (or every stop: ``operator_reset``, naming who in ``source``).

        The arm may move again only when no source holds a stop; commands sent before then
        stay discarded (the epoch begins again at ``now``).
        """
        with self._gate:
            answer = self._latch.release(source, operator_reset=operator_reset)
            if answer.released:
                self.epoch += 1
                self._epoch_began = now
                self._flush.set()
                self._teleop.clear()
                self._teleop_gripper.clear()
                self._estopped.clear()
        return answer

    @property
    def estop_holders(self) -> tuple[str, ...]:
        """The sources holding the e-stop now (empty when released)."""
        with self._gate:
            return self._latch.holders

    @property
    def estopped(self) -> bool:
        return self._estopped.is_set()

    def request_stop(self) -> None:
        """Deactivation: brake to rest; :attr:`stopped` tells when the loop may end."""
        self._stopping.set()

    def resume(self) -> None:
        """Activation: forget the previous run's command so the next cycle starts from the measurement.

        The gripper keeps its last command and is re-seeded from its measured opening at the
        first cycle when one is known, so its first command is rate-limited from there.
        """
        self._stopping.clear()
        self._flush.set()
        self.filter.seeded = False
        self._gripper_seed_pending = True
        self._gripper_goal = None
        self._teleop_seen = -1  # teleop's joint velocity and the condition number: recomputed at once
        self._singularity_countdown = 0

    @property
    def stopped(self) -> bool:
        """After :meth:`request_stop`: at rest with the halt published (or never started)."""
        if not self._stopping.is_set():
            return False
        return not self.filter.seeded or (not self.filter.moving and self._arm_publish.quiet)

    # -- the cycle (loop thread only) ---------------------------------------------------

    def cycle(self, now: float) -> Command:
        """One control period at loop time ``now``: choose the source, filter, decide what to publish.

        Returns the controller's reused :class:`Command`: publish it before the next cycle.
        """
        command = self._command
        command.clear()
        sample = self.state.latest()
        if sample is None:
            self.source = "idle"
            self.fault = "no joint state received yet"
            return command
        fresh = now - sample.received <= self.config.state_timeout
        if not self.filter.seeded:
            if not fresh:
                self.source = "idle"
                self.fault = "joint states are stale"
                return command
            self.filter.reset(sample.positions)  # once per activation
        if self._gripper_seed_pending or self.gripper.value is None:
            self._seed_gripper(now)
        measured = sample.values
        if self._flush.is_set():
            self._flush.clear()
            self.blender.clear()
            if self._inbox.pending:
                self._inbox.take()
        estopped = self._estopped.is_set()
        stopping = self._stopping.is_set()
        teleop, teleop_received, teleop_sequence = self._teleop.get()
        teleop_fresh = teleop is not None and now - teleop_received <= self.config.teleop_timeout
        if self._was_teleop and not teleop_fresh:
            self.counters.teleop_timeouts += 1
        self._was_teleop = teleop_fresh and not stopping and not estopped
        operator_gripper = self._take_teleop_gripper(now)

        self.fault = ""
        if estopped or stopping:
            self.source = "estop" if estopped else "stopping"
            self.blender.clear()
            if self._inbox.pending:
                self._inbox.take()
            self._gripper_goal = None
            self.filter.advance(None, measured)
        elif not fresh:
            if self.source != "stale_state":
                self.counters.stale_state_events += 1
                self._stale_fault = f"joint states are stale (none for more than {self.config.state_timeout:g} s)"
            self.source = "stale_state"
            self.fault = self._stale_fault
            self.blender.clear()
            self._gripper_goal = None
            self.filter.advance(None, measured)
        elif teleop_fresh:
            assert teleop is not None
            self._follow_teleop(teleop, teleop_sequence, operator_gripper, measured)
        else:
            self._follow_policy_or_hold(now, operator_gripper, measured)
        return self._finish(command)

    def _follow_teleop(
        self, teleop: Teleop, teleop_sequence: int, operator_gripper: float | None, measured: tuple[float, ...]
    ) -> None:
        """The cycle's teleop branch: reject pending chunks, follow the newest twist or joint jog."""
        self.source = "teleop"
        self.blender.clear()
        if self._inbox.pending:
            for _ in self._inbox.take():
                self.counters.reject("teleop_active")
        if operator_gripper is not None:
            self._gripper_goal = operator_gripper
        if teleop_sequence != self._teleop_seen:
            self._refresh_teleop(teleop, teleop_sequence)
        elif not teleop.joint_space:  # a twist's joint velocity follows the Jacobian as the arm moves
            self._teleop_countdown -= 1
            if self._teleop_countdown <= 0:
                self._refresh_teleop(teleop, teleop_sequence)
        self.filter.advance_velocity(self._teleop_velocity, measured, self._teleop_scale)

    def _follow_policy_or_hold(self, now: float, operator_gripper: float | None, measured: tuple[float, ...]) -> None:
        """The cycle's last branch: take new chunks, follow the blended policy, or brake and hold when it lapsed."""
        if self._inbox.pending:
            for chunk in self._inbox.take():
                self.blender.add(chunk)
                self._last_chunk_arrival = chunk.received  # type: ignore[assignment]
                self._policy_in_ee_space = chunk.space.startswith("ee_")
        if self.blender.active and now - self._last_chunk_arrival <= self.config.chunk_timeout:
            self.source = "policy"
            target = self._target
            self.blender.sample_into(now, target)
            gripper_value = target[self.dof]
            self._gripper_goal = gripper_value if math.isfinite(gripper_value) else None
            self.filter.advance(target, measured, self._singularity_scale(target, now))
        else:
            if self.blender.active:
                self.counters.chunk_timeouts += 1
                self.blender.clear()
            if self.source == "policy":
                self._gripper_goal = None  # the policy stopped: the gripper stays where it is
            if operator_gripper is not None:
                self._gripper_goal = operator_gripper
            self.source = "hold" if self.source != "idle" or self.filter.moving else "idle"
            self.filter.advance(None, measured)

    def brake(self, now: float) -> Command:
        """The loop's fallback after :meth:`cycle` raised: brake to rest at the acceleration limit, then go quiet.

        Uses nothing of :meth:`cycle` but the safety filter's braking step (from the last
        command, decelerating monotonically: it needs no measurement) and the halt
        repetition, so a bug in blending, IK, teleop or the state input cannot keep the arm
        from braking. The gripper is left as it is. Returns its own reused :class:`Command`.
        """
        command = self._brake_command
        command.clear()
        if self.source != "fault":
            self.counters.fault_brakes += 1
        self.source = "fault"
        self.fault = "the control cycle failed: braking to rest"
        if not self.filter.seeded:
            return command
        self.filter.brake()
        if self._arm_publish.due(self.filter.moving):
            command.positions = self.filter.position
            command.velocities = self.filter.velocity
        return command

    def _finish(self, command: Command) -> Command:
        gripper = self.gripper.step(self._gripper_goal)
        self._publish_countdown -= 1
        if self._publish_countdown > 0:
            return command
        self._publish_countdown = self.config.publish_every
        if self._arm_publish.due(self.filter.moving):
            command.positions = self.filter.position
            command.velocities = self.filter.velocity
        changed = gripper is not None and gripper != self._last_gripper
        if gripper is not None and self._gripper_publish.due(changed):
            values, open_, span = self._gripper_values, self._gripper_open, self._gripper_span
            j = 0
            while j < len(values):
                values[j] = open_[j] + gripper * span[j]
                j += 1
            command.gripper = values
        self._last_gripper = gripper
        return command

    # -- helpers ------------------------------------------------------------------------

    def _seed_gripper(self, now: float) -> None:
        """Start the gripper's rate limit from its measured opening (fresh), else keep the last command."""
        self._gripper_seed_pending = False
        measured, received, _ = self._gripper_state.get()
        if measured is not None and now - received <= self.config.state_timeout and self.gripper.seed(measured):
            # Seeding alone publishes nothing: a gripper holding an object measures less closed
            # than commanded, and sending the measurement would loosen the grasp.
            self._last_gripper = self.gripper.value
            self._gripper_publish.silence()

    def _take_teleop_gripper(self, now: float) -> float | None:
        """A new operator gripper request (fresh, not yet seen), else None; every request is seen once."""
        value, received, sequence = self._teleop_gripper.get()
        if sequence == self._teleop_gripper_seen:
            return None
        self._teleop_gripper_seen = sequence
        if value is None or now - received > self.config.teleop_timeout:
            return None
        return value

    def _tip_position(self, q: np.ndarray) -> np.ndarray:
        return self.kinematics.fk(q)[:3, 3]

    def _refresh_teleop(self, teleop: Teleop, sequence: int) -> None:
        """Teleop's joint velocity and speed scale, from a new input or every SINGULARITY_CHECK_S (allocates)."""
        self._teleop_seen = sequence
        self._teleop_countdown = self._singularity_every
        if teleop.joint_space:
            self.condition_number = math.nan
            self._teleop_velocity[:] = teleop.values.tolist()
            self._teleop_scale = 1.0
            return
        q = self.filter.position.copy()
        rotation = self.kinematics.fk(q)[:3, :3] if teleop.tool_frame else np.eye(3)
        twist = twist_in_base(teleop.values, teleop.tool_frame, rotation)
        qdot, condition = self.kinematics.twist_to_joint_velocity(q, twist, self.config.teleop_damping)
        self._teleop_scale = self._approach_scale(q, q + qdot * 0.05, condition)
        self._teleop_velocity[:] = qdot.tolist()

    def _singularity_scale(self, target: list[float], now: float) -> float:
        """Slow-down for end-effector sources only; joint-space actions have no Cartesian blow-up.

        Also times how long the guard has held the policy at a singularity (``singularity_hold``).
        """
        if not self._policy_in_ee_space:
            self.condition_number = math.nan
            self._singular_since = math.nan
            return 1.0
        # The condition number changes slowly: evaluate it every SINGULARITY_CHECK_S, not every period.
        self._singularity_countdown -= 1
        if self._singularity_countdown > 0:
            if self._singularity_scale_value == 0.0:
                self._singular_last = now
            return self._singularity_scale_value
        self._singularity_countdown = self._singularity_every
        q = self.filter.position.copy()
        step = np.array(target[: self.dof]) - q
        norm = float(np.linalg.norm(step))
        scale = 1.0
        if norm >= 1e-9:
            probe = q + step * min(1.0, 0.05 / norm)
            scale = self._approach_scale(q, probe, self._condition(q))
        self._singularity_scale_value = scale
        if scale > 0.0:
            self._singular_since = math.nan
        else:
            if self._singular_since != self._singular_since:  # NaN: the hold starts now
                self._singular_since = now
            self._singular_last = now
        return scale

    def singularity_hold(self, now: float) -> str:
        """Why the policy's motion has been held at a singularity for ``stall_window`` or more ('' if not).

        The guard stops motion toward a singularity (the condition number at
        ``singularity_hard_threshold``): the IK reaches every waypoint, yet the arm does not
        move. A stall all the same, and one the IK residual cannot see.
        """
        since = self._singular_since
        if since != since or now - since < self.config.stall_window or now - self._singular_last > 0.1:
            return ""
        return (f"held at a singularity for {now - since:.1f} s: the condition number {self.condition_number:.0f} "
                f"reached singularity_hard_threshold ({self.config.singularity_hard_threshold:g}) on the way to "
                "the commanded pose")

    def _approach_scale(self, q: np.ndarray, probe: np.ndarray, condition: float) -> float:
        """Scale from the condition number, applied only while the motion heads toward the singularity."""
        self.condition_number = condition
        if condition <= self.config.singularity_lower_threshold:
            return 1.0
        if self._condition(probe) <= condition:
            return 1.0  # moving away: let the arm escape
        scale = condition_scale(condition, self.config.singularity_lower_threshold,
                                self.config.singularity_hard_threshold)
        if scale == 0.0:
            self.counters.singularity_stops += 1
        else:
            self.counters.singularity_slowdowns += 1
        return scale

    def _condition(self, q: np.ndarray) -> float:
        return self.kinematics.condition_number(q)

    # -- reporting ----------------------------------------------------------------------

    def limit_counts(self) -> dict[str, int]:
        return {name: int(count) for name, count in zip(LIMIT_NAMES, self.filter.counts, strict=True)}
