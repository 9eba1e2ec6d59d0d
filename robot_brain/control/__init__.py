"""Pure control core: safety filter, interpolation, chunk blending, watchdogs, the timed loop (ROS-free).

Imports ``embodiment`` (limits, kinematics, IK), ``scheduling`` and ``errors`` only.
"""
