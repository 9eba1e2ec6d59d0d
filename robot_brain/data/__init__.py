"""The data factory's ROS-free core: consent, episodes and provenance, datasets, training.

- ``consent``: the consent registry (pseudonymous operators, scopes, a hash-chained audit log).
- ``episodes``: one rosbag2/MCAP folder per recorded episode, its manifest, crash recovery.
- ``lerobot``: LeRobot v3.0 datasets, written and read without LeRobot itself.
- ``training``: behaviour cloning in PyTorch and ONNX export with contract and provenance.

Nothing here imports rclpy: messages are read and written as CDR through ``rosbags``.
"""
