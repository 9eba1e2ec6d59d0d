"""robot_brain: one learned generalist policy on any URDF robot arm, over ROS 2.

Layout (the ROS-free core first, thin ROS shells last; ``test/test_architecture.py`` enforces
which package may import which):

- ``embodiment``: URDF/xacro loading, arm-chain discovery, limits, Pinocchio kinematics and IK.
- ``control``: safety filter, interpolation, chunk blending, watchdogs, the timed control loop.
- ``inference``: the model contract and the ONNX Runtime session with provider selection.
- ``perception``: image conversion, preprocessing, detectors, camera geometry, the self-filter.
- ``sim``: the embedded MuJoCo simulator (scene from a URDF, task, rendering).
- ``teleop``: game pads and Joy input, the operator's rules, a scripted operator.
- ``storage``, ``consent``, ``episodes``, ``datasets``, ``learning``, ``erasure``: the data
  factory, in that order of dependence (``learning`` is the only torch importer).
- ``ros``: message conversions, parameters, diagnostics and the one node skeleton.
- ``nodes``: one ROS 2 node per file, wiring parameters and topics to the core.
- ``benchmarks``, ``bringup``, ``demo``, ``factory``: what runs and measures a cell of nodes.
- ``cli``: the ``robot-brain`` command-line tool (parsing and printing only).
"""

__version__ = "0.1.0"
