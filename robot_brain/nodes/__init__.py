"""ROS 2 nodes, one per file: each wires parameters and topics to the core and nothing more."""
