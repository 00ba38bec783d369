"""The one training loop. It owns time and I/O only and never knows which algorithm or env runs:
trainers subclass ``Trainer`` and return an algorithm from ``make_algorithm``.

``Trainer.run`` is the loop: start (a new run, or resume one), then run chunks of iterations, and
after each chunk: evaluate if due, log, save if due or asked to stop, and stop or go on. Its phases
live next to it: ``resume`` (which checkpoint, may this config continue it), ``signals`` (Ctrl-C,
SIGTERM, a cluster's preemption), ``lock`` (one run per run directory), ``compiling`` (the first
chunk compiled while ``init`` runs), ``chunks`` (the jitted chunk, its schedule and the worker
thread that runs it), ``sharding`` (the carry over several devices), ``progress`` (what is
printed), ``checkpoint`` and ``logging`` (Orbax and TensorBoard).
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Optional

import jax
import numpy as np

from wildrobot.algos.base import Algorithm
from wildrobot.config import Config, ConfigError
from wildrobot.envs.core import Env
from wildrobot.envs.factory import make_env
from wildrobot.jax_setup import release_freed_memory
from wildrobot.train.checkpoint import Checkpointer, git_revision, package_versions
from wildrobot.train.chunks import CHUNK_LENGTH, ChunkRunner, FinishedChunk, chunk_length, make_chunk
from wildrobot.train.compiling import BackgroundCompile, ElapsedLine
from wildrobot.train.logging import TensorBoardLogger, has_events
from wildrobot.train.progress import Progress, budget_line, global_step
from wildrobot.train.lock import RunDirBusy, RunDirLock, describe
from wildrobot.train.resume import RunLocation, own_checkpoints, resolve_resume, restore_for_resume
from wildrobot.train.sharding import device_count, placement
from wildrobot.train.signals import StopRequest


def requeued() -> bool:
    """Whether this is a SLURM job started again after a preemption or a requeue (its restart count)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0


class StartInterrupted(Exception):
    """Ctrl-C while the run was starting (``Trainer._check_start``)."""


class Trainer:
    """Shared by every trainer: env, seeded RNG, chunked jitted loop, cadence, logging, resume."""

    def __init__(self, cfg: Config, run_dir: Path, search_root: Optional[Path] = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.cfg = cfg
        self.run_dir = Path(run_dir).absolute()
        self.search_root = Path(search_root or Path.cwd()).absolute()
        self.clock = clock  # wall time, for chunk timing (tests inject their own)
        self.trace_count = 0  # how often the chunk function was traced (1 = compiled once)
        self.final_metrics: dict[str, float] = {}
        self.chunk_seconds: list[float] = []  # time of each chunk's own program (on resume the first includes compiling)
        self.chunk_iterations: list[int] = []  # iterations in each chunk (a new run's first has one)
        self.seconds_to_first_chunk = math.nan  # from run() start: env build, init, compile, the first chunk
        # Called once the run may train in its directory (the lock held, its own checkpoints' config
        # checked), before it compiles: the CLI records Hydra's .hydra/ there then, not before, so a
        # refused start leaves the record of the run already in that directory as it was.
        self.on_started: Callable[[], None] = lambda: None
        self.stop_request: Optional[StopRequest] = None  # run()'s, while it runs

    # -- what a trainer provides ---------------------------------------------------------------
    def make_algorithm(self, env: Env) -> Algorithm:
        raise NotImplementedError

    def on_finish(self, carry: Any, metrics: dict[str, float]) -> None:
        """Called once after the loop (also after an interruption)."""

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> int:
        started = self.clock()
        t = self.cfg.trainer
        # The stop signals are taken from the start. SIGTERM and the preemption signal that land while
        # the env builds, the checkpoint restores or the program compiles (minutes on a cold cache) are
        # acted on at the first chunk boundary, as later; a Ctrl-C then (or one noted since run.py
        # began, ``EarlyInterrupt``) stops the run at its next check, before it trains: nothing to save.
        with StopRequest() as stop:
            stop.starting = True
            self.stop_request = stop
            try:
                self._check_start()
                carry = self.start()
            except StartInterrupted:
                self.say("Stopped by SIGINT before training started (nothing trained yet, nothing to save)")
                return 128 + signal.SIGINT
            if carry is None:  # Ctrl-C while compiling
                return 128 + signal.SIGINT
            stop.starting = False
            it, metrics = self.start_iteration, {}
            chunks = None

            def next_chunk(carry: Any, it: int) -> None:
                if it < t.iterations:
                    chunks.launch(carry, it, chunk_length(it, t.log_every, t.iterations))

            try:
                chunks = ChunkRunner(self.chunk_fn, self.clock)
                next_chunk(carry, it)
                while chunks.pending:
                    done = chunks.wait()
                    carry, it = done.carry, done.end
                    # Every process of a multi-process run stops at the same chunk boundary when
                    # any of them got a stop signal (else one would wait forever in a collective).
                    # A signal that lands after this point counts at the next boundary.
                    agreed = self.agreed_signal(stop.signum)
                    stop.adopt(agreed)
                    stopping = bool(agreed)
                    # The next chunk is queued before this one is logged, so the device never idles
                    # while Python works; not when this chunk's state is still needed (evaluation,
                    # checkpoint, stop): the next chunk would take it over (donated buffers).
                    keep = self.evaluation_due(it) or self.checkpoint_due(it) or stopping
                    if not keep:
                        next_chunk(carry, it)
                    metrics = self.chunk_metrics(done, started)
                    if self.evaluation_due(it):
                        metrics.update(self.evaluate(carry, it))
                    self.log(it, done, metrics)
                    if keep:  # this chunk's state is the newest
                        if self.checkpoint_due(it) or stopping:
                            self.tensorboard.flush()  # the curves on disk as far as the checkpoint
                            self.ckpt.save(it, carry, self.meta)
                        if not stopping:
                            next_chunk(carry, it)
                if stop.preempted and it >= t.iterations:  # the warning came during the last chunk: done
                    self.say(f"{stop.name} received as the run finished at iteration {it}: nothing left to requeue")
                    stop.withdraw()  # (a Ctrl-C or SIGTERM still ends with its code: it also stops a sweep)
                if stop.requested:
                    then = ("the job is requeued and resumes here" if stop.preempted and stop.requeues
                            else f"Resume with trainer.resume={self.out_dir}")
                    self.say(f"Stopped by {stop.name} at iteration {it}; checkpoint saved in "
                          f"{self.out_dir / 'checkpoints' / 'latest' / str(it)}. {then}")
            finally:
                if chunks is not None:
                    chunks.close()  # a chunk still running (after an error) finishes first
                self.progress.close()
                self.tensorboard.close()
                self.ckpt.close()
                self.lock.release()
        self.final_metrics = metrics
        self.say(f"Checkpoints: {self.out_dir / 'checkpoints'}\n"
              f"TensorBoard: tensorboard --logdir {self.out_dir / 'tensorboard'}")
        self.on_finish(carry, metrics)
        stop.hand_over()  # after a preemption signal: requeue (submitit's handler exits here)
        return stop.exit_code

    # -- the phases ---------------------------------------------------------------------------
    def start(self) -> Optional[Any]:
        """Build the env and algorithm, open the checkpoints and TensorBoard, then resume the run
        ``trainer.resume`` names or initialise a new one, and compile the chunk program. The carry
        to start from, or None when Ctrl-C arrived while a new run compiled (nothing to save)."""
        cfg, t = self.cfg, self.cfg.trainer
        location = resolve_resume(t.resume, self.search_root, self.run_dir) if t.resume else None
        if location and (location.step is not None or location.which != "latest") and requeued():
            # a SLURM job restarted after a preemption: trainer.resume named where the job began, and
            # the job has saved past it since; it continues its own newest checkpoint (not that step
            # again, which would branch away from everything the job trained before)
            self.say(f"A requeued job (SLURM_RESTART_COUNT={os.environ['SLURM_RESTART_COUNT']}): continuing the newest "
                     f"checkpoint of {location.run_dir}, not the one trainer.resume names")
            location = RunLocation(location.run_dir, None, "latest")
        self.out_dir = location.run_dir if location else self.run_dir
        self.lock = RunDirLock(self.out_dir)
        busy: Optional[BaseException] = None
        if self.is_main_process:  # before anything compiles: a second run here stops now
            try:
                self.lock.acquire()
            except Exception as e:  # noqa: BLE001 - any failure here is agreed on below, then raised
                busy = e
            if self.lock.stale_holder:
                print(f"Took over the run directory's lock from a run that is no longer running "
                      f"({describe(self.lock.stale_holder)})")
        if self.agreed_signal(1 if busy else 0):  # every process of the run stops, not only the first
            raise busy or RunDirBusy(f"the run directory {self.out_dir} is in use by another run (process 0 "
                                     f"of this run found it held; its message names the holder)")
        if not t.resume:  # read under the lock: a run that held it may have saved its first checkpoint since
            location = own_checkpoints(self.run_dir)
        where = f"{self.out_dir}|{location.step if location else ''}|{location.which if location else ''}"
        if not self.same_in_every_process(zlib.crc32(where.encode()) >> 1):
            raise ConfigError(f"the processes of this run do not agree on its run directory and checkpoint (this "
                              f"one: {self.out_dir}): give them one hydra.run.dir (wildrobot.launch does) and, to "
                              f"resume, the same trainer.resume")
        try:
            return self._start(location)
        except BaseException:
            self.lock.release()
            raise

    def _check_start(self, agreed: bool = False) -> None:
        """Between the phases of starting: stop here when Ctrl-C came meanwhile (``run`` says so). The
        processes of a multi-process run decide together, once, at the end of starting (``agreed``):
        one stopping alone would leave the others waiting in a collective it never enters."""
        interrupted = self.stop_request is not None and self.stop_request.interrupted
        if jax.process_count() > 1:
            if not agreed:
                return
            interrupted = self.agreed_signal(signal.SIGINT if interrupted else 0) == signal.SIGINT
        if interrupted:
            raise StartInterrupted

    def _start(self, location: Optional[RunLocation]) -> Optional[Any]:
        cfg, t = self.cfg, self.cfg.trainer
        self.env = make_env(cfg.env)
        devices = device_count(cfg, self.env.physics_backend)  # a ConfigError before anything compiles
        self._check_start()
        self.algo = self.make_algorithm(self.env)
        self._check_start()
        self.meta = self.run_metadata(self.algo, self.env.physics_backend)
        key = jax.random.key(cfg.seed)
        abstract = jax.eval_shape(self.algo.init, key)
        self.placement = placement(self.algo, abstract, devices)  # the carry on one device or split over several
        abstract = self.placement.abstract  # with the carry's shardings, when there are several
        self.ckpt = Checkpointer(self.out_dir / "checkpoints", t.keep_checkpoints)
        self.start_iteration = 0
        carry = None
        try:
            if location:
                carry, self.start_iteration = restore_for_resume(self.ckpt, location, abstract, cfg,
                                                                 self.env.physics_backend)
                carry = self.placement.place(carry)
                self._check_start()
                self._branch_from(self.start_iteration)
                own = "its own checkpoint: a requeued job, or a rerun in the same directory; " if location.own else ""
                self.say(f"Resuming {location.run_dir} from iteration {self.start_iteration} "
                      f"({own}checkpoints and TensorBoard continue there)")
            if self.is_main_process:
                self.on_started()
            self.say(budget_line(cfg, self.algo, self.start_iteration, self.env.physics_backend, self.out_dir))
            for note in getattr(self.algo, "notes", ()):
                self.say(note)
            if self.start_iteration >= t.iterations:
                self.say(f"Nothing to train: the run is at iteration {self.start_iteration} and trainer.iterations="
                         f"{t.iterations}. Raise trainer.iterations to train it longer.")
            else:
                self.say("Compiling the training program ...")
            chunk = self.placement.jit_chunk(make_chunk(self.algo, t.log_every, on_trace=self._traced))
            if location:
                self.chunk_fn = chunk  # compiled by its first call
            else:
                carry, self.chunk_fn = self._init_and_compile(chunk, key, abstract)
            if carry is not None:
                self._check_start(agreed=True)  # a Ctrl-C as the compile finished: still before training
        except BaseException:
            self.ckpt.close()
            raise
        if carry is None:
            self.ckpt.close()
            self.lock.release()
            return None
        # Purge what an interrupted run logged after its checkpoint (steps > start), keep the rest; a
        # new run in a directory whose run died before its first checkpoint hides that run's points.
        purge = global_step(self.algo, self.start_iteration) + 1 if location else None
        if purge is None and has_events(self.out_dir / "tensorboard"):
            purge = 0
        self.tensorboard = TensorBoardLogger(self.out_dir / "tensorboard", purge_step=purge)
        self.progress = Progress(cfg, self.algo, self.start_iteration, enabled=self.is_main_process and t.progress,
                                 lines=self.is_main_process)
        self.evaluate_fn = jax.jit(self.algo.evaluate)
        return carry

    def _branch_from(self, start: int) -> None:
        """A resume from a checkpoint older than the run's newest (one named by step, a best one, or
        the one before a corrupt newest) continues from there as a new branch: the newer checkpoints
        are moved aside (``Checkpointer.set_aside_after``), as TensorBoard hides the newer points.
        Not when there is nothing to train (``start`` at ``trainer.iterations``): nothing would replace them."""
        if start >= self.cfg.trainer.iterations:
            return
        if self.is_main_process:
            folder, moved = self.ckpt.set_aside_after(start, time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime()))
            if folder is not None:
                steps = "; ".join(f"{which} {', '.join(map(str, s))}" for which, s in moved.items())
                self.say(f"Continuing from iteration {start}, before the run's newest checkpoints ({steps}): "
                         f"those moved to {folder} (nothing deleted), so this run's own take their place")
        self.same_in_every_process(0)  # every process reads the folders after process 0 moved them
        self.ckpt.reload()

    def _init_and_compile(self, chunk: Any, key: jax.Array, abstract: Any) -> tuple[Optional[Any], Any]:
        """XLA compiles each program on one core: compile the first chunk while init compiles and
        runs (on a cold compilation cache these are a first run's two longest waits)."""
        compiling = BackgroundCompile(chunk, abstract, CHUNK_LENGTH)
        try:
            with ElapsedLine("compiling", enabled=self.cfg.trainer.progress and self.is_main_process):
                carry = self.placement.jit_init(self.algo.init)(key)
                release_freed_memory()
                compiled = compiling.result(interrupted=lambda: self.stop_request is not None and jax.process_count() == 1
                                            and self.stop_request.interrupted)
        except KeyboardInterrupt:
            self.say("Stopped by SIGINT while compiling (nothing trained yet, nothing to save); "
                     "exiting when the compiler returns ...")
            compiling.finish()
            return None, None
        release_freed_memory()
        return carry, compiled

    def evaluation_due(self, it: int) -> bool:
        every = self.cfg.trainer.eval_every
        return bool(every) and it % every == 0

    def checkpoint_due(self, it: int) -> bool:
        every = self.cfg.trainer.checkpoint_every
        return bool(every) and it % every == 0 or it >= self.cfg.trainer.iterations

    def chunk_metrics(self, done: FinishedChunk, started: float) -> dict[str, float]:
        """The chunk's metrics with its iteration and rate; records its timing."""
        self.chunk_seconds.append(done.seconds)
        self.chunk_iterations.append(done.iterations)
        if len(self.chunk_seconds) == 1:
            self.seconds_to_first_chunk = self.clock() - started
            release_freed_memory()  # what compiling the chunk (on resume) left behind
        steps = done.iterations * self.algo.env_steps_per_iteration
        return {**done.metrics, "perf/steps_per_second": steps / done.seconds if steps else 0.0,
                "perf/iteration": done.end}

    def evaluate(self, carry: Any, it: int) -> dict[str, float]:
        """The algorithm's evaluation at iteration ``it`` (its own key per iteration), and the best
        checkpoint kept by it. An evaluation is sequential episodes (seconds even on a GPU): its
        time is reported on its own, not as a slow chunk."""
        began = self.clock()
        out = {}
        evaluation = self.evaluate_fn(carry, jax.random.fold_in(jax.random.key(self.cfg.seed + 1), it))
        if evaluation is not None:
            out = {k: float(v) for k, v in jax.device_get(evaluation).items()}
            best = self.algo.best_metric
            if best in out and self.ckpt.save_if_best(it, carry, self.meta, out[best]):
                out["eval/best"] = out[best]
        out["perf/eval_seconds"] = self.clock() - began
        return out

    def log(self, it: int, done: FinishedChunk, metrics: dict[str, float]) -> None:
        """TensorBoard, the progress bar and the summary line of the chunk that ended at ``it``."""
        self.tensorboard.scalars(metrics, global_step(self.algo, it))
        self.progress.chunk(it, done.iterations, done.seconds, metrics)

    @property
    def is_main_process(self) -> bool:
        """Whether this process prints, writes TensorBoard and holds the run directory's lock (one
        process of a multi-process run does; all of them save checkpoints, collectively)."""
        return jax.process_index() == 0

    def objective(self) -> float:
        """What a hyperparameter search maximises: the best evaluation of the run (the algorithm's
        ``best_metric``, as kept by the best checkpoint); NaN when nothing was evaluated (Optuna
        records such a trial as failed and goes on)."""
        best = getattr(getattr(self, "ckpt", None), "best_value", -math.inf)
        if math.isfinite(best):
            return float(best)
        value = self.final_metrics.get(getattr(getattr(self, "algo", None), "best_metric", ""), math.nan)
        return float(value) if math.isfinite(value) else math.nan

    def say(self, text: str) -> None:
        """A line on the console, from the main process only."""
        if self.is_main_process:
            print(text, flush=True)

    @staticmethod
    def same_in_every_process(value: int) -> bool:
        """Whether every process of the run has this ``value`` (a collective; True for one process)."""
        if jax.process_count() == 1:
            return True
        from jax.experimental import multihost_utils

        values = multihost_utils.process_allgather(np.int32(value))
        return bool(np.all(values == values[0]))

    @staticmethod
    def agreed_signal(signum: Optional[int]) -> int:
        """The largest of every process's ``signum`` (0: none): a collective when the run has several
        processes, so all of them take the same decision at the same point; this process's own
        otherwise."""
        own = int(signum or 0)
        if jax.process_count() == 1:
            return own
        from jax.experimental import multihost_utils

        return int(np.max(multihost_utils.process_allgather(np.int32(own))))

    def run_metadata(self, algo: Algorithm, physics: str = "") -> dict:
        """What every checkpoint of this run records besides its state."""
        return {
            "config": dataclasses.asdict(self.cfg),
            "env": self.cfg.env.name,
            "physics": physics,  # the engine that ran (env.sim.backend=auto picks by device)
            "algo": self.cfg.algo.name,
            "versions": package_versions(),
            "git_revision": git_revision(),
            "env_steps_per_iteration": algo.env_steps_per_iteration,
        }

    def _traced(self) -> None:
        self.trace_count += 1
