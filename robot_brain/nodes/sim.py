"""``sim`` node: the MuJoCo simulator behind the topics of a real ros2_control cell.

Publishes ``/joint_states`` (every hinge and slide joint, arm first), the task camera as
``sensor_msgs/Image`` (rgb8) + ``CameraInfo``, ``/clock`` and ``/diagnostics`` (real-time
factor, step and render times); accepts ``Float64MultiArray`` on
``/<position_controller>/commands``, ``JointTrajectory`` on
``/<trajectory_controller>/joint_trajectory`` and ``Float64MultiArray`` on
``/<gripper_controller>/commands``; serves ``/sim/reset_episode`` and ``/sim/get_result``.

A lifecycle node on the node skeleton (:class:`robot_brain.ros.node_skeleton.BrainNode`),
with ``autostart`` true by default (a simulator runs from the start, as Gazebo does):
configure builds the MuJoCo scene and the topics, activate starts the supervised workers,
deactivate pauses physics. Three threads: physics (absolute-deadline loop, steps to keep pace
with the wall clock, publishes state), rendering (its own GL context and MjData copy, so a
20 ms frame never stalls physics) and the executor (commands and services, which only set
targets). On SIGINT/SIGTERM both workers are joined before the context goes down.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import mujoco
import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PointStamped
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from robot_brain_msgs.msg import EpisodeResult
from robot_brain_msgs.srv import GetEpisodeResult, ResetEpisode
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, Header
from trajectory_msgs.msg import JointTrajectory

from robot_brain.errors import ConfigurationError, UserError
from robot_brain.ros.arm_params import ARM_PARAMETERS, arm_from_parameters
from robot_brain.ros.diagnostics import OK, WARN
from robot_brain.ros.image import array_to_image
from robot_brain.ros.node_skeleton import COMMON_PARAMETERS, BrainNode, run_node, with_defaults
from robot_brain.ros.params import value
from robot_brain.ros.sim_io import camera_info_msg, episode_result_msg, time_msg, trajectory_arrays
from robot_brain.sim import LayoutOptions, RealTimeLock, SceneOptions, Simulation, StateStamps, build_simulation
from robot_brain.sim.rendering import OffscreenRenderer, camera_matrix

LOG_THROTTLE_S = 5.0
#: States published at most per physics wake-up when catching up (20 ms at 500 Hz): bounded work per wake-up.
MAX_CATCH_UP_STATES = 10

#: Every parameter: name, default, description. ``config/sim.yaml`` mirrors these (a test checks).
PARAMETERS: tuple[tuple[str, Any, str], ...] = (
    *ARM_PARAMETERS,
    ("real_time_factor", 1.0, "Sim seconds per wall second: 1 locks to real time, 0 runs as fast as possible"),
    ("timestep", 0.002, "Physics step, s"),
    ("publish_rate_hz", 250.0, "Rate of /joint_states and /clock (and of command application), Hz"),
    ("joint_states_topic", "/joint_states", "sensor_msgs/JointState output"),
    ("position_controller", "forward_position_controller", "Accept Float64MultiArray on /<name>/commands"),
    ("position_command_joints", [""], "Joint order of position commands (empty: the arm's base-to-tip order)"),
    ("trajectory_controller", "joint_trajectory_controller", "Accept JointTrajectory on /<name>/joint_trajectory"),
    ("gripper_controller", "gripper_controller", "Accept Float64MultiArray on /<name>/commands (gripper joints)"),
    ("camera_rate_hz", 15.0, "Camera frames per second (0: no camera)"),
    ("camera_width", 320, "Camera image width, px"),
    ("camera_height", 240, "Camera image height, px"),
    ("camera_shadows", False, "Render shadows (about 4x slower on a CPU renderer)"),
    ("camera_frame_id", "camera_optical_frame", "frame_id of images (optical frame: z forward, x right, y down)"),
    ("image_topic", "/camera/image_raw", "sensor_msgs/Image output (rgb8)"),
    ("camera_info_topic", "/camera/camera_info", "sensor_msgs/CameraInfo output"),
    ("camera_pose", [0.0], "Optical frame in the base frame [x y z qx qy qz qw] ([0.0]: from the workspace)"),
    ("camera_fovy_deg", 50.0, "Vertical field of view, degrees"),
    ("bandwidth_hz", 8.0, "Position-loop natural frequency of the default actuator gains, Hz"),
    ("damping_ratio", 1.0, "Damping ratio of the default actuator gains"),
    ("kp", [0.0], "Actuator stiffness per command joint, arm then gripper ([0.0]: from bandwidth and inertia)"),
    ("kv", [0.0], "Actuator damping per command joint ([0.0]: critical damping)"),
    ("gravity_compensation", True, "Drives hold the arm against gravity, as a position-controlled cell does"),
    ("self_collision", False, "Collide the arm's links with each other"),
    ("object_color", [0.9, 0.1, 0.1], "RGB of the task object (perception's default detector looks for red)"),
    (
        "arm_color",
        [0.0],
        "Paint every robot geom this RGB, 0-1 (materials dropped; e.g. the object's red, to test perception's "
        "self-filter) ([0.0]: the URDF's colours)",
    ),
    ("region_radius", [0.4, 0.7], "Object placement radii, fractions of the arm's reach"),
    ("region_yaw_deg", 45.0, "Half-angle of the placement sector around the base's +x, degrees"),
    ("object_size", 0.06, "Object edge, fraction of the reach (clipped to 2-10 cm)"),
    ("tolerance", 0.045, "Success radius, fraction of the reach (clipped to 2-10 cm)"),
    ("home", [0.0], "Home configuration, arm order ([0.0]: tool down above the task region, by IK)"),
    ("home_height", 0.3, "Tool height above the table at home, fraction of the reach"),
    ("time_limit", 0.0, "Episode time limit, sim s (0: max(8, 10 x reach in m))"),
    ("seed", 0, "Seed of the first episode"),
)


def _list_or_empty(values: Any) -> list[Any]:
    """ROS parameters cannot be empty typed arrays: ``[0.0]`` / ``[""]`` stand for "not set"."""
    items = list(values)
    return [] if items in ([0.0], [""], [0]) else items


class SimNode(BrainNode):
    """Runs the simulation and speaks ros2_control's topics."""

    PARAMETERS = PARAMETERS
    COMMON = with_defaults(COMMON_PARAMETERS, autostart=True)
    DIAGNOSTIC_TASK = "sim"

    def __init__(self, **kwargs: Any) -> None:
        self.simulation: Simulation | None = None
        self._entities: list[tuple[str, Any]] = []
        super().__init__("sim", **kwargs)
        self._step_time = _Mean()
        self._render_time = _Mean()
        self._warned: dict[str, float] = {}

    def configure_node(self) -> None:
        """Build the scene from the arm and create the topics and services (nothing runs yet)."""
        self.simulation = simulation = self._build()
        sim = simulation.simulator
        self._lock = RealTimeLock(sim.model.opt.timestep, float(value(self, "real_time_factor")))
        self._state_stamps = StateStamps(sim.model.opt.timestep)
        self._last_done = False
        self._sim_time_stamps = bool(value(self, "use_sim_time"))
        self._joint_msg = JointState(name=list(simulation.scene.state_joints))
        self._joint_pub = self._keep("publisher", self.create_publisher(
            JointState, str(value(self, "joint_states_topic")), 10))
        self._clock_pub = self._keep("publisher", self.create_publisher(Clock, "/clock", 10))
        self._object_pub = self._keep("publisher", self.create_publisher(
            PointStamped, "/sim/object_point", QoSProfile(depth=1)))
        self._result_pub = self._keep("publisher", self.create_publisher(
            EpisodeResult, "/sim/episode_result", QoSProfile(depth=10)))
        self._subscribe_commands()
        self._keep("service", self.create_service(ResetEpisode, "/sim/reset_episode", self._on_reset))
        self._keep("service", self.create_service(GetEpisodeResult, "/sim/get_result", self._on_get_result))
        self._camera_rate = float(value(self, "camera_rate_hz"))
        self._image_pub = self._keep("publisher", self.create_publisher(
            Image, str(value(self, "image_topic")), qos_profile_sensor_data))
        self._info_pub = self._keep("publisher", self.create_publisher(
            CameraInfo, str(value(self, "camera_info_topic")), qos_profile_sensor_data))
        width, height = int(value(self, "camera_width")), int(value(self, "camera_height"))
        self._camera_info = camera_info_msg(
            camera_matrix(sim.model, simulation.scene.task_camera, width, height),
            width,
            height,
            str(value(self, "camera_frame_id")),
        )
        spec = simulation.arm.spec
        self.get_logger().info(
            f"{spec.name}: {spec.dof} arm joints, gripper {list(simulation.scene.gripper_joints) or 'none'}, "
            f"reach {simulation.layout.reach:.2f} m, tolerance {simulation.layout.tolerance * 100:.1f} cm, "
            f"real_time_factor {self._lock.factor:g}"
        )

    def activate_node(self) -> None:
        """Start physics (and the camera); fail clearly when offscreen rendering cannot start."""
        self._render_error: str | None = None
        self._render_ready = threading.Event()
        self.start_worker("physics", self._physics_loop)
        if self._camera_rate > 0.0:
            self.start_worker("render", self._render_loop)
            self._render_ready.wait(timeout=30.0)
            if self._render_error:
                raise ConfigurationError(self._render_error)
        self._publish_object()

    def teardown_node(self) -> None:
        for kind, entity in self._entities:
            getattr(self, f"destroy_{kind}")(entity)
        self._entities = []
        self.simulation = None

    def _keep(self, kind: str, entity: Any) -> Any:
        self._entities.append((kind, entity))
        return entity

    # -- construction ---------------------------------------------------------------------

    def _build(self) -> Simulation:
        arm = arm_from_parameters(self)
        assert arm is not None
        camera_pose = _list_or_empty(value(self, "camera_pose"))
        layout_options = LayoutOptions(
            region_radius=tuple(float(v) for v in value(self, "region_radius")),  # type: ignore[arg-type]
            region_yaw_deg=float(value(self, "region_yaw_deg")),
            object_size=float(value(self, "object_size")),
            tolerance=float(value(self, "tolerance")),
            home=tuple(float(v) for v in _list_or_empty(value(self, "home"))),
            home_height=float(value(self, "home_height")),
            camera_pose=tuple(float(v) for v in camera_pose),
            camera_fovy_deg=float(value(self, "camera_fovy_deg")),
        )
        command_joints = (
            *arm.spec.joint_names,
            *(j for j in arm.spec.gripper_joints if j not in arm.spec.mimic_joints),
        )
        kp, kv = _list_or_empty(value(self, "kp")), _list_or_empty(value(self, "kv"))
        if kp and len(kp) != len(command_joints):
            raise ConfigurationError(
                f"kp: expected {len(command_joints)} values ({', '.join(command_joints)}), found {len(kp)}"
            )
        if kv and len(kv) != len(kp):
            raise ConfigurationError(f"kv: expected {len(kp)} values (one per kp), found {len(kv)}")
        color = [float(v) for v in value(self, "object_color")]
        if len(color) != 3:
            raise ConfigurationError(f"object_color: expected [r g b] in 0-1, found {color}")
        arm_color = [float(v) for v in _list_or_empty(value(self, "arm_color"))]
        if arm_color and len(arm_color) != 3:
            raise ConfigurationError(f"arm_color: expected [r g b] in 0-1 (or [0.0]: the URDF's), found {arm_color}")
        scene_options = SceneOptions(
            timestep=float(value(self, "timestep")),
            bandwidth_hz=float(value(self, "bandwidth_hz")),
            damping_ratio=float(value(self, "damping_ratio")),
            gains={
                name: (float(p), float(kv[i]) if kv else 2.0 * math.sqrt(float(p)))
                for i, (name, p) in enumerate(zip(command_joints, kp, strict=False))
            },
            gravity_compensation=bool(value(self, "gravity_compensation")),
            self_collision=bool(value(self, "self_collision")),
            object_rgba=(*color, 1.0),  # type: ignore[arg-type]
            arm_rgba=(*arm_color, 1.0) if arm_color else None,  # type: ignore[arg-type]
            camera_width=int(value(self, "camera_width")),
            camera_height=int(value(self, "camera_height")),
        )
        simulation = build_simulation(
            arm, layout_options, scene_options, float(value(self, "time_limit")), int(value(self, "seed"))
        )
        for warning in (*simulation.scene.warnings, *simulation.layout.notes):
            self.get_logger().warning(warning)
        return simulation

    def _subscribe_commands(self) -> None:
        assert self.simulation is not None
        sim = self.simulation.simulator
        names = _list_or_empty(value(self, "position_command_joints")) or list(self.simulation.arm.spec.joint_names)
        self._position_indices = sim.joint_indices([str(n) for n in names])
        position = str(value(self, "position_controller")).strip("/")
        trajectory = str(value(self, "trajectory_controller")).strip("/")
        gripper = str(value(self, "gripper_controller")).strip("/")
        self._keep("subscription", self.create_subscription(
            Float64MultiArray, f"/{position}/commands", self._on_positions, 10))
        self._keep("subscription", self.create_subscription(
            JointTrajectory, f"/{trajectory}/joint_trajectory", self._on_trajectory, 10))
        if self.simulation.scene.gripper_joints:
            self._keep("subscription", self.create_subscription(
                Float64MultiArray, f"/{gripper}/commands", self._on_gripper, 10))

    # -- commands and services ------------------------------------------------------------

    def _on_positions(self, msg: Float64MultiArray) -> None:
        try:
            self.simulation.simulator.command_positions(self._position_indices, msg.data)
        except UserError as error:
            self._warn("positions", f"position command ignored: {error}")

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        try:
            self.simulation.simulator.command_gripper(msg.data)
        except UserError as error:
            self._warn("gripper", f"gripper command ignored: {error}")

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            names, times, points = trajectory_arrays(msg)
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            delay = stamp - self._now_seconds() if stamp > 0.0 else 0.0
            self.simulation.simulator.command_trajectory(names, times, points, delay)
        except (UserError, ValueError) as error:
            self._warn("trajectory", f"trajectory rejected: {error}")

    def _on_reset(self, request: ResetEpisode.Request, response: ResetEpisode.Response) -> ResetEpisode.Response:
        state = self.simulation.simulator.reset(int(request.seed))  # sim time goes on: the state stamps stay valid
        self._lock.restart(self.simulation.simulator.time)
        self._last_done = False
        self._publish_object()
        response.success = True
        response.message = f"episode {state.episode} with seed {state.seed}"
        response.result = episode_result_msg(state)
        return response

    def _on_get_result(
        self, request: GetEpisodeResult.Request, response: GetEpisodeResult.Response
    ) -> GetEpisodeResult.Response:
        response.result = episode_result_msg(self.simulation.simulator.result())
        return response

    # -- physics --------------------------------------------------------------------------

    def _physics_loop(self, stop: threading.Event) -> None:
        """Worker body: step to keep pace with the wall clock, publish the state, until ``stop``.

        One state is published per cycle of sim time, also when the thread wakes late (a busy
        CPU, another thread holding the GIL, a VM stall) and catches up several cycles at once:
        each is stepped and published in turn, so a recorder gets ``publish_rate_hz`` states per
        sim second instead of a gap (bench/recording.py: 477.7 instead of 500 /joint_states a second
        beside a 640x480 camera on 2 cores when one state was published per wake-up). With
        wall-clock stamps a catch-up's states are stamped at most a period apart, ending now and
        after the previous state's stamp (increasing, never in the future). A wake-up with no
        step due publishes nothing (no duplicate state). At most ``MAX_CATCH_UP_STATES`` are
        published per wake-up, so publishing (which may wait for the GIL) cannot make the
        thread fall further behind: physics always catches up, a longer stall leaves a gap.
        """
        assert self.simulation is not None
        sim = self.simulation.simulator
        period = 1.0 / float(value(self, "publish_rate_hz"))
        cycle_steps = max(round(period / sim.model.opt.timestep), 1)
        spacing_ns = period / self._lock.factor * 1e9 if self._lock.factor > 0.0 else 0.0
        self._lock.restart(sim.time)
        last_ns = 0
        deadline = time.perf_counter()
        while not stop.is_set():
            steps = self._lock.steps_due(sim.time, cycle_steps)
            cycles = -(-steps // cycle_steps)
            skipped = max(cycles - MAX_CATCH_UP_STATES, 0)  # a long stall: its oldest states are stepped unpublished
            if skipped:
                self._step(sim, skipped * cycle_steps)
            published = cycles - skipped
            now_ns = self.get_clock().now().nanoseconds  # one instant for the catch-up, however long publishing takes
            spacing = max(min(spacing_ns, (now_ns - last_ns) / published), 0.0) if published else 0.0
            for cycle in range(skipped, cycles):
                cycle_steps_now = min(cycle_steps, steps - cycle * cycle_steps)
                last_ns = now_ns - int((cycles - 1 - cycle) * spacing)
                # Recorded before the step: the renderer may copy this state before it is published.
                self._state_stamps.record(sim.time + cycle_steps_now * sim.model.opt.timestep, last_ns)
                self._step(sim, cycle_steps_now)
                self._publish_state(last_ns)
            self._lock.record(sim.time)
            if self._lock.factor > 0.0:
                deadline += period
                delay = deadline - time.perf_counter()
                if delay > 0.0:
                    stop.wait(delay)
                elif delay < -period:
                    deadline = time.perf_counter()  # fell behind: re-anchor instead of bursting

    def _step(self, sim: Any, steps: int) -> None:
        started = time.perf_counter()
        sim.step(steps)
        self._step_time.add((time.perf_counter() - started) / steps)

    def _now_seconds(self) -> float:
        if self._sim_time_stamps:
            return self.simulation.simulator.time
        return self.get_clock().now().nanoseconds * 1e-9

    def _stamp(self, sim_time: float) -> Any:
        """The stamp of what shows the state at ``sim_time``: the stamp its joint state carries."""
        if self._sim_time_stamps:
            return time_msg(sim_time)
        stamp_ns = self._state_stamps.stamp_ns(sim_time, self.get_clock().now().nanoseconds, self._lock.factor)
        stamp = Time()
        stamp.sec, stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        return stamp

    def _publish_state(self, wall_stamp_ns: int) -> None:
        """Publish the current state, stamped with its sim time, or ``wall_stamp_ns`` (wall clock)."""
        snapshot = self.simulation.simulator.joint_state()
        msg = self._joint_msg
        if self._sim_time_stamps:
            msg.header.stamp = time_msg(snapshot.time)
        else:
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(wall_stamp_ns, 1_000_000_000)
        msg.position = snapshot.position.tolist()
        msg.velocity = snapshot.velocity.tolist()
        msg.effort = snapshot.effort.tolist()
        self._joint_pub.publish(msg)
        self._clock_pub.publish(Clock(clock=time_msg(snapshot.time)))
        state = self.simulation.simulator.result()
        if state.done and not self._last_done:
            self._last_done = True
            self._result_pub.publish(episode_result_msg(state))
            self.get_logger().info(f"episode {state.episode} (seed {state.seed}): {state.message}")

    def _publish_object(self) -> None:
        target = self.simulation.simulator.result().target
        msg = PointStamped()
        msg.header = Header(
            stamp=self._stamp(self.simulation.simulator.time), frame_id=self.simulation.arm.spec.base_link
        )
        msg.point.x, msg.point.y, msg.point.z = (float(v) for v in target)
        self._object_pub.publish(msg)

    # -- rendering ------------------------------------------------------------------------

    def _render_loop(self, stop: threading.Event) -> None:
        """Worker body: render the task camera at its rate, in its own GL context, until ``stop``."""
        assert self.simulation is not None
        scene = self.simulation.scene
        width, height = self._camera_info.width, self._camera_info.height
        try:
            renderer = OffscreenRenderer(scene.model, width, height, shadows=bool(value(self, "camera_shadows")))
        except UserError as error:
            self._render_error = str(error)
            self._render_ready.set()
            return
        self._render_ready.set()
        data = mujoco.MjData(scene.model)
        frame = np.empty((height, width, 3), dtype=np.uint8)
        period = 1.0 / self._camera_rate
        deadline = time.perf_counter()
        simulator = self.simulation.simulator
        try:
            while not stop.is_set():
                started = time.perf_counter()
                sim_time = simulator.copy_kinematics(data)
                header = Header(stamp=self._stamp(sim_time), frame_id=self._camera_info.header.frame_id)
                renderer.render(data, scene.task_camera, out=frame)
                image = array_to_image(frame, "rgb8", header)
                self._camera_info.header = header
                self._publish_frame(image)
                self._render_time.add(time.perf_counter() - started)
                deadline += period / max(self._lock.factor, 1e-9) if self._lock.factor > 0 else period
                delay = deadline - time.perf_counter()
                if delay > 0.0:
                    stop.wait(delay)
                elif delay < -period:  # a frame rendered late is caught up; fell a whole frame behind: re-anchor
                    deadline = time.perf_counter()
        finally:
            renderer.close()

    def _publish_frame(self, image: Image) -> None:
        self._image_pub.publish(image)
        self._info_pub.publish(self._camera_info)

    # -- reporting ------------------------------------------------------------------------

    def diagnostics(self) -> tuple[bytes, str, dict[str, object], str]:
        if self.simulation is None:
            return OK, self.status, {}, "none"
        rtf = self._lock.measured
        state = self.simulation.simulator.result()
        keeping_up = math.isnan(rtf) or self._lock.factor == 0.0 or rtf > 0.9 * self._lock.factor
        values: dict[str, object] = {
            "real_time_factor": f"{rtf:.3f}",
            "target_real_time_factor": f"{self._lock.factor:g}",
            "sim_time_s": f"{self.simulation.simulator.time:.3f}",
            "step_us": f"{self._step_time.value * 1e6:.1f}",
            "render_ms": f"{self._render_time.value * 1e3:.2f}",
            "episode": str(state.episode),
            "episode_status": state.message,
        }
        level = OK if keeping_up or not self.active else WARN
        return level, f"real-time factor {rtf:.2f}", values, self.simulation.arm.spec.name

    @property
    def real_time_factor(self) -> float:
        return self._lock.measured if self.simulation is not None else math.nan

    def _warn(self, key: str, text: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(key, -math.inf) >= LOG_THROTTLE_S:
            self._warned[key] = now
            self.get_logger().warning(text)


class _Mean:
    """Exponential moving average of a duration (thread-safe enough for reporting)."""

    def __init__(self, weight: float = 0.05) -> None:
        self.value = 0.0
        self._weight = weight

    def add(self, sample: float) -> None:
        self.value = sample if self.value == 0.0 else self.value + self._weight * (sample - self.value)


def main(args: Sequence[str] | None = None) -> int:
    """Run the sim node (``sim --ros-args --params-file config/sim.yaml -p urdf_path:=...``)."""
    return run_node(SimNode, args, program="sim")


if __name__ == "__main__":
    sys.exit(main())
