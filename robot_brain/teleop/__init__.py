"""Joystick teleoperation, ROS-free: game pads in, operator intent out.

- ``gamepad``: SDL2 game controllers through pygame (any pad in SDL's standard layout), hot-plug.
- ``mapping``: ``teleop_twist_joy``-style parameters, checked against the device.
- ``operator``: the dead-man, reconnect, speed, frame, gripper, jog, e-stop and episode rules.

The ``teleop`` node wires these to ROS topics; the arm controller's safety filter stays the
only authority over what reaches the arm.
"""
