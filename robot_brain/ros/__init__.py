"""Conversions between ROS messages and the core types: the only module tree, besides nodes, that imports message types."""
