"""ROS client code over the core: message conversions, parameters, diagnostics and the one node skeleton.

- ``node_skeleton``: lifecycle, supervised workers, signals that brake before shutdown; every node uses it.
- ``params``, ``arm_params``, ``model_params``: declaring and reading parameters (the robot
  description, the model and ONNX Runtime's settings).
- ``diagnostics``, ``model_diagnostics``: ``diagnostic_msgs`` as every node publishes them.
- ``image``, ``control_msgs``, ``policy_io``, ``perception_io``, ``sim_io``, ``recording``:
  conversions between messages and core types.
- ``teleop_status``: the listener behind ``robot-brain teleop``'s status line.

The only module tree, besides ``nodes`` (and the orchestration above them), that imports rclpy
and ROS message types. Imports the core (and ``episodes``/``consent``/``storage`` for recording).
"""
