"""Joystick teleoperation, ROS-free: game pads in, operator intent out.

- ``reading``: one pad reading in SDL's standard GameController order (sticks up/left positive,
  triggers in [0, 1]), whatever the input.
- ``gamepad``: SDL2 game controllers through pygame (any pad in SDL's standard layout), hot-plug;
  ``sdl``: the environment SDL needs and ctypes access to pygame's own libSDL2.
- ``joy``: ``sensor_msgs/Joy`` arrays (ROS ``joy`` package) as readings.
- ``virtual_pad``: SDL's virtual game controller, for tests and scripted operators (same process).
- ``mapping``: ``teleop_twist_joy``-style parameters, checked against the device.
- ``operator``: the dead-man, re-arming, speed, frame, gripper, jog, e-stop and episode rules.

The ``teleop`` node wires these to ROS topics; the arm controller's safety filter stays the
only authority over what reaches the arm. docs/teleop.md is the operator's guide.
"""
