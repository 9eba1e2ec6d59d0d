"""Recorded episodes: one rosbag2/MCAP folder each, with its manifest, written crash-safe.

- ``store``: the episode store (``<data root>/episodes/``): create, list, open, finalise, recover.
- ``writer``: the streaming MCAP writer (consent checked when an episode starts, fsync'ed chunks).
- ``reader``: messages back out of an episode, CDR-decoded through ``rosbags``.
- ``manifest``: ``manifest.json`` (operator pseudonym, consent, robot, task, streams).
- ``mcap_recovery``: salvaging an episode whose recorder was killed (``ros2 bag reindex`` without ROS).
- ``message_types``: the Kilted message definitions ``rosbags`` needs, custom ones included.
- ``errors``: the episode store's error types.

Nothing here imports rclpy: messages are read and written as CDR. Imports
:mod:`robot_brain.consent`, :mod:`robot_brain.storage` and :mod:`robot_brain.errors`.
"""
