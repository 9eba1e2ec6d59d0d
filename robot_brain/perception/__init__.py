"""Image conversion, preprocessing, detectors, camera geometry and the robot self-filter (ROS-free).

Imports ``embodiment`` (the arm's geometry for the self-filter), ``inference`` (learned detectors)
and ``errors``.
"""
