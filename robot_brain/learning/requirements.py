"""Installs the runtime leaves out, and the one-line error when a command needs one.

Training is the only such part: PyTorch is in ``requirements/train.txt``, not in
``requirements/base.txt`` (a cell computer that only runs the brain does not need 800 MB of
torch, and an unpinned torch resolves to a multi-GB CUDA build). ``make install`` installs
both; the colcon path installs base.txt only.
"""

from __future__ import annotations

from robot_brain.errors import ConfigurationError

TRAIN_REQUIREMENTS = "requirements/train.txt"


def require_torch(command: str) -> None:
    """Raise a one-line :class:`ConfigurationError` naming the install step when torch cannot be imported."""
    try:
        import torch  # noqa: F401
    except ImportError as error:
        raise ConfigurationError(
            f"{command} needs PyTorch, which the runtime's install leaves out: "
            f"pip install -r {TRAIN_REQUIREMENTS} (torch 2.13.0, the CPU build; the CUDA build to train on "
            f"a GPU) ({error})"
        ) from None
