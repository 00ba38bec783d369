"""Compiling a new run's first chunk in a thread while ``init`` compiles and runs, and the
``compiling: mm:ss`` line that ticks meanwhile (a first run compiles for a minute or more on a
laptop CPU and should not look hung)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any, Callable

from tqdm import tqdm


class BackgroundCompile:
    """Traces and compiles ``jitted`` for these abstract arguments in a thread; ``result()`` waits
    and gives the compiled executable, which then runs without any further tracing.

    XLA compiles each program on one core: on a 2-core machine a first run then waits for the
    longer of the two compiles instead of their sum."""

    def __init__(self, jitted: Any, *abstract_args: Any):
        self._done: dict[str, Any] = {}
        # An Event, not Thread.join: a join interrupted by Ctrl-C never blocks again (Python 3.11).
        self._finished = threading.Event()
        threading.Thread(target=self._work, args=(jitted, abstract_args), name="compile").start()

    def _work(self, jitted: Any, abstract_args: tuple) -> None:
        try:
            self._done["compiled"] = jitted.lower(*abstract_args).compile()
        except BaseException as exc:  # re-raised in the thread that asks for the result
            self._done["error"] = exc
        finally:
            self._finished.set()

    def result(self, interrupted: Callable[[], bool] = lambda: False) -> Any:
        """The compiled program; KeyboardInterrupt as soon as ``interrupted()`` (a Ctrl-C noted by the
        run's handler) says so, the compiler still running (``finish`` waits for it)."""
        # Short waits: between them the main thread runs any signal handler that is due, even when
        # the kernel handed the signal to another of the process's threads (XLA's, the compile thread).
        while not self._finished.wait(0.1):
            if interrupted():
                raise KeyboardInterrupt
        if "error" in self._done:
            raise self._done["error"]
        return self._done["compiled"]

    def finish(self) -> None:
        """Wait for the compiler: the process must not exit while XLA compiles in a thread (it aborts).
        A further Ctrl-C meanwhile (the first one brought us here) is ignored rather than cutting the wait short."""
        try:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread: signals are not ours to set
            previous = None
        try:
            self._finished.wait()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)


class ElapsedLine:
    """A status line, ``<desc>: mm:ss``, whose elapsed time ticks every ``interval`` seconds (of
    ``clock``) from a thread of its own while the main thread waits (for XLA)."""

    def __init__(self, desc: str, enabled: bool, interval: float = 1.0, clock=time.monotonic):
        self._desc, self._clock = desc, clock
        self._started = clock()
        self._bar = tqdm(bar_format="{desc}", disable=not enabled, file=sys.stderr)
        self._stop = threading.Event()
        self._interval = interval
        self.refresh()
        if enabled:
            threading.Thread(target=self._tick, name="elapsed", daemon=True).start()

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            self.refresh()

    def refresh(self) -> None:
        minutes, seconds = divmod(int(self._clock() - self._started), 60)
        self._bar.set_description_str(f"{self._desc}: {minutes:02d}:{seconds:02d}")

    def __enter__(self) -> "ElapsedLine":
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._bar.close()
