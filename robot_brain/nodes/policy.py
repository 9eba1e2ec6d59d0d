"""``policy`` lifecycle node: runs one ONNX policy at its rate and publishes ActionChunk.

configure: load and check the model and its contract (and the arm, when a robot description
is given), create the session, warm it up, subscribe to the topics the contract names.
activate: start the inference worker. deactivate: stop and join it. Any user-fixable problem
makes ``configure`` fail with one logged line saying what was expected and what was found.

Inference runs on a supervised worker (:class:`robot_brain.ros.node_skeleton.BrainNode`) at
absolute deadlines, never in an executor callback, so a slow model delays only its own next
step; callbacks just store the latest messages. A bad input (an image in an unknown encoding
or of the wrong size, a joint state missing joints) or a bad output (NaN, wrong shape) skips
that one step and is counted in diagnostics; only an unexpected exception is a fault (error
state, diagnostics ERROR). On SIGINT/SIGTERM the worker finishes its step and is joined
before the context goes down, so no publish ever meets an invalid context.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import PointStamped
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.time import Time
from robot_brain_msgs.msg import ActionChunk
from sensor_msgs.msg import Image, JointState

from robot_brain.errors import ConfigurationError
from robot_brain.inference.contract import (
    JOINT_ACTION_SPACES,
    ROLE_EE_POSE,
    ROLE_GRIPPER_STATE,
    ROLE_IMAGE,
    ROLE_JOINT_POSITIONS,
    ROLE_JOINT_VELOCITIES,
    ROLE_TARGET_POINT,
    ROLE_TASK_ID,
    InputSpec,
    ModelContract,
)
from robot_brain.inference.observation import (
    ObservationAssembler,
    Skip,
    check_arm_compatibility,
    decode_chunk,
)
from robot_brain.inference.runtime import InferenceRuntime, InvalidOutputError
from robot_brain.inference.stats import LatencyStats
from robot_brain.learning.model_provenance import check_model_for_deployment
from robot_brain.perception.geometry import matrix_to_pose
from robot_brain.perception.preprocess import Preprocessor
from robot_brain.ros.arm_params import ARM_PARAMETERS, arm_from_parameters
from robot_brain.ros.diagnostics import OK, WARN
from robot_brain.ros.image import image_to_array
from robot_brain.ros.model_diagnostics import runtime_values
from robot_brain.ros.model_params import BUILTIN_MODELS, load_model_from_parameters, model_parameters, runtime_options
from robot_brain.ros.node_skeleton import BrainNode, run_node
from robot_brain.ros.params import value
from robot_brain.ros.policy_io import JointStateIndexer, action_chunk_msg, point_to_array, stamp_to_nanoseconds

DEFAULT_RATE_HZ = 10.0
LOG_THROTTLE_S = 5.0


PARAMETERS: tuple[tuple[str, Any, str], ...] = (
    *model_parameters("builtin:reach", intra_threads=1),
    ("rate_hz", 0.0, "Inference rate in Hz; 0: the contract's control_rate_hz (else 10 Hz)"),
    ("sync_tolerance_s", 0.05, "Largest stamp difference between synchronized inputs, s"),
    ("max_observation_age_s", 0.5, "Skip the step when the observation is older than this, s"),
    *ARM_PARAMETERS,
    ("joint_states_topic", "/joint_states", "JointState topic for joint and ee_pose inputs"),
    ("action_chunk_topic", "/policy/action_chunk", "Where ActionChunk messages are published"),
    ("task_id", 0, "Value of task_id inputs"),
    ("consent_data_root", "",
     "Data root whose consent registry checks a trained model's provenance (empty: $ROBOT_BRAIN_DATA_ROOT, "
     "else ~/.local/share/robot_brain)"),
    ("allow_withdrawn_consent", False,
     "Run a model trained on people whose consent is revoked, expired or purged (an error at every start and "
     "a diagnostics WARN say so)"),
)


class PolicyNode(BrainNode):
    """Feeds the contract's inputs from topics to an ONNX policy and publishes its action chunks."""

    PARAMETERS = PARAMETERS
    READ_ONLY_PARAMETERS = frozenset({"model_path", "model_sha256", "consent_data_root", "allow_withdrawn_consent"})
    DIAGNOSTIC_TASK = "policy"

    def __init__(self, **kwargs: Any) -> None:
        self._reset_state()
        super().__init__("policy", **kwargs)

    def _reset_state(self) -> None:
        self._runtime: InferenceRuntime | None = None
        self._assembler: ObservationAssembler | None = None
        self._contract: ModelContract | None = None
        self._publisher: Any = None
        self._topic_subscriptions: list[Any] = []
        self._latency = LatencyStats()
        self._step = 0
        self._published = 0
        self._rejected = 0
        self._missed_deadlines = 0
        self._last_age = float("nan")
        self._model_id = ""
        self._joint_names: tuple[str, ...] = ()
        self._frame_id = ""
        self._rate_hz = 0.0
        self._consent_warning = ""

    def _check_consent_of_model(self) -> str:
        """Refuse (``ConfigurationError``) a trained model whose people withdrew their consent; the warning, if any."""
        path = str(value(self, "model_path"))
        if not path or path in BUILTIN_MODELS or not Path(path).expanduser().is_file():
            return ""  # built in, or missing: the loader says what is wrong with it
        check = check_model_for_deployment(Path(path).expanduser(), str(value(self, "consent_data_root")) or None)
        if check.refusal and not bool(value(self, "allow_withdrawn_consent")):
            raise ConfigurationError(
                f"model {path} refused: {check.refusal}; set allow_withdrawn_consent to run it anyway"
            )
        if check.refusal:
            warning = f"running a model against its people's consent (allow_withdrawn_consent): {check.refusal}"
            self.get_logger().error(warning)
            return warning
        if check.warning:
            self.get_logger().warning(check.warning)
        return check.warning

    # ----------------------------------------------------------------------------- lifecycle
    def configure_node(self) -> None:
        self._consent_warning = self._check_consent_of_model()
        model = load_model_from_parameters(self)
        contract = model.require_contract()
        if contract.kind != "policy":
            raise ConfigurationError(f"model {model.source}: expected a contract of kind policy, found {contract.kind}")
        arm = arm_from_parameters(self, required=False)
        action = contract.action_output
        arm_joints = tuple(arm.spec.joint_names) if arm else ()
        gripper_joints = tuple(contract.gripper_joints or (arm.spec.gripper_joints if arm else ()))
        if arm is not None:
            problems = check_arm_compatibility(contract, arm_joints, gripper_joints)
            if problems:
                raise ConfigurationError(f"model {model.model_id} cannot drive this arm: {problems[0]}")
        self._joint_names = tuple(contract.joint_names or arm_joints)
        self._frame_id = arm.spec.base_link if arm else ""
        converters = self._converters(contract, arm, gripper_joints)
        rate = float(value(self, "rate_hz")) or contract.control_rate_hz or DEFAULT_RATE_HZ
        self._rate_hz = rate
        self._runtime = InferenceRuntime(model, runtime_options(self))
        if self._runtime.providers.warning:
            self.get_logger().warning(f"{model.model_id}: {self._runtime.providers.warning}")
        self.get_logger().info(
            f"loaded {model.model_id} on {self._runtime.providers.primary} ({action.action_space}, "
            f"horizon {action.horizon} x {action.dt} s, {rate:g} Hz, "
            f"warm-up {self._runtime.warmup_s * 1e3:.1f} ms)"
        )
        self._assembler = ObservationAssembler(
            contract,
            converters,
            sync_tolerance=float(value(self, "sync_tolerance_s")),
            max_age=float(value(self, "max_observation_age_s")),
        )
        for spec in contract.inputs_with_role(ROLE_TASK_ID):
            self._assembler.set_constant(
                spec.name, np.full(_static_shape(spec), int(value(self, "task_id")), dtype=spec.dtype)
            )
        self._subscribe(contract)
        self._publisher = self.create_lifecycle_publisher(
            ActionChunk, str(value(self, "action_chunk_topic")), QoSProfile(depth=10)
        )
        self._contract = contract
        self._model_id = model.model_id

    def activate_node(self) -> None:
        """Start the inference worker (its publisher is already enabled)."""
        self.start_worker("inference", self._inference_loop)

    def teardown_node(self) -> None:
        """Drop the session, subscriptions and publisher (workers are already joined)."""
        for subscription in self._topic_subscriptions:
            self.destroy_subscription(subscription)
        if self._publisher is not None:
            self.destroy_lifecycle_publisher(self._publisher)
        self._reset_state()

    # ----------------------------------------------------------------------------- inputs
    def _converters(
        self, contract: ModelContract, arm: Any, gripper_joints: tuple[str, ...]
    ) -> dict[str, Callable[[Any], np.ndarray]]:
        """One function per input turning the stored payload into the model's array."""
        converters: dict[str, Callable[[Any], np.ndarray]] = {}
        for spec in contract.inputs:
            shape = _static_shape(spec)
            if spec.role in (ROLE_JOINT_POSITIONS, ROLE_JOINT_VELOCITIES):
                if not self._joint_names:
                    raise ConfigurationError(
                        f"input '{spec.name}' ({spec.role}): expected joint names from the "
                        "contract or a robot description (robot_description/urdf_path), "
                        "found neither"
                    )
                indexer = JointStateIndexer(self._joint_names)
                read = indexer.positions if spec.role == ROLE_JOINT_POSITIONS else indexer.velocities
                converters[spec.name] = _reshaped(read, shape)
            elif spec.role == ROLE_GRIPPER_STATE:
                if not gripper_joints:
                    raise ConfigurationError(
                        f"input '{spec.name}' (gripper_state): expected gripper joints from "
                        "the contract or the robot description, found none"
                    )
                converters[spec.name] = _reshaped(JointStateIndexer(gripper_joints).positions, shape)
            elif spec.role == ROLE_EE_POSE:
                if arm is None:
                    raise ConfigurationError(
                        f"input '{spec.name}' (ee_pose): expected a robot description "
                        "(robot_description or urdf_path) to compute it, found none"
                    )
                indexer = JointStateIndexer(arm.spec.joint_names)
                fk = arm.kinematics.fk
                converters[spec.name] = _reshaped(
                    lambda msg, i=indexer, f=fk: matrix_to_pose(f(i.positions(msg))), shape
                )
            elif spec.role == ROLE_TARGET_POINT:
                converters[spec.name] = _reshaped(point_to_array, shape)
            elif spec.role == ROLE_IMAGE:
                assert spec.image is not None
                preprocessor = Preprocessor(spec.image)
                converters[spec.name] = lambda msg, p=preprocessor: p(image_to_array(msg), msg.encoding)
        return converters

    def _subscribe(self, contract: ModelContract) -> None:
        joint_roles = (ROLE_JOINT_POSITIONS, ROLE_JOINT_VELOCITIES, ROLE_GRIPPER_STATE, ROLE_EE_POSE)
        joint_inputs = [s.name for s in contract.inputs if s.role in joint_roles]
        if joint_inputs:
            self._topic_subscriptions.append(
                self.create_subscription(
                    JointState,
                    str(value(self, "joint_states_topic")),
                    lambda msg: self._store(joint_inputs, msg),
                    qos_profile_sensor_data,
                )
            )
        for spec in contract.inputs:
            if spec.role == ROLE_TARGET_POINT:
                topic = spec.topic or "/perception/target_point"
                self._topic_subscriptions.append(
                    self.create_subscription(PointStamped, topic, lambda msg, n=spec.name: self._store([n], msg), 10)
                )
            elif spec.role == ROLE_IMAGE:
                topic = spec.topic or "/camera/image_raw"
                self._topic_subscriptions.append(
                    self.create_subscription(
                        Image, topic, lambda msg, n=spec.name: self._store([n], msg), qos_profile_sensor_data
                    )
                )

    def _store(self, names: list[str], msg: Any) -> None:
        """Subscription callback: remember the message; a zero stamp means 'now'."""
        assembler = self._assembler
        if assembler is None:
            return
        stamp = stamp_to_nanoseconds(msg.header.stamp)
        if stamp == 0:
            stamp = self.get_clock().now().nanoseconds
        for name in names:
            assembler.update(name, msg, stamp)

    # ----------------------------------------------------------------------------- inference
    def _inference_loop(self, stop: threading.Event) -> None:
        """Worker body: one step per period at absolute deadlines until ``stop``."""
        period = 1.0 / self._rate_hz
        deadline = time.perf_counter()
        while not stop.is_set():
            self._step_once()
            deadline += period
            delay = deadline - time.perf_counter()
            if delay < 0.0:
                self._missed_deadlines += 1
                deadline = time.perf_counter()
            elif stop.wait(delay):
                break

    def _step_once(self) -> None:
        assembler, runtime, contract, publisher = (
            self._assembler,
            self._runtime,
            self._contract,
            self._publisher,
        )
        if assembler is None or runtime is None or contract is None or publisher is None:
            return
        observation = assembler.assemble(self.get_clock().now().nanoseconds)
        if isinstance(observation, Skip):
            self.get_logger().warning(f"step skipped: {observation.reason}", throttle_duration_sec=LOG_THROTTLE_S)
            return
        self._last_age = observation.age
        action = contract.action_output
        start = time.perf_counter()
        try:
            outputs = runtime.run(observation.feeds)
            self._latency.record(time.perf_counter() - start)
            chunk = decode_chunk(outputs[action.name], action, contract.normalization.get(action.name))
        except (InvalidOutputError, ValueError) as error:
            self._rejected += 1
            self.get_logger().error(f"output rejected, not published: {error}", throttle_duration_sec=LOG_THROTTLE_S)
            return
        stamp = Time(nanoseconds=observation.stamp_ns, clock_type=self.get_clock().clock_type).to_msg()
        joint_names = self._joint_names if action.action_space in JOINT_ACTION_SPACES else ()
        publisher.publish(
            action_chunk_msg(chunk, action, stamp, self._frame_id, self._model_id, self._step, joint_names)
        )
        self._step += 1
        self._published += 1

    # ----------------------------------------------------------------------------- diagnostics
    def diagnostics(self) -> tuple[bytes, str, dict[str, object], str]:
        values: dict[str, object] = {"model_id": self._model_id, "rate_hz": self._rate_hz}
        level, message = OK, self.status
        if self._consent_warning:
            level, message = WARN, self._consent_warning
        if self._runtime is not None:
            values.update(runtime_values(self._runtime, self._latency))
            if self._runtime.providers.warning and not self._consent_warning:
                level, message = WARN, self._runtime.providers.warning
        skips = dict(self._assembler.skips) if self._assembler else {}
        values.update(
            {
                "observation_age_ms": self._last_age * 1e3,
                "published_chunks": self._published,
                "dropped_steps": sum(skips.values()) + self._rejected,
                "skipped_steps": sum(skips.values()),
                "rejected_outputs": self._rejected,
                "missed_deadlines": self._missed_deadlines,
            }
        )
        for reason, count in skips.items():
            values[f"skip: {reason}"] = count
        if skips and self.active and level == OK:
            level, message = WARN, f"active; steps skipped: {max(skips, key=skips.__getitem__)}"
        return level, message, values, self._model_id or "none"


def _static_shape(spec: InputSpec) -> tuple[int, ...]:
    """The input's shape with symbolic sizes as 1 (batch)."""
    return tuple(d if isinstance(d, int) else 1 for d in (spec.shape or (1, -1)))


def _reshaped(read: Callable[[Any], np.ndarray], shape: tuple[int, ...]) -> Callable[[Any], np.ndarray]:
    """Wrap a reader so its vector takes the input's shape, with a clear error on a size mismatch."""

    def convert(payload: Any) -> np.ndarray:
        vector = np.asarray(read(payload))
        if -1 not in shape and vector.size != int(np.prod(shape)):
            raise ValueError(f"expected {int(np.prod(shape))} values for shape {list(shape)}, found {vector.size}")
        return vector.reshape(shape)

    return convert


def main(args: Sequence[str] | None = None) -> int:
    """Run the policy node until SIGINT/SIGTERM (then: worker joined, exit 0)."""
    return run_node(PolicyNode, args, program="policy")


if __name__ == "__main__":
    sys.exit(main())
