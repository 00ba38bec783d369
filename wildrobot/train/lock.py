"""A run directory belongs to one run at a time.

``RunDirLock`` holds an exclusive ``flock`` on ``<run dir>/.wildrobot.lock`` for as long as a run
trains there, and writes who holds it (host, pid, start time) into the file. A second process that
opens the same run directory (a duplicate launch, two sweeps sharing ``hydra.sweep.dir``, a requeued
job racing its predecessor) stops before anything compiles, with the holder's name. The kernel
releases a ``flock`` when its process dies however it dies, so a lock file left by a killed run is
free: the next run takes it over and says whose it was.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Optional

LOCK_NAME = ".wildrobot.lock"
log = logging.getLogger(__name__)


class RunDirBusy(RuntimeError):
    """Another live process trains in this run directory."""


class RunDirLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: Optional[int] = None
        self.stale_holder: Optional[dict] = None  # what a dead run left in the file, when we took it over

    def acquire(self) -> "RunDirLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirBusy(
                f"the run directory {self.path.parent} is in use by another run ({describe(holder)}). "
                f"Two runs in one directory would overwrite each other's checkpoints. Wait for it to end, "
                f"stop it, or give this run its own directory (hydra.run.dir=... / hydra.sweep.dir=...)."
            ) from None
        except OSError as e:  # a file system without locks (e.g. NFS mounted nolock): run unguarded
            os.close(fd)
            log.warning("cannot lock the run directory %s (%s): a second run there would not be stopped",
                        self.path.parent, e)
            return self
        self.stale_holder = _read_holder(fd) or None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Empty the file and let go (the file stays: removing it could race a process waiting on it)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def describe(holder: dict) -> str:
    if not holder:
        return "holder unknown: it has not written its name yet"
    return f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, since {holder.get('started', '?')}"


def _read_holder(fd: int) -> dict:
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode()) if data.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}
