"""Training progress on stderr and the loss curve beside the model (no torch).

On a terminal, :class:`ProgressBar` redraws one line (``\\r``) at most ten times a second: a bar,
the step, the loss (an exponential moving average of the last ~50 steps), steps/s and the ETA.
When stderr is not a terminal (CI logs, a pipe), it prints plain lines instead, at most one per
``line_interval_s`` seconds plus the first and last step, so a log stays readable and bounded.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO


def format_duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``42s``; ``?`` for an unknown duration."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class ProgressBar:
    """Progress of ``total`` steps starting at ``start`` (a resumed run starts past 0)."""

    def __init__(
        self,
        total: int,
        start: int = 0,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        line_interval_s: float = 10.0,
        label: str = "train",
    ) -> None:
        self.total = max(1, total)
        self.start_step = start
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.line_interval_s = line_interval_s
        self.label = label
        self._first: tuple[float, int] | None = None
        self._last_draw = -math.inf
        self._smoothed: float | None = None
        self._drawn = False

    def rate(self, step: int) -> float:
        """Steps per second since the first step finished (the first one pays for lazy imports and warm-up)."""
        if self._first is None:
            return 0.0
        began, first_step = self._first
        elapsed = time.monotonic() - began
        done = step - first_step
        return done / elapsed if elapsed > 0 and done > 0 else 0.0

    def update(self, step: int, loss: float, extra: str = "") -> None:
        """Record that ``step`` steps are done with this step's ``loss``; draws when due."""
        alpha = 0.04
        self._smoothed = loss if self._smoothed is None else (1 - alpha) * self._smoothed + alpha * loss
        now = time.monotonic()
        if self._first is None:
            self._first = (now, step)
        final = step >= self.total
        interval = 0.1 if self.tty else self.line_interval_s
        first = step == self.start_step + 1
        if not (final or first or now - self._last_draw >= interval):
            return
        self._last_draw = now
        self.stream.write(self.render(step, extra) + ("\r" if self.tty and not final else "\n"))
        self.stream.flush()
        self._drawn = not final

    def render(self, step: int, extra: str = "") -> str:
        rate = self.rate(step)
        eta = (self.total - step) / rate if rate > 0 else math.inf
        fraction = min(1.0, step / self.total)
        loss = f"{self._smoothed:.4g}" if self._smoothed is not None else "?"
        speed = f"{rate:.1f} steps/s" if rate > 0 else "? steps/s"
        text = f"{self.label} step {step}/{self.total} {fraction * 100:5.1f}% loss {loss} {speed}"
        text += f" ETA {format_duration(eta)}"
        if extra:
            text += f" {extra}"
        if self.tty:
            width = 24
            filled = round(fraction * width)
            text = f"[{'#' * filled}{'.' * (width - filled)}] {text}"
        return text

    def message(self, text: str) -> None:
        """A line of its own (ends a terminal's bar line first)."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def write_loss_curve(
    path: Path,
    losses: Sequence[float],
    validation: Sequence[tuple[float, float]],
    *,
    title: str,
) -> Path:
    """A PNG of the training loss per step (raw and smoothed, log scale) and the held-out loss points."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(7.0, 4.0), dpi=110)
    try:
        steps = np.arange(1, len(losses) + 1)
        values = np.asarray(losses, dtype=np.float64)
        if values.size:
            axis.plot(steps, values, color="#9ecae1", linewidth=0.6, label="training loss (per step)")
            window = max(1, min(50, values.size // 10 or 1))
            smoothed = np.convolve(values, np.ones(window) / window, mode="valid")
            axis.plot(steps[window - 1 :], smoothed, color="#08519c", linewidth=1.4, label=f"mean of {window} steps")
        if validation:
            points = np.asarray(validation, dtype=np.float64)
            axis.plot(points[:, 0], points[:, 1], "o-", color="#e6550d", markersize=3, label="held-out loss")
        if values.size and np.all(values > 0):
            axis.set_yscale("log")
        axis.set_xlabel("step")
        axis.set_ylabel("MSE (normalised actions)")
        axis.set_title(title, fontsize=9)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp.png")
        figure.savefig(temporary)
        temporary.replace(path)
    finally:
        plt.close(figure)
    return path
