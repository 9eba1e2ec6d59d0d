"""Recording and export: one episode of a 640x480 camera at 30 Hz and /joint_states at 500 Hz, then LeRobot export.

    .venv/bin/python bench/recording.py [--robot panda] [--seconds 60] [--codecs h264 libsvtav1] [--fps 20]
        [--probe] [--keep DIR] [--json]

What runs (issue 10's benchmark): the MuJoCo sim (camera 640x480 rgb8 at 30 Hz, /joint_states
and /clock at 500 Hz), the arm controller and the recorder (``operator: scripted``) as node
processes, from the launch plan ``robot-brain teleop --sim --record`` uses (``teleop_plan``,
without the pad's teleop node), started by ``NodeProcesses`` in a private DDS domain with the
shipped Fast DDS profile. This process is the scripted operator: it publishes a slow circle on
``/teleop/twist`` at 50 Hz (so the controller commands the arm and the episode has actions),
and starts and stops one episode through the recorder's ``~/start_episode`` / ``~/stop_episode``.

Reported:

- **dropped messages**, three ways: the manifest's dropped and late counts (the recorder's
  queue, and messages DDS reported lost before they reached it); the recorded header-stamp
  sequences of /joint_states and the camera (messages the stamps' span should hold at the
  nominal rate minus those recorded, and steps over 2.5 periods), which also reveal messages
  lost before they reached the recorder; and, with ``--probe``, the stamps a second subscriber
  in this process received that the bag lacks (lost on the way to the recorder or in it) as
  opposed to stamps neither received (not published: the sim fell behind its schedule). The
  probe is off by default: on 2 cores its ~20 % of a core is taken from the sim, whose camera
  then renders fewer frames;
- the recorder process's CPU (``/proc/<pid>/stat`` over the episode, % of one core), with the
  sim's and the controller's beside it, and the bytes it wrote (``/proc/<pid>/io`` ``wchar``);
- MB/s into the bag, against the camera's raw data rate (same-run baseline: width x height x 3
  x the frames recorded per second) and this disk's sequential write speed (same folder,
  256 MB in 4 MB blocks, fsync);
- export of the episode with each codec (``robot_brain.datasets.export.export_episodes``, what
  ``robot-brain data export`` runs): frames/s and dataset size against the bag's.

Prints a table and one JSON line. The episode and the datasets are in a temporary data root,
removed at the end unless ``--keep DIR``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CAMERA_TOPIC = "/camera/image_raw"
JOINT_TOPIC = "/joint_states"
TWIST_RATE_HZ = 50.0
RECORDED_NODES = ("sim", "arm_controller", "recorder")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- /proc -------------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, s (``/proc/<pid>/stat`` fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (``/proc/stat``): how loaded it was."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def written_bytes(pid: int) -> int | None:
    """Bytes the process has passed to write() so far (``wchar``), or None where /proc/<pid>/io is not readable."""
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def disk_write_speed(folder: Path, megabytes: int = 256, block_mb: int = 4) -> float:
    """Sequential write speed of ``folder``'s disk, MB/s (written, fsynced, removed): the ceiling for a bag."""
    block = os.urandom(block_mb * 1_000_000)
    path = folder / "disk_speed.tmp"
    started = time.perf_counter()
    with open(path, "wb") as handle:
        for _ in range(megabytes // block_mb):
            handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
    seconds = time.perf_counter() - started
    path.unlink()
    return megabytes / seconds


# -- header stamps ------------------------------------------------------------------------------------------------


def header_stamp_ns(raw: bytes) -> int:
    """``header.stamp`` of a serialized message that starts with a std_msgs/Header (JointState, Image), ns.

    CDR: a 4-byte encapsulation header (``00 01``: little endian), then ``int32 sec``, ``uint32 nanosec``.
    """
    if raw[1] != 1:
        raise ValueError(f"expected little-endian CDR, found encapsulation {raw[:2].hex()}")
    sec, nanosec = struct.unpack_from("<iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


def stamp_gaps(stamps: list[int], rate_hz: float) -> dict[str, Any]:
    """Messages missing from a stamp sequence published every ``1/rate_hz`` s.

    ``missing``: the messages the stamps' time span should hold at ``rate_hz`` minus those
    present (robust to stamp jitter); ``surplus``: more than that (duplicates); ``gaps``:
    steps over 2.5 periods (at least one message clearly missing there), the longest step.
    """
    period_ns = 1e9 / rate_hz
    array = np.asarray(stamps, dtype=np.int64)
    if array.size < 2:
        return {"messages": int(array.size), "expected": int(array.size), "missing": 0, "surplus": 0, "gaps": 0,
                "longest_step_ms": 0.0, "out_of_order": 0, "rate_hz": 0.0}
    steps = np.diff(array)
    expected = int(np.rint((array[-1] - array[0]) / period_ns)) + 1
    return {
        "messages": int(array.size),
        "expected": expected,
        "missing": max(expected - int(array.size), 0),
        "surplus": max(int(array.size) - expected, 0),
        "gaps": int(np.sum(steps > 2.5 * period_ns)),
        "longest_step_ms": round(float(steps.max()) * 1e-6, 1),
        "out_of_order": int(np.sum(steps <= 0)),
        "rate_hz": round((array.size - 1) / ((array[-1] - array[0]) * 1e-9), 2),
    }


def bag_stamps(store: Any, episode_id: str, topics: tuple[str, ...]) -> dict[str, list[int]]:
    """Header stamps of ``topics`` in the recorded bag, in recording order (raw CDR, nothing decoded)."""
    stamps: dict[str, list[int]] = {topic: [] for topic in topics}
    with store.open_episode(episode_id) as reader:
        for message in reader.messages(list(topics), decode=False):
            stamps[message.topic].append(header_stamp_ns(message.message))  # type: ignore[arg-type]
    return stamps


# -- the run ------------------------------------------------------------------------------------------------------


class Operator:
    """This process's ROS side: the scripted twist, the recorder's services, its diagnostics, the probe."""

    def __init__(self, context: Any, probe: bool) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import TwistStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        from robot_brain_msgs.srv import StartEpisode, StopEpisode
        from sensor_msgs.msg import Image, JointState

        self.node = rclpy.create_node("recording_bench", context=context)
        self._twist_type = TwistStamped
        self.twists = self.node.create_publisher(TwistStamped, "/teleop/twist", qos_profile_sensor_data)
        self.start_client = self.node.create_client(StartEpisode, "/recorder/start_episode")
        self.stop_client = self.node.create_client(StopEpisode, "/recorder/stop_episode")
        self._start_type, self._stop_type = StartEpisode, StopEpisode
        self.recorder_values: dict[str, str] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, QoSProfile(depth=50))
        self.probed: dict[str, list[int]] = {JOINT_TOPIC: [], CAMERA_TOPIC: []}
        self.probing = False
        if probe:  # raw: stamps only, as cheap as a subscriber gets in Python
            self.node.create_subscription(JointState, JOINT_TOPIC, lambda raw: self._probe(JOINT_TOPIC, raw),
                                          QoSProfile(depth=1000), raw=True)
            self.node.create_subscription(Image, CAMERA_TOPIC, lambda raw: self._probe(CAMERA_TOPIC, raw),
                                          QoSProfile(depth=100, reliability=qos_profile_sensor_data.reliability),
                                          raw=True)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()
        self._stop_twist = threading.Event()
        self._twister: threading.Thread | None = None

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.split(":")[0].strip() == "recorder":  # "<node>: <task>"
                self.recorder_values = {item.key: item.value for item in status.values}

    def _probe(self, topic: str, raw: bytes) -> None:
        if self.probing:
            self.probed[topic].append(header_stamp_ns(raw))

    def start_twist(self, radius_speed: float = 0.05, period_s: float = 8.0) -> None:
        """A slow circle in the base frame's y-z plane: the arm moves, the controller commands, nothing runs away."""

        def publish() -> None:
            msg = self._twist_type()
            started = time.monotonic()
            tick = 0
            while not self._stop_twist.is_set():
                phase = 2.0 * math.pi * (time.monotonic() - started) / period_s
                msg.header.stamp = self.node.get_clock().now().to_msg()
                msg.twist.linear.y = radius_speed * math.cos(phase)
                msg.twist.linear.z = radius_speed * math.sin(phase)
                self.twists.publish(msg)
                tick += 1
                self._stop_twist.wait(max(0.0, started + tick / TWIST_RATE_HZ - time.monotonic()))

        self._twister = threading.Thread(target=publish, daemon=True)
        self._twister.start()

    def stop_twist(self) -> None:
        self._stop_twist.set()
        if self._twister is not None:
            self._twister.join(timeout=2.0)

    def call(self, client: Any, request: Any, timeout: float = 30.0) -> Any:
        if not client.wait_for_service(timeout_sec=timeout):
            raise SystemExit(f"recording: {client.srv_name} not available after {timeout:.0f} s")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise SystemExit(f"recording: {client.srv_name} did not answer in {timeout:.0f} s")
            time.sleep(0.01)
        return future.result()

    def start_episode(self) -> Any:
        return self.call(self.start_client, self._start_type.Request(task="recording benchmark"))

    def stop_episode(self) -> Any:
        return self.call(self.stop_client, self._stop_type.Request(label="success"))

    def close(self) -> None:
        self.stop_twist()
        self.executor.shutdown(timeout_sec=2.0)
        self._spinner.join(timeout=5.0)
        self.node.destroy_node()


def _wait(predicate: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if not alive():
            raise SystemExit(f"recording: a node exited while waiting for {what} (see the nodes' log)")
        if time.monotonic() > deadline:
            raise SystemExit(f"recording: timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def record(args: argparse.Namespace, root: Path, folder: Path) -> dict[str, Any]:
    """Start the nodes, record one episode, stop the nodes; what was measured while they ran."""
    import rclpy
    from rclpy.context import Context

    from robot_brain.bringup.isolation import isolate_dds
    from robot_brain.bringup.plan import sim_plan, teleop_plan
    from robot_brain.bringup.processes import NodeProcesses
    from robot_brain.bringup.robots import resolve_robot

    domain = isolate_dds()  # private domain, this host only, and the shipped Fast DDS profile
    sim = {"camera_width": args.width, "camera_height": args.height, "camera_rate_hz": args.camera_rate,
           "publish_rate_hz": args.joint_rate}
    base = sim_plan(resolve_robot(args.robot), overrides={"sim": sim})
    plan = teleop_plan(base, record={"operator": "scripted", "task": "recording benchmark", "data_root": str(root)})
    plan = type(plan)(robot=plan.robot, nodes=tuple(n for n in plan.nodes if n.name in RECORDED_NODES),
                      arm=plan.arm, layout=plan.layout)
    log = folder / "nodes.log"
    group = NodeProcesses(output=_Sink(), log_file=log)
    group.start(plan.commands(folder / "params", sys.executable))
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    operator = Operator(context, probe=args.probe)
    alive = lambda: group.first_exit() is None  # noqa: E731
    try:
        _wait(lambda: bool(operator.recorder_values), 120.0, "the recorder's diagnostics", alive)
        _wait(lambda: int(operator.recorder_values.get("subscribed_topics", "0")) >= 4, 60.0,
              "the recorder to subscribe to the sim's and the controller's topics", alive)
        operator.start_twist()
        time.sleep(2.0)  # the arm moves, and the recorder has found /teleop/twist too
        pids = {name: group.processes[name].pid for name in RECORDED_NODES}
        pids["bench (operator, probe)"] = os.getpid()
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        machine_before = machine_busy_seconds()
        written_before = written_bytes(pids["recorder"])
        operator.probing = True
        started = time.monotonic()
        answer = operator.start_episode()
        if not answer.success:
            raise SystemExit(f"recording: start refused: {answer.message}")
        time.sleep(args.seconds)
        stop_asked = time.monotonic()
        answer = operator.stop_episode()
        stopped = time.monotonic()
        operator.probing = False
        if not answer.success:
            raise SystemExit(f"recording: stop failed: {answer.message}")
        wall = stopped - started
        cpu = {name: 100.0 * (cpu_seconds(pid) - cpu_before[name]) / wall for name, pid in pids.items()}
        machine_after = machine_busy_seconds()
        machine_busy = 100.0 * (machine_after[0] - machine_before[0]) / (machine_after[1] - machine_before[1])
        written_after = written_bytes(pids["recorder"])
        episode_id = answer.episode_id
        stop_message = answer.message
    finally:
        operator.close()
        context.try_shutdown()
        codes = group.stop()
    return {
        "episode_id": episode_id,
        "stop_message": stop_message,
        "wall_s": wall,
        "stop_s": stopped - stop_asked,
        "cpu_percent": {name: round(value, 1) for name, value in cpu.items()},
        "machine_busy_percent": round(machine_busy, 1),
        "recorder_wchar_mb": round((written_after - written_before) / 1e6, 1)
        if written_before is not None and written_after is not None else None,
        "probed": operator.probed if args.probe else None,
        "exit_codes": codes,
        "domain": domain,
    }


def analyse(args: argparse.Namespace, root: Path, run: dict[str, Any]) -> dict[str, Any]:
    """Counts, drops and gaps of the recorded episode, and the write rate against the baselines."""
    from robot_brain.episodes.store import EpisodeStore

    store = EpisodeStore(root)
    manifest = store.load_manifest(run["episode_id"])
    episode_dir = store.episode_dir(run["episode_id"])
    bag_bytes = sum(path.stat().st_size for path in episode_dir.rglob("*") if path.is_file())
    duration = manifest.duration_s
    rates = {topic: rate for topic, rate in ((JOINT_TOPIC, args.joint_rate), (CAMERA_TOPIC, args.camera_rate)) if rate}
    stamps = bag_stamps(store, run["episode_id"], tuple(rates))
    gaps = {topic: stamp_gaps(stamps[topic], rates[topic]) for topic in stamps}
    probe: dict[str, Any] = {}
    if run["probed"] is not None:
        for topic, seen in run["probed"].items():
            if topic not in stamps:
                continue
            recorded = set(stamps[topic])
            window = [s for s in seen if stamps[topic] and stamps[topic][0] <= s <= stamps[topic][-1]]
            lost = sorted(set(window) - recorded)
            probe[topic] = {
                "probe_received": len(window),
                "probe_gaps": stamp_gaps(sorted(window), rates[topic]) if len(window) > 1 else None,
                "received_by_probe_not_in_bag": len(lost),
                "in_bag_not_received_by_probe": len(recorded - set(window)),
                "not_in_bag_at_s": [round((stamp - stamps[topic][0]) * 1e-9, 3) for stamp in lost[:20]],
            }
    camera_frames = manifest.topics[CAMERA_TOPIC].count
    camera_raw_mb_s = args.width * args.height * 3 * camera_frames / duration / 1e6
    return {
        "duration_s": round(duration, 2),
        "topics": {name: {"count": record.count, "dropped": record.dropped, "late": record.late}
                   for name, record in manifest.topics.items() if record.count or record.dropped or record.late},
        "dropped": sum(record.dropped for record in manifest.topics.values()),
        "late": sum(record.late for record in manifest.topics.values()),
        "stamp_gaps": gaps,
        "probe": probe,
        "bag_mb": round(bag_bytes / 1e6, 1),
        "bag_mb_s": round(bag_bytes / 1e6 / duration, 2),
        "camera_raw_mb_s": round(camera_raw_mb_s, 2),
        "camera_nominal_mb_s": round(args.width * args.height * 3 * args.camera_rate / 1e6, 2),
        "bag_bytes": bag_bytes,
    }


def export(args: argparse.Namespace, root: Path, episode_id: str, bag_bytes: int) -> list[dict[str, Any]]:
    """The episode exported once per codec: speed, size against the bag, frames dropped by the resampling."""
    from robot_brain.datasets.export import export_episodes

    rows = []
    for codec in args.codecs:
        out = root / "datasets" / f"bench-{codec}"
        report = export_episodes(root, [episode_id], out, fps=args.fps, codec=codec, audit=False)
        rows.append({
            "codec": codec,
            "fps": args.fps,
            "frames": report.frames,
            "grid_frames": report.grid_frames,
            "dropped_frames": report.dropped_frames,
            "dropped_by_reason": dict(report.dropped_by_reason),
            "seconds": round(report.seconds, 1),
            "frames_per_s": round(report.frames_per_second, 1),
            "realtime_factor": round(report.frames / args.fps / report.seconds, 2) if report.seconds else None,
            "dataset_mb": round(report.size_bytes / 1e6, 2),
            "dataset_vs_bag": round(report.size_bytes / bag_bytes, 4),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robot", default="panda")
    parser.add_argument("--seconds", type=float, default=60.0, help="episode length, s (default 60)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--camera-rate", type=float, default=30.0, help="camera frames per second (default 30)")
    parser.add_argument("--joint-rate", type=float, default=500.0, help="/joint_states per second (default 500)")
    parser.add_argument("--codecs", nargs="*", choices=("h264", "libsvtav1"), default=["h264", "libsvtav1"],
                        help="export codecs (none: no export)")
    parser.add_argument("--fps", type=int, default=20, help="dataset frames per second (default 20, the export's)")
    parser.add_argument("--probe", action="store_true",
                        help="a second subscriber of /joint_states and the camera in this process, to tell messages "
                        "lost on the way to the recorder from messages never published (costs ~20 %% of a core)")
    parser.add_argument("--keep", type=Path, help="keep the data root (episode, datasets, node logs) here")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="robot_brain_bench_recording_"))
    folder = root / "run"
    folder.mkdir()
    try:
        load = os.getloadavg()
        run = record(args, root, folder)
        recorded = analyse(args, root, run)
        if run["probed"] is not None:  # for a closer look with --keep
            (folder / "probe_stamps.json").write_text(json.dumps(run["probed"]), encoding="utf-8")
        disk = disk_write_speed(root)
        exports = export(args, root, run["episode_id"], recorded["bag_bytes"]) if args.codecs else []
        report = {
            "benchmark": "recording",
            "robot": args.robot,
            "seconds": args.seconds,
            "camera": f"{args.width}x{args.height} rgb8 at {args.camera_rate:g} Hz",
            "joint_states_hz": args.joint_rate,
            "probe": args.probe,
            "cores": os.cpu_count(),
            "load_average_at_start": [round(v, 2) for v in load],
            "episode": {k: v for k, v in run.items() if k not in ("probed",)},
            "recorded": {k: v for k, v in recorded.items() if k != "bag_bytes"},
            "baselines": {"camera_raw_mb_s": recorded["camera_raw_mb_s"],
                          "camera_nominal_mb_s": recorded["camera_nominal_mb_s"],
                          "disk_write_mb_s": round(disk, 1)},
            "export": exports,
        }
        if not args.json:
            print(table(report))
        print(json.dumps(report))
    finally:
        if args.keep is not None:
            args.keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(root), str(args.keep))
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def table(report: dict[str, Any]) -> str:
    recorded, episode = report["recorded"], report["episode"]
    lines = ["measurement | value", "--- | ---"]
    for topic in recorded["stamp_gaps"]:
        gap = recorded["stamp_gaps"][topic]
        counts = recorded["topics"].get(topic, {"count": 0, "dropped": 0, "late": 0})
        lines.append(f"{topic}: recorded / dropped / late | {counts['count']} / {counts['dropped']} / {counts['late']}"
                     f" ({gap['rate_hz']} Hz by stamps)")
        lines.append(f"{topic}: by stamps: missing / surplus / gaps / longest step | {gap['missing']} of "
                     f"{gap['expected']} / {gap['surplus']} / {gap['gaps']} / {gap['longest_step_ms']} ms")
        probe = recorded["probe"].get(topic)
        if probe:
            lines.append(f"{topic}: probe received / received but not in bag | {probe['probe_received']} / "
                         f"{probe['received_by_probe_not_in_bag']}")
    lines.append(f"all topics: dropped / late (manifest) | {recorded['dropped']} / {recorded['late']}")
    cpu = episode["cpu_percent"]
    lines.append(f"CPU % of one core: recorder / sim / arm_controller / this bench | {cpu['recorder']} / "
                 f"{cpu['sim']} / {cpu['arm_controller']} / {cpu['bench (operator, probe)']}")
    lines.append(f"machine busy, all {report['cores']} cores | {episode['machine_busy_percent']} %")
    lines.append(f"bag: MB / MB/s | {recorded['bag_mb']} / {recorded['bag_mb_s']}")
    baselines = report["baselines"]
    lines.append(f"baseline: camera raw MB/s (recorded frames) / nominal | {baselines['camera_raw_mb_s']} / "
                 f"{baselines['camera_nominal_mb_s']}")
    lines.append(f"baseline: disk sequential write MB/s | {baselines['disk_write_mb_s']}")
    lines.append(f"stop_episode answered in | {episode['stop_s']:.2f} s")
    for row in report["export"]:
        lines.append(f"export {row['codec']} at {row['fps']} fps: frames/s / x real time | {row['frames_per_s']} / "
                     f"{row['realtime_factor']}")
        lines.append(f"export {row['codec']}: dataset MB / of the bag / frames kept of grid | {row['dataset_mb']} / "
                     f"{100 * row['dataset_vs_bag']:.2f} % / {row['frames']} of {row['grid_frames']}")
    return "\n".join(lines)


class _Sink:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main())
