"""The data factory's orchestration over running nodes: collect demonstrations, and the whole loop.

- ``collector``: a scripted operator drives the simulated arm through the teleop path while
  the recorder records (a pad publisher and the episode service calls).
- ``collection``: :func:`~robot_brain.factory.collection.collect`: a simulated cell started in a
  private DDS domain and N demonstrations recorded (``robot-brain collect``).
- ``pipeline``: collect → export → train → evaluate → report (``robot-brain factory``).

The ROS-free pieces they join live in :mod:`robot_brain.episodes`, :mod:`robot_brain.datasets`,
:mod:`robot_brain.learning` and :mod:`robot_brain.teleop` (the scripted operator); the cell
comes from :mod:`robot_brain.bringup`; the nodes are the ones an operator uses.
"""
