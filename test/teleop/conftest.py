"""Fixtures: real SDL virtual pads (always detached after the test) and one real Gamepad per test."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from teleop_rig import Rig

from robot_brain.teleop.gamepad import Gamepad
from robot_brain.teleop.mapping import TeleopMapping
from robot_brain.teleop.operator import Operator
from robot_brain.teleop.virtual_pad import VirtualPad

_names = itertools.count()


@pytest.fixture
def virtual_pads() -> Iterator[Callable[..., VirtualPad]]:
    """``make(name=None, attach=True)``: a virtual pad with a name no other test uses."""
    made: list[VirtualPad] = []

    def make(name: str | None = None, attach: bool = True) -> VirtualPad:
        pad = VirtualPad(name or f"rig pad {next(_names):04d}")  # never a substring of another
        if attach:
            pad.attach()
        made.append(pad)
        return pad

    yield make
    for pad in made:
        pad.detach()


@pytest.fixture
def gamepads() -> Iterator[Callable[..., Gamepad]]:
    """``open(**selection)``: an opened Gamepad (SDL allows one per process), closed after the test."""
    opened: list[Gamepad] = []

    def open_gamepad(**selection: object) -> Gamepad:
        gamepad = Gamepad(**selection)  # type: ignore[arg-type]
        gamepad.open()
        opened.append(gamepad)
        return gamepad

    yield open_gamepad
    for gamepad in opened:
        gamepad.close()


@pytest.fixture
def make_rig(virtual_pads: Callable[..., VirtualPad],
             gamepads: Callable[..., Gamepad]) -> Callable[..., Rig]:
    """``make_rig(joint_names=(), **parameters)``: a virtual pad, a Gamepad choosing it by name, an Operator."""

    def make(joint_names: tuple[str, ...] = (), **parameters: object) -> Rig:
        pad = virtual_pads()
        gamepad = gamepads(device_name=pad.name)
        operator = Operator(TeleopMapping.from_parameters(parameters), joint_names)
        rig = Rig(pad, gamepad, operator)
        rig.step()
        return rig

    return make
