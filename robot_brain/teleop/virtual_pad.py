"""A game pad that exists only in software: SDL's virtual joystick, through ctypes on pygame's own libSDL2.

Why: CI machines (and these VMs) have no ``/dev/input``, yet the teleop path must be tested
with real SDL events, hot-plug included. SDL (>= 2.24) can attach a *virtual* joystick of
type game controller that SDL treats like a real one: device-added and device-removed events,
the standard layout, the same ``SDL_GameControllerGetAxis``/``GetButton`` results. It lives
inside this process only: a virtual pad is seen by a :class:`~robot_brain.teleop.gamepad.Gamepad`
in the same process, not by another process.

Values are given in the convention of :class:`~robot_brain.teleop.reading.PadReading`
(sticks in [-1, 1] with up and left positive, triggers in [0, 1]), so what a test sets is what
the pad reads, to SDL's 1/32767 resolution. :meth:`VirtualPad.set_raw_axis` writes SDL's raw
``Sint16`` instead. Note SDL's game controller mapping turns a raw trigger axis of 0 into a
half-pressed trigger: :meth:`VirtualPad.attach` releases both triggers (raw -32768) before any
reader can see the pad.

Any thread may drive a virtual pad (SDL takes its joystick lock for these calls).
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from types import TracebackType

from robot_brain.teleop.reading import SDL_AXES, SDL_AXIS_MAX, SDL_BUTTONS, TRIGGER_AXES
from robot_brain.teleop.sdl import SdlError, VirtualJoystickDesc, sdl_error, sdl_library

SDL_INIT_JOYSTICK = 0x200
SDL_INIT_GAMECONTROLLER = 0x2000
SDL_JOYSTICK_TYPE_GAMECONTROLLER = 1
SDL_VIRTUAL_JOYSTICK_DESC_VERSION = 1
SDL_AXIS_MIN = -32768
#: USB ids of virtual pads: SDL builds a pad's GUID from them (or, without them, from the first
#: nine characters of its name), and pads with one GUID share one mapping, *name included*.
#: A product id per pad keeps every virtual pad's name its own. Bus "virtual" in the GUID keeps
#: them apart from any real pad in SDL's mapping database.
VIRTUAL_VENDOR_ID = 0xF0F0
_product_ids = itertools.count(1)
_product_lock = threading.Lock()


class VirtualPadError(SdlError):
    """SDL's virtual joysticks cannot be used (pygame missing, or its SDL older than 2.24)."""


class VirtualPad:
    """A virtual SDL game controller (6 axes, 15 buttons: the standard layout) that tests and scripts drive.

    ::

        pad = VirtualPad("test pad")
        pad.attach()                 # a device-added event; readers see a pad at rest
        pad.set_button(9, True)      # left shoulder (the default dead-man)
        pad.set_axis(1, 0.5)         # left stick half up
        pad.detach()                 # a device-removed event
    """

    AXES = len(SDL_AXES)
    BUTTONS = len(SDL_BUTTONS)

    def __init__(self, name: str = "robot_brain virtual pad") -> None:
        self.name = name
        self._library: ctypes.CDLL | None = None
        self._handle: int | None = None
        self._instance_id = -1
        self._name_bytes = name.encode("utf-8")
        self._desc: VirtualJoystickDesc | None = None

    @property
    def attached(self) -> bool:
        return self._handle is not None

    def attach(self) -> None:
        """Plug the pad in: sticks centred, triggers and buttons released."""
        if self._handle is not None:
            raise RuntimeError(f"virtual pad '{self.name}' is already attached")
        library = sdl_library()
        if not hasattr(library, "SDL_JoystickAttachVirtualEx"):
            raise VirtualPadError("this SDL has no virtual joysticks (SDL 2.24 or newer has them)")
        flags = SDL_INIT_JOYSTICK | SDL_INIT_GAMECONTROLLER
        # Left initialised on purpose: quitting would detach every virtual pad and close the
        # reader's pads (SDL counts references, pygame does not take one when already up).
        if library.SDL_WasInit(flags) != flags and library.SDL_InitSubSystem(flags) != 0:
            raise VirtualPadError(f"SDL's joystick subsystem did not start: {sdl_error(library)}")
        with _product_lock:
            product = next(_product_ids) % 0xFFFF or 1
        self._desc = VirtualJoystickDesc(
            version=SDL_VIRTUAL_JOYSTICK_DESC_VERSION, type=SDL_JOYSTICK_TYPE_GAMECONTROLLER,
            naxes=self.AXES, nbuttons=self.BUTTONS, nhats=0, vendor_id=VIRTUAL_VENDOR_ID, product_id=product,
            name=self._name_bytes,
        )
        # Not under SDL_LockJoysticks: pygame keeps the GIL while it waits for that lock, so holding it across
        # these calls deadlocked with a reader's poll. The triggers are released a few calls after the pad
        # appears (the calls keep the GIL: sdl_library); a reader would have to open the pad in between.
        index = library.SDL_JoystickAttachVirtualEx(ctypes.byref(self._desc))
        if index < 0:
            raise VirtualPadError(f"SDL could not attach a virtual game controller: {sdl_error(library)}")
        handle = library.SDL_JoystickOpen(index)
        if not handle:
            library.SDL_JoystickDetachVirtual(index)
            raise VirtualPadError(f"SDL could not open its own virtual game controller: {sdl_error(library)}")
        self._library, self._handle = library, handle
        self._instance_id = library.SDL_JoystickInstanceID(handle)
        for axis in TRIGGER_AXES:
            self.set_raw_axis(axis, SDL_AXIS_MIN)

    def set_axis(self, axis: int, value: float) -> None:
        """Move an axis to ``value`` as a reading will report it: sticks in [-1, 1] (up/left +), triggers in [0, 1]."""
        _check_index(axis, self.AXES, "axis")
        if axis in TRIGGER_AXES:
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"trigger axis {axis} takes a value in [0, 1], found {value}")
            raw = SDL_AXIS_MIN + round(value * (SDL_AXIS_MAX - SDL_AXIS_MIN))
        else:
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"stick axis {axis} takes a value in [-1, 1], found {value}")
            raw = round(-value * SDL_AXIS_MAX)
        self.set_raw_axis(axis, raw)

    def set_raw_axis(self, axis: int, raw: int) -> None:
        """Write SDL's raw joystick value (``Sint16``: sticks down/right positive; triggers -32768 released)."""
        _check_index(axis, self.AXES, "axis")
        if not SDL_AXIS_MIN <= raw <= SDL_AXIS_MAX:
            raise ValueError(f"raw axis value must be a Sint16, found {raw}")
        library, handle = self._attached()
        if library.SDL_JoystickSetVirtualAxis(handle, axis, raw) != 0:
            raise VirtualPadError(f"SDL refused axis {axis} = {raw}: {sdl_error(library)}")

    def set_button(self, button: int, pressed: bool) -> None:
        _check_index(button, self.BUTTONS, "button")
        library, handle = self._attached()
        if library.SDL_JoystickSetVirtualButton(handle, button, 1 if pressed else 0) != 0:
            raise VirtualPadError(f"SDL refused button {button}: {sdl_error(library)}")

    def release_all(self) -> None:
        """Sticks centred, triggers and buttons released."""
        for axis in range(self.AXES):
            self.set_axis(axis, 0.0)
        for button in range(self.BUTTONS):
            self.set_button(button, False)

    def detach(self) -> None:
        """Unplug the pad (readers get a device-removed event). Does nothing when not attached."""
        if self._handle is None or self._library is None:
            return
        library, handle = self._library, self._handle
        try:
            # Device indices shift as pads come and go: find this pad's current one by instance id. Not
            # under SDL_LockJoysticks (see attach); only another pad attached or detached by another
            # thread between these two calls could shift the index.
            index = next(
                (i for i in range(library.SDL_NumJoysticks())
                 if library.SDL_JoystickGetDeviceInstanceID(i) == self._instance_id),
                -1,
            )
            library.SDL_JoystickClose(handle)
            if index >= 0:
                library.SDL_JoystickDetachVirtual(index)
        finally:
            self._handle = None
            self._instance_id = -1

    def __enter__(self) -> VirtualPad:
        self.attach()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.detach()

    def _attached(self) -> tuple[ctypes.CDLL, int]:
        if self._handle is None or self._library is None:
            raise RuntimeError(f"virtual pad '{self.name}' is not attached")
        return self._library, self._handle


def _check_index(index: int, count: int, kind: str) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise ValueError(f"{kind} index must be in [0, {count - 1}], found {index!r}")
