"""The data factory's ROS-free core: consent, episodes and provenance, datasets, training.

- ``paths``: the data root (``--data-root``, ``$ROBOT_BRAIN_DATA_ROOT``, ``~/.local/share/robot_brain``) and its layout.
- ``files``: crash-safe file primitives (atomic replace, durable append, fcntl lock).
- ``times``: timezone-aware UTC timestamps as ISO 8601 text.
- ``consent``: the consent registry (pseudonymous operators, scopes, a hash-chained audit log).
- ``audit``: the site's hash-chained audit log; ``append_audit`` for other modules' events.
- ``episodes``: one rosbag2/MCAP folder per recorded episode, its manifest, crash recovery.
- ``lerobot``: LeRobot v3.0 datasets, written and read without LeRobot itself
  (``lerobot_format``: layout, features, schemas; ``lerobot_reader``: the reader for training;
  ``video``: PyAV encoding with frame counts checked, concatenation, decoding; ``stats``: LeRobot's
  feature statistics; ``dataset_provenance``: ``meta/provenance.json``, content hash, dataset card).
- ``resample``: recorded streams put on a dataset's frame grid by their timestamps; frames missing
  an input are dropped and counted, episodes split at gaps.
- ``export``: recorded episodes → one LeRobot dataset (``robot-brain data export``): consent checked at
  export time, streams resampled by their timestamps, joint and end-effector state and action.
- ``purge``: the right to erasure (``robot-brain data purge``): an operator's episodes removed, datasets
  made from them marked stale (``STALE.json``, refused by the reader) or rebuilt without them.
- ``training``: behaviour cloning in PyTorch and ONNX export with contract and provenance
  (``training_data``: consent screening at training time, chunk labels, statistics, images;
  ``policies``: the torch modules; ``training_config``/``training_loop``: settings, the resumable
  loop, checkpoints, DDP; ``training_progress``: progress bar and loss curve; ``onnx_export``:
  export checked against PyTorch and the policy runtime; ``model_provenance``: a model's
  provenance and its check against the current consent registry, torch-free).

Nothing here imports rclpy: messages are read and written as CDR through ``rosbags``.
"""
