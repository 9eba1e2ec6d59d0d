"""ROS 2 nodes, one per file: each wires parameters and topics to the core and nothing more.

Built on :mod:`robot_brain.ros` (the node skeleton, message conversions, parameters); may import
every core and data package. Nothing below imports a node.
"""
