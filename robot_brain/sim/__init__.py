"""Embedded MuJoCo simulator: scene from a URDF, the reach task, rendering (ROS-free)."""
