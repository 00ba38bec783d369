"""Stop signals: Ctrl-C and SIGTERM ask the run to stop at the next chunk boundary, where the runner
saves a checkpoint and exits (130 / 143)."""

from __future__ import annotations

import signal
import sys
import time
from typing import Any, Optional

from tqdm import tqdm


class StopRequest:
    """Ctrl-C / SIGTERM set a flag; the loop saves a checkpoint at the next chunk boundary and exits.
    A second Ctrl-C, a second or more after the first, interrupts at once. One sooner is taken for
    the same Ctrl-C delivered twice: without a terminal (a script, an IDE's stop button, a
    supervisor signalling the process group), ``uv run`` forwards the group's SIGINT to its child,
    which has it already.

    Handlers are installed only in the main thread (elsewhere, e.g. under a threaded launcher,
    signals are left alone)."""

    SAME_SIGNAL_S = 1.0

    def __init__(self, clock=time.monotonic):
        self.signum: Optional[int] = None
        self._clock = clock
        self._first = 0.0
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum if self.signum is not None else 0

    def __enter__(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self.handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def handle(self, signum: int, frame: Any = None) -> None:
        if self.signum is not None:
            if signum == signal.SIGINT and self._clock() - self._first >= self.SAME_SIGNAL_S:
                raise KeyboardInterrupt
            return
        self.signum, self._first = signum, self._clock()
        tqdm.write(f"\n{signal.Signals(signum).name} received: saving a checkpoint when the chunk now running ends "
                   f"(Ctrl-C again to abort without saving)", file=sys.stderr)

    def __exit__(self, *exc) -> bool:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
