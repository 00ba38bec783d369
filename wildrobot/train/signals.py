"""Stop signals: Ctrl-C, SIGTERM and a cluster's preemption signal ask the run to stop at the next
chunk boundary, where the runner saves a checkpoint and exits (130 / 143), or, after a preemption
signal, hands over to whoever asks for the requeue (submitit's handler, else ``scontrol requeue``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any, Optional

from tqdm import tqdm


def preemption_signal() -> signal.Signals:
    """The signal a SLURM job is warned with before preemption or its time limit: submitit's
    ``SUBMITIT_PREEMPT_SIGNAL`` (USR2 unless set), which ``--signal=USR2@<seconds>`` asks SLURM for."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2").upper()
    return getattr(signal.Signals, name if name.startswith("SIG") else "SIG" + name, signal.SIGUSR2)


class EarlyInterrupt:
    """Ctrl-C from the first line of ``run.py`` until a run's ``StopRequest`` takes over: noted, not
    raised. A KeyboardInterrupt raised at an arbitrary point there can land in a callback that
    swallows it (JAX's garbage-collection hook: the run would then train on) or halfway through an
    import (a long traceback); the run instead stops at its next check, before anything trains
    (``Trainer.run``). A second Ctrl-C, a second or more after the first, aborts at once."""

    signum: Optional[int] = None
    first = 0.0

    @classmethod
    def install(cls) -> None:
        signal.signal(signal.SIGINT, cls.handle)

    @classmethod
    def handle(cls, signum: int, frame: Any = None) -> None:
        now = time.monotonic()
        if cls.signum is not None:
            if now - cls.first >= StopRequest.SAME_SIGNAL_S:
                raise KeyboardInterrupt
            return
        cls.signum, cls.first = signum, now
        print("\nSIGINT received: stopping before training starts (nothing trained yet, nothing to save)",
              file=sys.stderr, flush=True)

    @classmethod
    def take(cls) -> tuple[Optional[int], float]:
        """(signal, when) of a Ctrl-C not yet acted on, which is now the caller's to act on."""
        taken = (cls.signum, cls.first)
        cls.signum = None
        return taken

    @classmethod
    def installed(cls, handler: Any) -> bool:
        return handler == cls.handle

    @classmethod
    def release(cls) -> Optional[int]:
        """Python's own Ctrl-C handler back (for code that runs no ``StopRequest``, e.g. quick-verify);
        the Ctrl-C noted meanwhile, if any, for the caller to act on."""
        try:
            if cls.installed(signal.getsignal(signal.SIGINT)):
                signal.signal(signal.SIGINT, signal.default_int_handler)
        except ValueError:  # not the main thread
            pass
        return cls.take()[0]


class StopRequest:
    """Ctrl-C / SIGTERM / the preemption signal set a flag; the loop saves a checkpoint at the next
    chunk boundary and exits. After the preemption signal (``preemption_signal``: SLURM's warning
    before it preempts a job or its time limit ends), ``hand_over`` then gives the signal to the
    handler that was there before (submitit's: it resubmits the job and exits), or, in a plain
    SLURM job, requeues it with ``scontrol requeue``; the requeued job resumes its own run
    directory. SIGTERM alone (``scancel``) saves and exits.
    A second Ctrl-C, a second or more after the first, interrupts at once. One sooner is taken for
    the same Ctrl-C delivered twice: without a terminal (a script, an IDE's stop button, a
    supervisor signalling the process group), ``uv run`` forwards the group's SIGINT to its child,
    which has it already.

    Handlers are installed only in the main thread (elsewhere, e.g. under a threaded launcher,
    signals are left alone)."""

    SAME_SIGNAL_S = 1.0

    # After SIGTERM alone in a SLURM job: how long to wait for SLURM to end the job (its KillWait
    # or a preemption's GraceTime) before exiting by ourselves.
    LINGER_S = 600.0

    def __init__(self, clock=time.monotonic, requeue=None, linger=None):
        self.signum: Optional[int] = None
        # while True (``Trainer.run``: until the training loop starts) a Ctrl-C stops the run before
        # it trains, at its next check (``interrupted``), rather than at a chunk boundary
        self.starting = False
        self.preempted = False  # the preemption signal arrived (also after another stop signal)
        self._preempt = preemption_signal()
        self._clock = clock
        self._first = 0.0
        self._previous: dict[int, Any] = {}
        self._requeue = requeue or scontrol_requeue
        self._linger = linger or (lambda: time.sleep(self.LINGER_S))

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
        for sig in dict.fromkeys((signal.SIGINT, signal.SIGTERM, self._preempt)):  # the preemption one may be either
            try:
                self._previous[sig] = signal.signal(sig, self.handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        if signal.SIGINT in self._previous:  # ours now: a Ctrl-C noted before (``EarlyInterrupt``) is ours to act on
            if EarlyInterrupt.installed(self._previous[signal.SIGINT]):  # and after this run, Python's own handler
                self._previous[signal.SIGINT] = signal.default_int_handler
            signum, first = EarlyInterrupt.take()
            if signum is not None and self.signum is None:
                self.signum, self._first = signum, first
        return self

    @property
    def interrupted(self) -> bool:
        """Ctrl-C came while the run was starting: it stops before it trains."""
        return self.starting and self.signum == signal.SIGINT

    def withdraw(self) -> None:
        """Forget the signal: it came when the run had finished anyway (its last chunk was running)."""
        self.signum, self.preempted = None, False

    def handle(self, signum: int, frame: Any = None) -> None:
        if signum == self._preempt:
            self.preempted = True
        if self.signum is not None:
            if signum == signal.SIGINT and self._clock() - self._first >= self.SAME_SIGNAL_S:
                raise KeyboardInterrupt
            return
        self.signum, self._first = signum, self._clock()
        if self.interrupted:
            tqdm.write("\nSIGINT received: stopping before training starts (nothing trained yet, nothing to save)",
                       file=sys.stderr)
            return
        then = "and requeueing the job" if self.requeues else "(Ctrl-C again to abort without saving)"
        when = "at the first chunk boundary" if self.starting else "when the chunk now running ends"
        tqdm.write(f"\n{signal.Signals(signum).name} received: saving a checkpoint {when} {then}", file=sys.stderr)

    @property
    def requeues(self) -> bool:
        """Whether ``hand_over`` will requeue: the preemption signal came, and there is submitit's
        handler to pass it to, or this is the first task of a SLURM job."""
        if not self.preempted:
            return False
        return callable(self._previous.get(self._preempt)) or (
            bool(os.environ.get("SLURM_JOB_ID")) and os.environ.get("SLURM_PROCID", "0") == "0")

    def adopt(self, signum: int) -> None:
        """Stop for a signal another process of the run got (``Trainer.agreed_signal``)."""
        if signum and self.signum is None:
            self.signum, self._first = signum, self._clock()

    def hand_over(self) -> None:
        """After the checkpoint: when the preemption signal came, pass it to the handler that was
        installed before ours (submitit's resubmits the job, then exits), or requeue a plain
        SLURM job ourselves. After SIGTERM alone in a SLURM job (a cluster that preempts without
        the user signal, or ``scancel``), wait for SLURM to end the job: a job that exits by itself
        within a preemption's grace time counts as completed and is not requeued, while one that
        SLURM kills is requeued (``--requeue``) or, cancelled, simply ends. Nothing otherwise."""
        if not self.preempted:
            # a SLURM step (srun, submitit): where SLURM's preemption and scancel signals arrive
            if self.signum == signal.SIGTERM and os.environ.get("SLURM_JOB_ID") and os.environ.get("SLURM_STEP_ID"):
                print(f"SIGTERM in SLURM job {os.environ['SLURM_JOB_ID']}: checkpoint saved; waiting for SLURM to "
                      f"end the job (preempted: it is requeued and resumes here; cancelled: it ends)",
                      file=sys.stderr, flush=True)
                self._linger()
            return
        previous = self._previous.get(self._preempt)
        if callable(previous):
            previous(self._preempt, None)
        elif self.requeues:
            self._requeue(os.environ["SLURM_JOB_ID"])

    def __exit__(self, *exc) -> bool:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def scontrol_requeue(job_id: str) -> None:
    """Put a plain SLURM job (one submitted without submitit) back in the queue: SLURM restarts it
    once it has exited, and it resumes its own run directory."""
    try:
        done = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60)
        failed = done.stderr.strip() if done.returncode else ""
    except (OSError, subprocess.SubprocessError) as e:
        failed = str(e)
    if failed:
        print(f"scontrol requeue {job_id} failed ({failed}); resume by hand with trainer.resume=<this run directory>",
              file=sys.stderr)
    else:
        print(f"SLURM job {job_id} requeued: when it restarts it resumes this run, provided hydra.run.dir names the "
              f"same directory again (e.g. hydra.run.dir=outputs/slurm-$SLURM_JOB_ID)", file=sys.stderr)
