"""Conversions between ROS messages and core types.

The only module tree, besides ``nodes``, that imports ROS message types.
"""
