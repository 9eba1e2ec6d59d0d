"""The site's data root and the file primitives every data package writes through.

- ``paths``: the data root (``--data-root``, ``$ROBOT_BRAIN_DATA_ROOT``, ``~/.local/share/robot_brain``)
  and its layout (``consent/``, ``episodes/``, ``datasets/``).
- ``files``: crash-safe writes (atomic replace, durable append, fsync), an fcntl lock, JSON
  reading with one-line errors, file SHA-256.
- ``times``: timezone-aware UTC timestamps as ISO 8601 text.

Imports only :mod:`robot_brain.errors`: consent, episodes, datasets and learning all build on it.
"""
