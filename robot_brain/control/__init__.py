"""Pure control core: safety filter, interpolation, chunk blending, watchdogs, the timed loop (ROS-free)."""
