"""The data factory's orchestration over running nodes: collect demonstrations, and the whole loop.

- ``collector``: a scripted operator drives the simulated arm through the teleop path while
  the recorder records (``robot-brain collect``).
- ``pipeline``: collect → export → train → evaluate → report (``robot-brain factory``).

The ROS-free pieces they join live in ``robot_brain.data`` (episodes, export, training) and
``robot_brain.teleop`` (the scripted operator); the nodes are the ones an operator uses.
"""
