"""A scripted operator: demonstrations without a person, through the same pad path a person uses.

``robot-brain collect`` records demonstrations of the reach task for CI and for users without
a game pad. The expert does not command the arm: it *plays a person on a pad*. It sees the
tool and the object late (``reaction_s``), pushes the sticks toward the object (proportional,
with turbo held while far away, as people do), wobbles (low-pass noise on every stick),
hesitates now and then (sticks centred for a moment, the dead-man still held), and releases
the dead-man once the tool has settled on the object. Its output is a ``sensor_msgs/Joy``
state (axes and buttons in the SDL/``game_controller_node`` order) that goes to the teleop
node with ``input: joy``: the operator's rules (dead-man, arming, speed levels) and the arm
controller's safety filter apply exactly as to a person. Pure: no clock, no thread, no ROS.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from robot_brain.errors import ConfigurationError
from robot_brain.teleop.mapping import TeleopMapping
from robot_brain.teleop.reading import SDL_AXES, SDL_BUTTONS


@dataclass(frozen=True)
class ExpertStyle:
    """How the scripted operator behaves (defaults: a calm, competent person)."""

    reaction_s: float = 0.2
    """Delay between what happens and the expert's hands reacting to it."""
    gain: float = 2.5
    """Desired tool speed per metre of distance, 1/s (capped by the pad's scales)."""
    turbo_beyond_m: float = 0.12
    """Turbo is held while the object is farther than this."""
    noise: float = 0.1
    """Stick wobble: standard deviation of the low-pass noise on each stick, in deflection."""
    noise_tau_s: float = 0.3
    """Correlation time of the wobble, s."""
    hesitation_rate_hz: float = 0.15
    """Average number of hesitations per second of motion."""
    hesitation_s: tuple[float, float] = (0.15, 0.5)
    """How long a hesitation lasts (uniform), s."""
    settle_radius_m: float = 0.015
    """The tool is on the object within this distance."""
    settle_s: float = 0.3
    """... for this long, then the expert lets go of the dead-man."""

    def __post_init__(self) -> None:
        for name in ("reaction_s", "noise", "hesitation_rate_hz"):
            if not getattr(self, name) >= 0.0:
                raise ConfigurationError(f"expert {name} must be >= 0, found {getattr(self, name)}")
        for name in ("gain", "noise_tau_s", "settle_radius_m", "settle_s", "turbo_beyond_m"):
            if not getattr(self, name) > 0.0:
                raise ConfigurationError(f"expert {name} must be > 0, found {getattr(self, name)}")


@dataclass(frozen=True)
class PadState:
    """One ``sensor_msgs/Joy`` worth of pad: axes and buttons in the SDL game controller order."""

    axes: tuple[float, ...]
    buttons: tuple[int, ...]
    done: bool


class ScriptedOperator:
    """Drives the tool to a target through a pad mapping; see the module docstring. One per episode."""

    def __init__(self, mapping: TeleopMapping, style: ExpertStyle | None = None, seed: int = 0) -> None:
        self.mapping = mapping
        self.style = style or ExpertStyle()
        self._rng = np.random.default_rng(seed)
        self._seen: deque[tuple[float, np.ndarray, np.ndarray]] = deque()
        self._wobble = np.zeros(3)
        self._last_time: float | None = None
        self._hesitate_until = -math.inf
        self._settled_since: float | None = None
        self.done = False
        linear = mapping.twist_axes[:3]
        if any(axis < 0 for axis in linear):
            raise ConfigurationError("the scripted operator needs axis_linear.x, .y and .z mapped to sticks")
        if mapping.require_enable_button and mapping.enable_button < 0:
            raise ConfigurationError("the scripted operator needs an enable_button")
        self._axes = linear

    def step(self, now: float, tool: np.ndarray, target: np.ndarray) -> PadState:
        """The pad at time ``now`` given the tool and target positions seen now (base frame, m)."""
        style, rng = self.style, self._rng
        self._seen.append((now, np.asarray(tool, dtype=float), np.asarray(target, dtype=float)))
        while len(self._seen) > 1 and self._seen[1][0] <= now - style.reaction_s:
            self._seen.popleft()
        seen_at, seen_tool, seen_target = self._seen[0]  # what the expert has taken in by now
        reacting = now - seen_at >= style.reaction_s
        dt = 0.0 if self._last_time is None else max(now - self._last_time, 0.0)
        self._last_time = now
        # Ornstein-Uhlenbeck wobble: exact discretisation, stationary deviation ``noise``.
        decay = math.exp(-dt / style.noise_tau_s)
        self._wobble = self._wobble * decay + rng.normal(0.0, style.noise * math.sqrt(1.0 - decay * decay), 3)
        error = seen_target - seen_tool
        distance = float(np.linalg.norm(error))
        buttons = [0] * len(SDL_BUTTONS)
        axes = [0.0] * len(SDL_AXES)
        if self.done:
            return PadState(tuple(axes), tuple(buttons), True)
        if distance <= style.settle_radius_m:
            self._settled_since = now if self._settled_since is None else self._settled_since
            if now - self._settled_since >= style.settle_s:
                self.done = True  # hands off: the dead-man is released
                return PadState(tuple(axes), tuple(buttons), True)
        else:
            self._settled_since = None
        if self.mapping.enable_button >= 0:
            buttons[self.mapping.enable_button] = 1
        if now < self._hesitate_until or not reacting:  # not yet reacting: the hands wait, the dead-man is held
            return PadState(tuple(axes), tuple(buttons), False)
        if dt > 0.0 and rng.random() < style.hesitation_rate_hz * dt:
            self._hesitate_until = now + rng.uniform(*style.hesitation_s)
            return PadState(tuple(axes), tuple(buttons), False)
        turbo = distance > style.turbo_beyond_m and self.mapping.enable_turbo_button >= 0
        if turbo:
            buttons[self.mapping.enable_turbo_button] = 1
        scales = self.mapping.twist_scales_turbo if turbo else self.mapping.twist_scales
        velocity = style.gain * error
        for component, axis in enumerate(self._axes):
            deflection = velocity[component] / scales[component] if scales[component] else 0.0
            if distance > style.settle_radius_m:
                deflection += self._wobble[component]
            axes[axis] = float(min(max(deflection, -1.0), 1.0))
        return PadState(tuple(axes), tuple(buttons), False)
