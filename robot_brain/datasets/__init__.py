"""LeRobot v3.0 datasets made from recorded episodes, written and read without LeRobot itself.

- ``export``: episodes → one dataset (``robot-brain data export``): consent checked at export
  time, streams put on the dataset's frame grid, joint and end-effector state and action.
- ``resample``: recorded streams resampled by their timestamps; frames missing an input are
  dropped and counted, episodes split at gaps.
- ``lerobot``: the dataset writer (parquet, videos, ``meta/``), finalised atomically.
- ``lerobot_format``: the format's layout, features and schemas.
- ``lerobot_reader``: the reader training uses (refuses stale or tampered datasets).
- ``video``: PyAV encoding with frame counts checked, concatenation, decoding.
- ``stats``: LeRobot's per-feature statistics.
- ``dataset_provenance``: ``meta/provenance.json``, the content hash, the dataset card.

Imports :mod:`robot_brain.episodes`, :mod:`robot_brain.consent`, :mod:`robot_brain.storage`,
and the pure :mod:`robot_brain.embodiment` (end-effector poses) and
:mod:`robot_brain.perception` (image decoding). Never torch, never rclpy.
"""
