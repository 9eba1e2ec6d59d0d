"""Offscreen camera rendering for the simulator: EGL first, OSMesa as the fallback.

Why not ``mujoco.Renderer``: it binds the GL backend chosen by ``MUJOCO_GL`` when ``mujoco``
is first imported, and fails later with a message about ``glfw``. Here the backend is chosen
explicitly (``MUJOCO_GL`` when set, else EGL when ``libEGL`` loads, else OSMesa when
``libOSMesa`` loads) and a missing one is reported with what to install. PyOpenGL binds one
platform per process, so the fallback is decided before the first context is created.

Shadows are off by default (about 4x faster on Mesa's llvmpipe). GL contexts are bound to
the thread that made them: create, render and close a renderer on one thread, and close it
explicitly (``with`` or ``close()``) so the context is released before the process exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import os
import threading
from types import TracebackType

import mujoco
import numpy as np

from robot_brain.errors import ConfigurationError
from robot_brain.sim.scene import GROUP_HIDDEN

BACKENDS = ("egl", "osmesa")
_LIBRARIES = {"egl": ("EGL", "libEGL.so.1"), "osmesa": ("OSMesa", "libOSMesa.so.8")}
_lock = threading.Lock()
_chosen: str | None = None


def _loadable(backend: str) -> bool:
    short, soname = _LIBRARIES[backend]
    for name in (ctypes.util.find_library(short), soname):
        if not name:
            continue
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def gl_backend() -> str:
    """The offscreen backend this process uses (decided once; ``MUJOCO_GL`` wins when set)."""
    global _chosen
    with _lock:
        if _chosen is not None:
            return _chosen
        requested = os.environ.get("MUJOCO_GL", "").strip().lower()
        if requested and requested not in BACKENDS:
            raise ConfigurationError(f"MUJOCO_GL: expected one of {', '.join(BACKENDS)} for offscreen rendering, "
                                     f"found {requested!r}")
        candidates = [requested] if requested else [b for b in BACKENDS if _loadable(b)]
        if not candidates:
            raise ConfigurationError(
                "offscreen rendering: expected Mesa EGL (apt install libegl1 libegl-mesa0 libgl1-mesa-dri) or "
                "OSMesa (apt install libosmesa6), found neither; or set the camera rate to 0"
            )
        _chosen = candidates[0]
        os.environ.setdefault("PYOPENGL_PLATFORM", _chosen)
        return _chosen


def _gl_context_class(backend: str) -> type:
    try:
        return importlib.import_module(f"mujoco.{backend}").GLContext
    except (ImportError, RuntimeError, OSError) as error:
        raise ConfigurationError(f"offscreen rendering with {backend}: cannot load the backend: {error}") from None


class OffscreenRenderer:
    """Renders named cameras of one model into RGB arrays (``(height, width, 3)`` uint8)."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int, *, shadows: bool = False) -> None:
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise ConfigurationError(
                f"camera size: expected at most {model.vis.global_.offwidth}x{model.vis.global_.offheight} "
                f"(the model's offscreen buffer), found {width}x{height}"
            )
        self.backend = gl_backend()
        self.width, self.height = width, height
        self._model = model
        self._context = None
        try:
            self._context = _gl_context_class(self.backend)(width, height)
            self._context.make_current()
        except Exception as error:
            self._context = None
            raise ConfigurationError(
                f"offscreen rendering with {self.backend}: cannot create a GL context ({error}); "
                f"try MUJOCO_GL={'osmesa' if self.backend == 'egl' else 'egl'}"
            ) from None
        self._scene = mujoco.MjvScene(model, maxgeom=2000)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = int(shadows)
        self._mjr = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._mjr)
        self._option = mujoco.MjvOption()
        self._option.geomgroup[GROUP_HIDDEN] = 0
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._viewport = mujoco.MjrRect(0, 0, width, height)
        self._upside_down = np.empty((height, width, 3), dtype=np.uint8)

    def render(self, data: mujoco.MjData, camera_id: int, out: np.ndarray | None = None) -> np.ndarray:
        """The image of camera ``camera_id`` for ``data`` (whose kinematics must be current)."""
        if self._context is None:
            raise RuntimeError("renderer is closed")
        self._context.make_current()
        self._camera.fixedcamid = camera_id
        mujoco.mjv_updateScene(
            self._model, data, self._option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL, self._scene
        )
        mujoco.mjr_render(self._viewport, self._scene, self._mjr)
        mujoco.mjr_readPixels(self._upside_down, None, self._viewport, self._mjr)
        if out is None:
            out = np.empty_like(self._upside_down)
        np.copyto(out, self._upside_down[::-1])
        return out

    def close(self) -> None:
        """Release the GL resources (idempotent)."""
        if self._context is None:
            return
        self._context.make_current()
        self._mjr.free()
        self._context.free()
        self._context = None

    def __enter__(self) -> OffscreenRenderer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def camera_matrix(model: mujoco.MjModel, camera_id: int, width: int, height: int) -> np.ndarray:
    """Pinhole ``K`` of a MuJoCo camera at ``width x height`` (square pixels, centred principal point)."""
    fovy = np.radians(model.cam_fovy[camera_id])
    focal = 0.5 * height / np.tan(0.5 * fovy)
    return np.array([[focal, 0.0, 0.5 * (width - 1)], [0.0, focal, 0.5 * (height - 1)], [0.0, 0.0, 1.0]])
