"""Image conversion, preprocessing, detectors and camera geometry (ROS-free)."""
