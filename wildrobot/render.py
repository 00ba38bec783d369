"""Headless offscreen rendering of MuJoCo models, and writing the frames as a video.

The OpenGL backend is chosen once per process, before any OpenGL library is loaded (PyOpenGL
binds to one platform for the life of the process): ``MUJOCO_GL`` if the user set it to
``egl`` or ``osmesa``, otherwise the first of EGL, OSMesa that renders a test frame in a
subprocess. EGL needs Mesa's EGL (Debian: ``libegl1 libegl-mesa0 libgl1-mesa-dri``; on a
machine with an NVIDIA driver, its EGL); OSMesa needs ``libosmesa6``. Without either,
``gl_backend()`` returns None and ``NoRenderer.reason`` says what to install.

Videos are MP4 when the ``imageio-ffmpeg`` encoder is installed, GIF otherwise.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

BACKENDS = ("egl", "osmesa")
INSTALL_HINT = ("install Mesa's EGL (Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri) "
                "or OSMesa (apt-get install libosmesa6)")

# Renders one frame of a one-geom model with the named backend; exit code 0 = it works.
_PROBE = """
import sys
backend = sys.argv[1]
import mujoco
if backend == "egl":
    from mujoco.egl import GLContext
else:
    from mujoco.osmesa import GLContext
ctx = GLContext(32, 32)
ctx.make_current()
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size=".1"/></worldbody></mujoco>')
con = mujoco.MjrContext(m, mujoco.mjtFontScale.mjFONTSCALE_100)
ctx.free()
"""


class NoRenderer(RuntimeError):
    """No headless OpenGL backend works here; ``str(e)`` says what to install."""


@functools.lru_cache(maxsize=None)
def _probe(backend: str) -> tuple[bool, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYOPENGL_PLATFORM", "MUJOCO_GL")}
    try:
        # close_fds=False lets Python start the child with posix_spawn: no fork of a process
        # that may already run JAX's threads.
        r = subprocess.run([sys.executable, "-c", _PROBE, backend], env=env, capture_output=True, text=True,
                           timeout=120, close_fds=False)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"{type(e).__name__}: {e}"
    last = (r.stderr.strip().splitlines() or ["exit code %d" % r.returncode])[-1]
    return r.returncode == 0, last


@functools.lru_cache(maxsize=None)
def gl_backend() -> Optional[str]:
    """'egl' | 'osmesa' | 'glfw' (only when the user asked for it), or None when none works."""
    asked = os.environ.get("MUJOCO_GL", "").strip().lower()
    platform = os.environ.get("PYOPENGL_PLATFORM", "").strip().lower()
    if asked in ("egl", "osmesa", "glfw"):
        return asked
    if platform in BACKENDS:  # PyOpenGL is (or will be) bound to this one
        return platform
    for backend in BACKENDS:
        if _probe(backend)[0]:
            return backend
    return None


def no_backend_reason() -> str:
    tried = "; ".join(f"{b}: {_probe(b)[1]}" for b in BACKENDS)
    return f"no headless OpenGL backend works here ({tried}). To render videos, {INSTALL_HINT}."


def _gl_context(backend: str, width: int, height: int):
    if backend == "egl":
        from mujoco.egl import GLContext
    elif backend == "osmesa":
        from mujoco.osmesa import GLContext
    else:
        from mujoco.glfw import GLContext
    return GLContext(width, height)


@dataclass
class Overlay:
    """Text drawn in the frame's top-left (left column: labels, right column: values)."""

    labels: str
    values: str


class OffscreenRenderer:
    """Renders a model's ``MjData`` to RGB arrays, with a camera that follows one body."""

    def __init__(self, model, width: int = 480, height: int = 360, track_body: int = 1,
                 distance: float = 1.5, elevation: float = -15.0, azimuth: float = 135.0,
                 shadows: bool = False):
        import mujoco

        backend = gl_backend()
        if backend is None:
            raise NoRenderer(no_backend_reason())
        self.backend = backend
        self._mujoco = mujoco
        # The offscreen buffer must hold the frame; raise the model's own limit on a copy.
        self.model = model = _copy_model(model)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        self.width, self.height = width, height
        self._ctx = _gl_context(backend, width, height)
        self._ctx.make_current()
        self.scene = mujoco.MjvScene(model, maxgeom=2000)
        # Shadows and floor reflections triple the time of a software (Mesa) frame.
        self.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = shadows
        self.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = shadows
        self.option = mujoco.MjvOption()
        self.camera = mujoco.MjvCamera()
        # A free camera aimed above the followed body each frame: the robot sits below the
        # text overlay in the top rows.
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self.track_body = track_body
        self.camera.distance, self.camera.elevation, self.camera.azimuth = distance, elevation, azimuth
        self.context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self.context)
        self.viewport = mujoco.MjrRect(0, 0, width, height)
        self._rgb = np.zeros((height, width, 3), np.uint8)

    def render(self, data, overlay: Optional[Overlay] = None) -> np.ndarray:
        mj = self._mujoco
        self._ctx.make_current()
        self.camera.lookat[:] = data.xpos[self.track_body] + np.array([0.0, 0.0, 0.12])
        mj.mjv_updateScene(self.model, data, self.option, None, self.camera, mj.mjtCatBit.mjCAT_ALL, self.scene)
        mj.mjr_render(self.viewport, self.scene, self.context)
        if overlay is not None:
            mj.mjr_overlay(mj.mjtFont.mjFONT_NORMAL, mj.mjtGridPos.mjGRID_TOPLEFT, self.viewport,
                           overlay.labels, overlay.values, self.context)
        mj.mjr_readPixels(self._rgb, None, self.viewport, self.context)
        return np.flipud(self._rgb).copy()  # OpenGL's rows run bottom-up

    def close(self) -> None:
        if self._ctx is not None:
            self.context.free()
            self._ctx.free()
            self._ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _copy_model(model):
    import copy

    return copy.copy(model)


def mp4_available() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def video_path(path: Path) -> Path:
    """``path`` with the suffix the installed encoders can write (.mp4, or .gif without ffmpeg)."""
    path = Path(path)
    if path.suffix.lower() == ".gif" or not mp4_available():
        return path.with_suffix(".gif")
    return path.with_suffix(".mp4")


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write ``frames`` (H x W x 3 uint8) to ``video_path(path)``; returns the path written."""
    import imageio.v2 as imageio

    path = video_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".mp4":
        with warnings.catch_warnings():
            # The encoder is an ffmpeg child process that execs at once; JAX's warning about
            # forking a multithreaded process does not apply to it.
            warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
            with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=1) as w:
                for f in frames:
                    w.append_data(f)
    else:
        # GIF frame times are whole hundredths of a second.
        imageio.mimsave(path, list(frames), duration=round(100.0 / fps) * 10, loop=0)
    return path
