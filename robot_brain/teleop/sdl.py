"""Getting at SDL2: the environment it needs, pygame, and ctypes access to the very libSDL2 pygame loaded.

pygame's ``_sdl2.controller`` covers reading game controllers; two things it lacks are reached
through ctypes on the same library instance (never a second copy of SDL, whose joysticks
pygame would not see): a joystick's own name (pygame reports the name of SDL's *mapping*,
which two pads of one model share) and SDL's virtual joysticks (for tests).
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from robot_brain.errors import UserError


class SdlError(UserError):
    """pygame or SDL's game controller support cannot be used on this machine."""


def prepare_sdl_environment(environment: dict[str, str] | Any = os.environ) -> None:
    """Environment SDL reads at start-up: no display needed, pads read in the background, signals left alone.

    ``SDL_VIDEODRIVER=dummy`` when there is no X11 or Wayland display (pygame's event queue
    needs SDL's video subsystem, which the dummy driver provides without a screen);
    ``SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS=1`` so pads are read without a focused window;
    ``SDL_NO_SIGNAL_HANDLERS=1`` because SDL's event subsystem otherwise takes over SIGTERM
    (and SIGINT where Python has not) and only queues a quit event: measured, a process with a
    pad open survived ``kill``. No pygame banner on stdout. Values already set are kept.
    """
    environment.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    environment.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")
    environment.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    if not environment.get("DISPLAY") and not environment.get("WAYLAND_DISPLAY"):
        environment.setdefault("SDL_VIDEODRIVER", "dummy")


def import_pygame() -> tuple[ModuleType, ModuleType]:
    """pygame and its SDL2 controller module, or an :class:`SdlError` saying what is missing."""
    prepare_sdl_environment()
    try:
        import pygame
        import pygame._sdl2.controller as controller
    except ImportError as error:
        raise SdlError(
            f"input 'sdl' needs pygame 2 with SDL2 game controller support (pip install pygame); found: {error}"
        ) from None
    return pygame, controller


class VirtualJoystickDesc(ctypes.Structure):
    """``SDL_VirtualJoystickDesc`` of SDL 2.24 to 2.30 (version 1)."""

    _fields_ = [
        ("version", ctypes.c_uint16),
        ("type", ctypes.c_uint16),
        ("naxes", ctypes.c_uint16),
        ("nbuttons", ctypes.c_uint16),
        ("nhats", ctypes.c_uint16),
        ("vendor_id", ctypes.c_uint16),
        ("product_id", ctypes.c_uint16),
        ("padding", ctypes.c_uint16),
        ("button_mask", ctypes.c_uint32),
        ("axis_mask", ctypes.c_uint32),
        ("name", ctypes.c_char_p),
        ("userdata", ctypes.c_void_p),
        ("Update", ctypes.c_void_p),
        ("SetPlayerIndex", ctypes.c_void_p),
        ("Rumble", ctypes.c_void_p),
        ("RumbleTriggers", ctypes.c_void_p),
        ("SetLED", ctypes.c_void_p),
        ("SendEffect", ctypes.c_void_p),
    ]


_library: ctypes.CDLL | None = None
_library_lock = threading.Lock()


def sdl_library() -> ctypes.CDLL:
    """The libSDL2 pygame has loaded (the same instance, so its joysticks are pygame's), with prototypes set.

    Loaded as a ``PyDLL``: every call keeps the GIL (they take microseconds), so a thread driving a
    virtual pad makes its few calls in a row with fewer chances for a reader to run in between.
    Never hold ``SDL_LockJoysticks`` across Python code: ``pygame`` keeps the GIL while it waits for
    that lock, and the holder's next bytecode may wait for the GIL (a deadlock; a clean-clone test
    run hung in ``VirtualPad.detach`` until it was removed).
    """
    global _library
    with _library_lock:
        if _library is None:
            pygame, _ = import_pygame()
            path = _loaded_sdl_path() or _bundled_sdl_path(Path(pygame.__file__).parent)
            if path is None:
                raise SdlError(
                    f"could not find the libSDL2 that pygame {pygame.version.ver} uses "
                    f"(looked in /proc/self/maps and next to {Path(pygame.__file__).parent})"
                )
            library = ctypes.PyDLL(path)
            _declare(library)
            _library = library
        return _library


def _loaded_sdl_path() -> str | None:
    """The libSDL2 file mapped into this process (Linux), if any."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        # libSDL2-2.0.so.0 (a system SDL) or libSDL2-2-<hash>.0.so... (pygame's wheel); not libSDL2_image & co.
        if len(fields) == 6 and os.path.basename(fields[5]).startswith("libSDL2-2"):
            return fields[5]
    return None


def _bundled_sdl_path(package: Path) -> str | None:
    """libSDL2 shipped inside pygame's wheel (manylinux, macOS, Windows layouts)."""
    patterns = (
        str(package.parent / "pygame.libs" / "libSDL2-2*.so*"),
        str(package / ".dylibs" / "libSDL2*.dylib"),
        str(package / "SDL2.dll"),
    )
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def _declare(library: ctypes.CDLL) -> None:
    """argtypes/restype of every function used: the joystick handle is a pointer (a 64-bit value).

    Functions this SDL lacks (virtual joysticks before 2.24) are skipped; callers check with ``hasattr``.
    """
    handle = ctypes.c_void_p
    prototypes: dict[str, tuple[list[type], type | None]] = {
        "SDL_InitSubSystem": ([ctypes.c_uint32], ctypes.c_int),
        "SDL_WasInit": ([ctypes.c_uint32], ctypes.c_uint32),
        "SDL_GetError": ([], ctypes.c_char_p),
        "SDL_NumJoysticks": ([], ctypes.c_int),
        "SDL_JoystickNameForIndex": ([ctypes.c_int], ctypes.c_char_p),
        "SDL_JoystickAttachVirtualEx": ([ctypes.POINTER(VirtualJoystickDesc)], ctypes.c_int),
        "SDL_JoystickDetachVirtual": ([ctypes.c_int], ctypes.c_int),
        "SDL_JoystickOpen": ([ctypes.c_int], handle),
        "SDL_JoystickClose": ([handle], None),
        "SDL_JoystickInstanceID": ([handle], ctypes.c_int32),
        "SDL_JoystickGetDeviceInstanceID": ([ctypes.c_int], ctypes.c_int32),
        "SDL_JoystickSetVirtualAxis": ([handle, ctypes.c_int, ctypes.c_int16], ctypes.c_int),
        "SDL_JoystickSetVirtualButton": ([handle, ctypes.c_int, ctypes.c_uint8], ctypes.c_int),
    }
    for name, (argtypes, restype) in prototypes.items():
        function = getattr(library, name, None)
        if function is None:
            continue
        function.argtypes = argtypes
        function.restype = restype


def sdl_error(library: ctypes.CDLL) -> str:
    message = library.SDL_GetError()
    return message.decode("utf-8", "replace") if message else "no reason given"
