"""robot_brain_msgs: the generated types, their wire format, and real DDS between processes.

These tests use the package that `make install` builds from msg/ (tools/build_interfaces.py),
so they also prove that the interface build and install work. The DDS tests start a second
Python process (the venv's interpreter, test/helpers/*.py) and talk to it over Fast DDS in
this run's own ROS_DOMAIN_ID (see conftest.py), never through mocks.
"""

from __future__ import annotations

import array
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import rclpy
from helpers.robot_brain_msgs_samples import (
    NEGATIVE_SEED_MESSAGE,
    SAMPLE_CHUNK,
    action_chunk_to_dict,
    episode_result_for,
    make_action_chunk,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from rclpy.client import Client
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from robot_brain_msgs.msg import ActionChunk, EpisodeEvent, EpisodeResult, JointJog
from robot_brain_msgs.srv import GetEpisodeResult, ResetEpisode, StartEpisode, StopEpisode

HELPERS = Path(__file__).resolve().parent / "helpers"
DDS_TIMEOUT_S = 20.0  # discovery + first sample; typically well under 2 s on one host
CHILD_EXIT_TIMEOUT_S = 10.0

EXPECTED_ACTION_CHUNK_FIELDS = {
    "header": "std_msgs/Header",
    "model_id": "string",
    "step": "uint64",
    "action_space": "string",
    "horizon": "uint32",
    "dt": "double",
    "dim": "uint32",
    "joint_names": "sequence<string>",
    "has_gripper": "boolean",
    "actions": "sequence<double>",
}


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def ros() -> Iterator[tuple[Node, SingleThreadedExecutor]]:
    """A node in its own rclpy context, shut down cleanly whatever the test does."""
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f"test_interfaces_{uuid.uuid4().hex[:8]}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield node, executor
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()


@contextmanager
def child_process(script: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Run test/helpers/<script> with this interpreter; stop it by closing its stdin.

    On exit the child must stop by itself and exit 0 (a clean rclpy shutdown); a child that
    does not is killed and the test fails with its stderr, so a broken child never hangs CI.
    """
    process = subprocess.Popen(
        [sys.executable, str(HELPERS / script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        try:
            _, stderr = process.communicate(timeout=CHILD_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            pytest.fail(f"{script} did not exit after its stdin closed; stderr:\n{stderr}")
    assert process.returncode == 0, f"{script} exited with {process.returncode}; stderr:\n{stderr}"


def spin_until(
    executor: SingleThreadedExecutor,
    done: Callable[[], bool],
    child: subprocess.Popen[str],
    what: str,
    timeout_s: float = DDS_TIMEOUT_S,
) -> None:
    """Spin until done() holds; fail fast with the child's stderr if the child died first."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if child.poll() is not None:
            pytest.fail(f"child exited with {child.returncode} before {what}; stderr:\n{child.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        executor.spin_once(timeout_sec=0.05)


def call(
    executor: SingleThreadedExecutor, client: Client, request: Any, child: subprocess.Popen[str]
) -> Any:
    """Call a service and wait for the response with a timeout."""
    future = client.call_async(request)
    spin_until(executor, future.done, child, f"a response from {client.srv_name}")
    return future.result()


# --- (a) the generated types and their wire format -----------------------------------------


def test_action_chunk_fields_have_the_designed_types() -> None:
    assert ActionChunk.get_fields_and_field_types() == EXPECTED_ACTION_CHUNK_FIELDS
    msg = ActionChunk()
    # Sequences of numbers are array.array (cheap to fill from numpy), strings are lists.
    assert isinstance(msg.actions, array.array) and msg.actions.typecode == "d"
    assert msg.joint_names == []
    assert (msg.step, msg.horizon, msg.dim, msg.dt, msg.has_gripper) == (0, 0, 0, 0.0, False)


def test_episode_interfaces_have_the_designed_fields() -> None:
    assert EpisodeResult.get_fields_and_field_types() == {
        "episode": "uint32",
        "seed": "int64",
        "done": "boolean",
        "success": "boolean",
        "time_to_success": "double",
        "final_distance": "double",
        "target": "geometry_msgs/Point",
        "message": "string",
    }
    assert ResetEpisode.Request.get_fields_and_field_types() == {"seed": "int64"}
    assert ResetEpisode.Response.get_fields_and_field_types() == {
        "success": "boolean",
        "message": "string",
        "result": "robot_brain_msgs/EpisodeResult",
    }
    assert GetEpisodeResult.Request.get_fields_and_field_types() == {}
    assert GetEpisodeResult.Response.get_fields_and_field_types() == {
        "result": "robot_brain_msgs/EpisodeResult"
    }


def test_data_factory_interfaces_have_the_designed_fields() -> None:
    assert EpisodeEvent.get_fields_and_field_types() == {
        "header": "std_msgs/Header",
        "event": "string",
        "episode_id": "string",
        "task": "string",
        "label": "string",
        "message": "string",
    }
    assert (EpisodeEvent.START, EpisodeEvent.DISCARD, EpisodeEvent.REFUSED) == ("start", "discard", "refused")
    # The fields of control_msgs/JointJog, so integrators who know MoveIt Servo's type know this one.
    assert JointJog.get_fields_and_field_types() == {
        "header": "std_msgs/Header",
        "joint_names": "sequence<string>",
        "displacements": "sequence<double>",
        "velocities": "sequence<double>",
        "duration": "double",
    }
    assert StartEpisode.Request.get_fields_and_field_types() == {"task": "string"}
    assert StopEpisode.Request.get_fields_and_field_types() == {"label": "string", "discard": "boolean"}
    for response in (StartEpisode.Response, StopEpisode.Response):
        assert response.get_fields_and_field_types() == {
            "success": "boolean", "episode_id": "string", "message": "string"}


def test_action_chunk_serialization_round_trip() -> None:
    msg = make_action_chunk(SAMPLE_CHUNK)
    data = serialize_message(msg)
    assert isinstance(data, bytes) and len(data) > 8 * len(SAMPLE_CHUNK["actions"])
    back = deserialize_message(data, ActionChunk)
    assert action_chunk_to_dict(back) == SAMPLE_CHUNK
    assert back == msg


def test_episode_service_types_serialization_round_trip() -> None:
    response = ResetEpisode.Response(success=True, message="ok", result=episode_result_for(4, 1234))
    assert deserialize_message(serialize_message(response), ResetEpisode.Response) == response
    request = ResetEpisode.Request(seed=-(2**63))
    assert deserialize_message(serialize_message(request), ResetEpisode.Request).seed == -(2**63)


def test_field_checks_reject_bad_values_when_enabled() -> None:
    # Kilted checks field values only with check_fields=True (or ROS_PYTHON_CHECK_FIELDS=1);
    # without it a bad value is stored and fails later, at serialization.
    with pytest.raises(AssertionError, match="horizon"):
        ActionChunk(horizon=-1, check_fields=True)
    with pytest.raises(AssertionError, match="horizn"):
        ActionChunk(horizn=3, check_fields=True)
    with pytest.raises(AssertionError, match="actions"):
        ActionChunk(check_fields=True).actions = ["not a number"]


def test_out_of_range_value_never_reaches_the_wire_unchecked() -> None:
    msg = ActionChunk()
    msg.horizon = -1  # accepted without check_fields ...
    with pytest.raises((OverflowError, SystemError, TypeError, ValueError)):
        serialize_message(msg)  # ... but refused when it would be sent


# ROS strings are C strings on the wire: an embedded NUL truncates them, so none are generated.
ros_text = st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def action_chunk_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Any valid ActionChunk as plain data, with horizon * dim actions as the design says."""
    horizon = draw(st.integers(0, 16))
    dim = draw(st.integers(0, 9))
    return {
        "stamp_sec": draw(st.integers(-(2**31), 2**31 - 1)),
        "stamp_nanosec": draw(st.integers(0, 10**9 - 1)),
        "frame_id": draw(ros_text),
        "model_id": draw(ros_text),
        "step": draw(st.integers(0, 2**64 - 1)),
        "action_space": draw(
            st.sampled_from(["joint_position", "joint_delta", "ee_pose", "ee_pose_delta", "ee_twist"])
        ),
        "horizon": horizon,
        "dt": draw(finite),
        "dim": dim,
        "joint_names": draw(st.lists(ros_text, max_size=9)),
        "has_gripper": draw(st.booleans()),
        "actions": draw(st.lists(finite, min_size=horizon * dim, max_size=horizon * dim)),
    }


@settings(max_examples=60, deadline=None)
@given(spec=action_chunk_specs())
def test_any_action_chunk_survives_serialization(spec: dict[str, Any]) -> None:
    msg = make_action_chunk(spec)
    assert action_chunk_to_dict(deserialize_message(serialize_message(msg), ActionChunk)) == spec


# --- (b) ActionChunk from another process over DDS -----------------------------------------


@pytest.mark.dds
@pytest.mark.timeout(90)
def test_action_chunk_published_by_another_process_arrives_intact(
    ros: tuple[Node, SingleThreadedExecutor],
) -> None:
    node, executor = ros
    topic = f"/test_interfaces/action_chunk_{uuid.uuid4().hex[:8]}"
    received: list[ActionChunk] = []
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(ActionChunk, topic, received.append, qos)

    with child_process("action_chunk_publisher.py", topic, json.dumps(SAMPLE_CHUNK)) as child:
        spin_until(executor, lambda: bool(received), child, f"an ActionChunk on {topic}")

    got = action_chunk_to_dict(received[0])
    for field, expected in SAMPLE_CHUNK.items():
        assert got[field] == expected, f"field {field}: got {got[field]!r}, expected {expected!r}"
    assert received[0] == make_action_chunk(SAMPLE_CHUNK)


# --- (c) the episode services between two processes ----------------------------------------


@pytest.mark.dds
@pytest.mark.timeout(90)
def test_episode_services_served_by_another_process(ros: tuple[Node, SingleThreadedExecutor]) -> None:
    node, executor = ros
    namespace = f"/test_interfaces/sim_{uuid.uuid4().hex[:8]}"
    reset = node.create_client(ResetEpisode, f"{namespace}/reset_episode")
    get_result = node.create_client(GetEpisodeResult, f"{namespace}/get_episode_result")

    with child_process("episode_service_server.py", namespace) as child:
        for client in (reset, get_result):
            spin_until(executor, client.service_is_ready, child, f"service {client.srv_name}")

        first = call(executor, reset, ResetEpisode.Request(seed=42), child)
        assert first.success, first.message
        assert first.message == "reset to seed 42"
        assert first.result == episode_result_for(1, 42)

        current = call(executor, get_result, GetEpisodeResult.Request(), child)
        assert current.result == episode_result_for(1, 42)

        second = call(executor, reset, ResetEpisode.Request(seed=7), child)
        assert second.success and second.result == episode_result_for(2, 7)

        refused = call(executor, reset, ResetEpisode.Request(seed=-1), child)
        assert not refused.success
        assert refused.message == NEGATIVE_SEED_MESSAGE
        assert refused.result == episode_result_for(2, 7), "a refused reset must not change the episode"

        current = call(executor, get_result, GetEpisodeResult.Request(), child)
        assert current.result.episode == 2 and current.result.seed == 7
        assert current.result.target.x == pytest.approx(0.4 + (7 % 5) * 0.01)
