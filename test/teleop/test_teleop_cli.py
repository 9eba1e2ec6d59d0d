"""``robot-brain teleop --sim --record`` end to end: real node processes, Joy messages as the operator's pad,
an episode recorded by the recorder into the data root, the status line in the terminal, Ctrl-C in order.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import rclpy
from helpers.cell_system import wait_for
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from robot_brain_msgs.msg import EpisodeEvent
from sensor_msgs.msg import Joy

from robot_brain.consent.registry import ConsentRegistry
from robot_brain.episodes.store import EpisodeStore

pytestmark = [pytest.mark.dds, pytest.mark.slow, pytest.mark.timeout(240)]
START, LEFT_SHOULDER = 6, 9


def private_domain(lines: list[str]) -> int | None:
    """The private DDS domain the teleop CLI says its simulated cell runs in."""
    for line in list(lines):
        found = re.search(r"private DDS domain (\d+)", line)
        if found:
            return int(found.group(1))
    return None


def test_teleop_cli_drives_the_sim_with_joy_and_records_an_episode(tmp_path: Path) -> None:
    env = {**os.environ, "ROBOT_BRAIN_DATA_ROOT": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    # A person drives with a pad, so the episode needs that person's record consent.
    pseudonym = ConsentRegistry(tmp_path / "data").enroll("Grace Hopper", "record").operator.pseudonym
    process = subprocess.Popen(
        [sys.executable, "-m", "robot_brain.cli.main", "teleop", "--sim", "--robot", "ur5", "--input", "joy",
         "--record", "--operator", "Grace Hopper", "--task", "reach the cube", "--log", str(tmp_path / "nodes.log"),
         "--param", "sim.camera_rate_hz=5.0", "--param", "arm_controller.realtime_priority=0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()  # type: ignore[arg-type]
    try:
        wait_for(lambda: private_domain(lines) is not None, 60.0, "the CLI to print its private DDS domain")
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    user_domain, cell_domain = int(os.environ["ROS_DOMAIN_ID"]), private_domain(lines)
    assert cell_domain != user_domain
    # The operator's pad publishes in the user's own domain, as a joy_node they started would;
    # the CLI relays it into the cell's. The episode events are only seen in the cell's domain.
    contexts, executors = [Context(), Context()], []
    rclpy.init(context=contexts[0], domain_id=user_domain)
    rclpy.init(context=contexts[1], domain_id=cell_domain)
    node = rclpy.create_node("operator_pad", context=contexts[0])
    joy = node.create_publisher(Joy, "/joy", 10)
    watcher = rclpy.create_node("episode_watcher", context=contexts[1])
    answers: list[EpisodeEvent] = []
    watcher.create_subscription(EpisodeEvent, "/episode/events", answers.append, 50)
    spinners = []
    for context, each in zip(contexts, (node, watcher), strict=True):
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(each)
        executors.append(executor)
        spinners.append(threading.Thread(target=executor.spin, daemon=True))
        spinners[-1].start()

    state = {"deadman": False, "left_y": 0.0, "start": False}
    publishing = threading.Event()

    def publish_pad() -> None:  # joy_node publishes continuously (autorepeat): so does this pad
        while not publishing.wait(0.02):
            buttons = [0] * 15
            buttons[LEFT_SHOULDER], buttons[START] = int(state["deadman"]), int(state["start"])
            joy.publish(Joy(axes=[0.0, float(state["left_y"]), 0.0, 0.0, 0.0, 0.0], buttons=buttons))

    def pad(seconds: float, *, deadman: bool = False, left_y: float = 0.0, start: bool = False) -> None:
        state.update(deadman=deadman, left_y=left_y, start=start)
        time.sleep(seconds)

    try:
        wait_for(lambda: any("waiting for /joy" in line for line in lines), 120.0, "the status line (no pad yet)")
        wait_for(lambda: joy.get_subscription_count() > 0, 30.0, "the teleop node")
        threading.Thread(target=publish_pad, daemon=True).start()
        wait_for(lambda: any("pad /joy" in line for line in lines), 10.0, "the status line to show the Joy pad")
        pad(0.5)
        # The recorder comes up beside the pad. Until it has matched the teleop node's events
        # publisher, a press is not sent (the node says so and stays idle): press again, as a
        # person would, until an episode folder appears; never once one did. The folders, not
        # this process's DDS subscription, tell: a subscription made here can match the teleop
        # node's publisher seconds late.
        store = EpisodeStore(tmp_path / "data")

        def episodes() -> list[str]:
            return [entry.episode_id for entry in store.list_episodes()] if (tmp_path / "data" / "episodes").is_dir() \
                else []

        for _ in range(10):
            pad(0.2, start=True)
            pad(0.3)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and not episodes():
                time.sleep(0.05)
            if episodes():
                break
        wait_for(lambda: bool(episodes()), 1.0, "the recorder to start an episode")
        pad(1.5, deadman=True, left_y=1.0)
        pad(0.5)
        pad(0.2, start=True)  # start while recording: end as success
        pad(0.3)
        wait_for(lambda: any(entry.manifest is not None and entry.manifest.state == "complete"
                             for entry in store.list_episodes()), 20.0, "the episode to be saved")
    finally:
        publishing.set()
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(timeout=60)
        for executor, spinner in zip(executors, spinners, strict=True):
            executor.shutdown(timeout_sec=2.0)
            spinner.join(timeout=5.0)
        node.destroy_node()
        watcher.destroy_node()
        for context in contexts:
            context.try_shutdown()
    output = "".join(lines)
    assert code == 0, output[-3000:]
    assert "Traceback" not in output and "Traceback" not in (tmp_path / "nodes.log").read_text()
    (episode,) = EpisodeStore(tmp_path / "data").list_episodes()
    manifest = episode.manifest
    assert manifest is not None and manifest.state == "complete" and manifest.label == "success"
    assert manifest.operator == pseudonym and manifest.operator_kind == "human"
    assert manifest.task == "reach the cube" and manifest.robot.name == "ur5"
    assert "Grace" not in output and "Grace" not in (tmp_path / "nodes.log").read_text()
    assert manifest.topics["/joint_states"].count > 100 and manifest.topics["/teleop/twist"].count > 20
    assert manifest.topics["/forward_position_controller/commands"].count > 100
    log = (tmp_path / "nodes.log").read_text()
    assert log.index("[teleop") < log.rindex("stopped in order")
