"""The ``robot-brain`` command-line tool; every module here with a ``register`` function is a subcommand."""
