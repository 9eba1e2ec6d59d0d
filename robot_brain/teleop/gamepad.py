"""Game pads through SDL2's GameController API (pygame's ``pygame._sdl2.controller``), with hot-plug.

Why the GameController API and not raw joysticks: SDL maps Xbox, PlayStation, Switch and
most generic pads onto one standard layout (see :mod:`robot_brain.teleop.reading`), so one
default button map fits them all. A joystick SDL has no mapping for is listed by
:meth:`Gamepad.devices` but cannot be opened; ``SDL_GAMECONTROLLERCONFIG`` adds mappings.

Threading: SDL's event queue is pumped by whoever calls :meth:`Gamepad.poll`, and SDL wants
its event and video calls on one thread. Every SDL call of a :class:`Gamepad` therefore
happens on the thread that called :meth:`Gamepad.open` (the teleop node's worker thread);
calling it from another thread raises ``RuntimeError``. SDL has one event queue per
process, so one :class:`Gamepad` may be open per process at a time. Virtual pads
(:mod:`robot_brain.teleop.virtual_pad`) may be driven from any thread: SDL locks its
joystick list for those calls.

Hot-plug: device-added events open a matching pad when none is open; a device-removed event
(or the open pad reporting itself detached) closes it, and the reading says disconnected with
the pad's name. A pad is only ever taken over when it is plugged in (or present at
:meth:`Gamepad.open`): unplugging the chosen pad never silently switches to another one that
was already there.
"""

from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any

from robot_brain.errors import ConfigurationError
from robot_brain.teleop.reading import SDL_AXES, SDL_BUTTONS, TRIGGER_AXES, PadReading, stick_from_sdl, trigger_from_sdl
from robot_brain.teleop.sdl import SdlError, import_pygame, sdl_library

GamepadError = SdlError
"""pygame or SDL cannot be used (an alias: every SDL problem of this package is one :class:`SdlError`)."""


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A joystick SDL sees: its index, its own name, SDL's mapping name for it, and whether SDL has its layout."""

    index: int
    name: str
    controller_name: str
    is_controller: bool


_open_lock = threading.Lock()
_open_instance: Gamepad | None = None


class Gamepad:
    """One game pad chosen by SDL device index or by a name substring, read by polling.

    ``device_name`` (case-insensitive substring) takes precedence over ``device_id`` when not
    empty. By index, the pad is whichever game controller SDL lists at that index when a pad
    is plugged in (or at :meth:`open`): with several pads in a cell, choose by name.

    Typical use, all on one thread (SDL's requirement)::

        pad = Gamepad(device_name="xbox")
        pad.open()
        while running:
            reading = pad.poll(time.monotonic())
            ...
        pad.close()
    """

    def __init__(self, device_id: int = 0, device_name: str = "") -> None:
        if isinstance(device_id, bool) or not isinstance(device_id, int) or device_id < 0:
            raise ConfigurationError(f"device_id must be an SDL device index >= 0, found {device_id!r}")
        self.device_id = device_id
        self.device_name = device_name.strip()
        self._pygame: ModuleType | None = None
        self._sdl: ModuleType | None = None
        self._thread: int | None = None
        self._controller: Any = None
        self._library: ctypes.CDLL | None = None
        self._name = ""
        self._added_type = -1
        self._removed_type = -1
        self._axes = range(len(SDL_AXES))
        self._buttons = range(len(SDL_BUTTONS))
        self.connections = 0
        """How many times a pad was opened (a re-plug counts again)."""

    # -- life cycle ---------------------------------------------------------------------

    def open(self) -> None:
        """Start SDL's game controller and event subsystems on this thread and open a matching pad if one is present.

        Raises :class:`GamepadError` when pygame or SDL cannot start. No pad present is
        not an error: :meth:`poll` reports disconnected readings until one is plugged in.
        """
        global _open_instance
        pygame, controller = import_pygame()
        with _open_lock:
            if _open_instance is not None and _open_instance is not self:
                raise RuntimeError("another Gamepad is open in this process: SDL has one event queue per process")
            try:
                pygame.display.init()
                controller.init()
            except pygame.error as error:
                raise GamepadError(
                    f"SDL could not start its game controller and event subsystems: {error} "
                    "(on a machine without a display, set SDL_VIDEODRIVER=dummy)"
                ) from None
            _open_instance = self
        self._pygame, self._sdl = pygame, controller
        try:
            self._library = sdl_library()  # for the pads' own names; the mapping's names do without it
        except SdlError:
            self._library = None
        self._thread = threading.get_ident()
        self._added_type = pygame.CONTROLLERDEVICEADDED
        self._removed_type = pygame.CONTROLLERDEVICEREMOVED
        # The state is read with get_axis/get_button after each pump: motion events would only
        # fill the queue (and cost an allocation each), so SDL is told to drop them. Hot-plug
        # comes from the CONTROLLERDEVICE* events. JOYDEVICEREMOVED is dropped too: pygame 2.6
        # raises KeyError from event.get() on one for a joystick whose JOYDEVICEADDED it never
        # saw (plugged in before its event queue started). JOYDEVICEADDED must stay: SDL 2.28
        # sends no CONTROLLERDEVICEADDED when it is ignored (measured).
        pygame.event.set_blocked([
            pygame.JOYDEVICEREMOVED, pygame.JOYAXISMOTION, pygame.JOYBALLMOTION, pygame.JOYHATMOTION,
            pygame.JOYBUTTONDOWN, pygame.JOYBUTTONUP, pygame.CONTROLLERAXISMOTION, pygame.CONTROLLERBUTTONDOWN,
            pygame.CONTROLLERBUTTONUP, pygame.CONTROLLERTOUCHPADDOWN, pygame.CONTROLLERTOUCHPADMOTION,
            pygame.CONTROLLERTOUCHPADUP,
            pygame.CONTROLLERSENSORUPDATE,
        ])
        # Pads present before SDL's event subsystem started announce nothing: look now.
        pygame.event.pump()
        self._scan()

    def close(self) -> None:
        """Close the pad (same thread as :meth:`open`); another :class:`Gamepad` may then be opened.

        SDL's subsystems stay initialised for the life of the process: quitting the joystick
        subsystem would also detach every virtual pad, and pygame quits SDL at exit.
        """
        global _open_instance
        if self._pygame is None:
            return
        self._check_thread()
        self._drop()
        with _open_lock:
            if _open_instance is self:
                _open_instance = None
        self._pygame = None
        self._sdl = None
        self._thread = None

    def __enter__(self) -> Gamepad:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._controller is not None

    @property
    def name(self) -> str:
        """The open pad's name; the last one's after an unplug; before any, what the selection asks for."""
        if self._name:
            return self._name
        if self.device_name:
            return f"a game controller named like '{self.device_name}'"
        return f"game controller {self.device_id}"

    def poll(self, now: float | None = None) -> PadReading:
        """Pump SDL's events (hot-plug) and read the pad, stamped ``now`` (``time.monotonic()`` by default)."""
        self._check_thread()
        pygame = self._pygame
        assert pygame is not None
        stamp = time.monotonic() if now is None else now
        for event in pygame.event.get():
            if event.type == self._added_type:
                if self._controller is None:
                    self._scan()
            elif event.type == self._removed_type and self._controller is not None and not self._controller.attached():
                self._drop()
        controller = self._controller
        if controller is not None and not controller.attached():
            self._drop()
            controller = None
        if controller is None:
            return PadReading.disconnected(self.name, stamp)
        get_axis = controller.get_axis
        axes = tuple(
            trigger_from_sdl(get_axis(axis)) if axis in TRIGGER_AXES else stick_from_sdl(get_axis(axis))
            for axis in self._axes
        )
        get_button = controller.get_button
        buttons = tuple(bool(get_button(button)) for button in self._buttons)
        return PadReading(axes, buttons, True, self._name, stamp)

    def devices(self) -> list[DeviceInfo]:
        """Every joystick SDL sees now, game controller or not (for a 'no pad found' message)."""
        self._check_thread()
        sdl = self._sdl
        assert sdl is not None
        found = []
        for index in range(sdl.get_count()):
            is_controller = bool(sdl.is_controller(index))
            own, mapped = self._names(index, is_controller)
            found.append(DeviceInfo(index, own or mapped or f"joystick {index}", mapped, is_controller))
        return found

    # -- helpers ------------------------------------------------------------------------

    def _check_thread(self) -> None:
        if self._thread is None:
            raise RuntimeError("Gamepad.open() has not been called")
        if threading.get_ident() != self._thread:
            raise RuntimeError("a Gamepad must be used from the thread that opened it (SDL's event thread)")

    def _names(self, index: int, is_controller: bool) -> tuple[str, str]:
        """(the joystick's own name, SDL's mapping name): pads of one model share the second, not always the first."""
        own = _text(self._library.SDL_JoystickNameForIndex(index)) if self._library is not None else ""
        mapped = _text(self._sdl.name_forindex(index)) if is_controller and self._sdl is not None else ""
        return own, mapped

    def _matches(self, index: int, names: tuple[str, str]) -> bool:
        if self.device_name:
            wanted = self.device_name.lower()
            return any(wanted in name.lower() for name in names if name)
        return index == self.device_id

    def _scan(self) -> None:
        """Open the first game controller that matches the selection, if any."""
        sdl = self._sdl
        assert sdl is not None
        for index in range(sdl.get_count()):
            if not sdl.is_controller(index):
                continue
            names = self._names(index, True)
            if not self._matches(index, names):
                continue
            try:
                controller = sdl.Controller(index)
            except Exception:  # pygame.error: gone between listing and opening; the next event retries
                continue
            self._controller = controller
            self._name = names[0] or names[1] or f"game controller {index}"
            self.connections += 1
            return

    def _drop(self) -> None:
        if self._controller is not None:
            self._controller.quit()
            self._controller = None


def _text(name: str | bytes | None) -> str:
    if name is None:
        return ""
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
