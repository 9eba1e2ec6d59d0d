"""The ``robot-brain`` command-line tool; every module here with a ``register`` function is a subcommand.

Argument parsing and printing only: what a subcommand runs lives below it (``bringup``, ``demo``,
``factory``, ``benchmarks``, the data packages). Nothing imports ``cli``; it imports no rclpy.
"""
