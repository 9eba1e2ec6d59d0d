"""Bringing a cell up: which nodes run, with which parameters, in which DDS domain, as which processes.

- ``robots``: ``--robot``/``--urdf`` → a :class:`~robot_brain.bringup.robots.Robot` (presets in
  ``config/robots``, bundled arms, any description file).
- ``params_files``: ROS params files rcl's parser reads; overrides typed as the nodes declare them.
- ``plan``: the single description of the nodes of a launch (``brain_plan``, ``sim_plan``,
  ``teleop_plan``), shared by ``launch/*.launch.py`` and ``robot-brain up``/``demo``/``teleop``.
- ``sim_layout``: what the sim node and perception must agree on when both run from one plan.
- ``gazebo``: the description and controllers for gz sim + gz_ros2_control.
- ``isolation``: a simulated session's private DDS domain and the shipped Fast DDS profile.
- ``processes``: node processes started, watched and stopped in order.
- ``launch_actions``: launch_ros actions of a plan (imported only by the launch files).

Imports the pure core it plans for (``embodiment``, ``sim``) and ``consent`` (a recorder's
operator is resolved to a pseudonym before any node starts); never rclpy.
"""
