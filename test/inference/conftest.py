"""Fixtures of the inference tests (the DDS ones live in ros_fixtures.py, shared with test/perception)."""

from ros_fixtures import executor, ros_context  # noqa: F401 - pytest fixtures
