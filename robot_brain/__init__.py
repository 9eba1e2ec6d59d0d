"""robot_brain: one learned generalist policy on any URDF robot arm, over ROS 2.

Layout (the ROS-free core first, thin ROS shells last):

- ``embodiment``: URDF/xacro loading, arm-chain discovery, limits, Pinocchio kinematics and IK.
- ``control``: safety filter, interpolation, chunk blending, watchdogs, the timed control loop.
- ``inference``: the model contract and the ONNX Runtime session with provider selection.
- ``perception``: image conversion, preprocessing, detectors and camera geometry.
- ``sim``: the embedded MuJoCo simulator (scene from a URDF, task, rendering).
- ``ros``: the only place (besides nodes) that knows ROS message types: conversions.
- ``nodes``: one ROS 2 node per file, wiring parameters and topics to the core.
- ``cli``: the ``robot-brain`` command-line tool.
"""

__version__ = "0.1.0"
