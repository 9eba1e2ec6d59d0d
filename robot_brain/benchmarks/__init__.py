"""Measurements of the running nodes that ``robot-brain bench`` prints (the scripts in ``bench/`` use them too).

- ``control_loop``: the arm controller node's loop timing against a DDS peer process, beside
  same-run rclpy timer baselines (``robot-brain bench control``).

ROS client code above the nodes it measures; nothing below imports it.
"""
