"""A camera image between two processes over Fast DDS: default transports, ``LARGE_DATA``, the shipped profile.

For each transport setting, a publisher process sends 640x480 ``rgb8`` ``sensor_msgs/Image``
messages at ``--rate`` Hz for ``--seconds`` to a subscriber process with sensor-data QoS (what
the perception and policy nodes use); each message is stamped with the wall clock when it is
published, and latency is the subscriber's wall clock in its callback minus that stamp (same
host, same clock; deserialisation and rclpy's dispatch included). Settings:

- ``default``: Fast DDS's default UDP + shared-memory transports (512 KB segment);
- ``LARGE_DATA``: ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA?max_msg_size=2MB`` in both processes;
- ``profile``: ``FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds.xml`` (32 MB segment) in both
  processes, what ``robot-brain up``/``demo``/``teleop`` and the launch files give every node;
- ``profile_pub_only`` / ``profile_sub_only``: the profile in one process only (a camera driver
  of your own beside our nodes), not run unless asked for with ``--transports``.

    .venv/bin/python bench/image_transport.py [--seconds S] [--rate HZ] [--width W --height H]
        [--transports default LARGE_DATA profile ...] [--qos sensor_data reliable reliable_pub] [--json]

Runs in its own DDS domain on this host only (``ROS_DOMAIN_ID`` from the process id unless set).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROFILE = str(Path(__file__).resolve().parents[1] / "config" / "fastdds.xml")
LARGE_DATA = {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA?max_msg_size=2MB"}
SHIPPED = {"FASTDDS_DEFAULT_PROFILES_FILE": PROFILE}
#: Transport setting -> (publisher's extra environment, subscriber's extra environment).
TRANSPORTS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "default": ({}, {}),
    "LARGE_DATA": (LARGE_DATA, LARGE_DATA),
    "profile": (SHIPPED, SHIPPED),
    "profile_pub_only": (SHIPPED, {}),
    "profile_sub_only": ({}, SHIPPED),
}
DEFAULT_TRANSPORTS = ("default", "LARGE_DATA", "profile")


#: QoS setting -> (publisher's profile, subscriber's profile). ``reliable_pub``: a camera driver
#: publishing reliable (the rclpy default) to our nodes' sensor-data subscription.
QOS = {
    "sensor_data": ("sensor_data", "sensor_data"),
    "reliable": ("reliable", "reliable"),
    "reliable_pub": ("reliable", "sensor_data"),
}


def _qos_profile(name: str) -> object:
    from rclpy.qos import QoSProfile, qos_profile_sensor_data

    return {"sensor_data": qos_profile_sensor_data, "reliable": QoSProfile(depth=5)}[name]


def publish(seconds: float, rate: float, width: int, height: int, qos: str) -> None:
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("image_transport_publisher")
    publisher = node.create_publisher(Image, "/bench/image", _qos_profile(QOS[qos][0]))
    deadline = time.monotonic() + 20.0
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let discovery settle on both sides
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3)
    msg.data = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8).tobytes()
    period, sent = 1.0 / rate, 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        publisher.publish(msg)
        sent += 1
        time.sleep(max(0.0, start + sent * period - time.monotonic()))
    print(json.dumps({"sent": sent}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


def subscribe(seconds: float, qos: str) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("image_transport_subscriber")
    latencies_ms: list[float] = []

    def received(msg: Image) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latencies_ms.append((time.time_ns() - stamp) * 1e-6)

    node.create_subscription(Image, "/bench/image", received, _qos_profile(QOS[qos][1]))
    deadline = time.monotonic() + 30.0
    while not latencies_ms and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    end = time.monotonic() + seconds + 2.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps({"latencies_ms": latencies_ms}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


def measure(transport: str, qos: str, seconds: float, rate: float, width: int, height: int) -> dict[str, object]:
    import numpy as np

    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    env.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    for name in ("FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE"):  # only the setting's own
        env.pop(name, None)
    publisher_env, subscriber_env = TRANSPORTS[transport]
    common = [sys.executable, __file__, "--seconds", str(seconds), "--rate", str(rate), "--width", str(width),
              "--height", str(height), "--qos", qos, "--role"]
    subscriber = subprocess.Popen([*common, "sub"], env={**env, **subscriber_env}, stdout=subprocess.PIPE, text=True)
    publisher = subprocess.Popen([*common, "pub"], env={**env, **publisher_env}, stdout=subprocess.PIPE, text=True)
    sent = json.loads(publisher.communicate(timeout=seconds + 60)[0].strip().splitlines()[-1])["sent"]
    latencies = np.array(json.loads(subscriber.communicate(timeout=seconds + 60)[0].strip().splitlines()[-1])
                         ["latencies_ms"])
    return {
        "transport": transport, "qos": qos, "sent": sent,
        "received": int(latencies.size),
        "p50_ms": round(float(np.median(latencies)), 2) if latencies.size else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 2) if latencies.size else None,
        "max_ms": round(float(latencies.max()), 2) if latencies.size else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="publishing time per transport (default 10)")
    parser.add_argument("--rate", type=float, default=30.0, help="images per second (default 30)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--transports", nargs="+", choices=list(TRANSPORTS),
                        default=list(DEFAULT_TRANSPORTS))
    parser.add_argument("--qos", nargs="+", choices=list(QOS), default=["sensor_data", "reliable"],
                        help="sensor_data: best effort, depth 5 (the nodes' camera QoS); reliable: depth 5; "
                        "reliable_pub: a reliable publisher, a sensor-data subscriber")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--role", choices=("pub", "sub"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "pub":
        return publish(args.seconds, args.rate, args.width, args.height, args.qos[0])
    if args.role == "sub":
        return subscribe(args.seconds, args.qos[0])
    rows = [measure(t, q, args.seconds, args.rate, args.width, args.height) for t in args.transports for q in args.qos]
    if not args.json:
        keys = list(rows[0])
        print(" | ".join(keys))
        print(" | ".join("---" for _ in keys))
        for row in rows:
            print(" | ".join(str(row[k]) for k in keys))
    print(json.dumps({"benchmark": "image_transport", "width": args.width, "height": args.height, "rate_hz": args.rate,
                      "seconds": args.seconds, "cores": os.cpu_count(), "rows": rows}))


if __name__ == "__main__":
    main()
