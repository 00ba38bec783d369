"""The one training loop. It owns time and I/O only (compile once, run chunks, log, evaluate,
checkpoint, resume, handle signals) and never knows which algorithm runs: trainers subclass
``Trainer`` and return an algorithm from ``make_algorithm``."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from wildrobot.algos.base import Algorithm
from wildrobot.config import Config, ConfigError
from wildrobot.envs.core import Env
from wildrobot.envs.factory import make_env
from wildrobot.jax_setup import release_freed_memory
from wildrobot.train.checkpoint import Checkpointer, CheckpointError, git_revision, package_versions
from wildrobot.train.logging import TensorBoardLogger

log = logging.getLogger(__name__)

# Shown in the one-line summary per chunk, when the algorithm reports them.
SUMMARY = (
    ("return", "episode/return", "{:.2f}"),
    ("len", "episode/length", "{:.0f}"),
    ("vx_err", "env/tracking/vx_error", "{:.3f}"),
    ("yaw_err", "env/tracking/yaw_rate_error", "{:.3f}"),
    ("falls", "episode/fall", "{:.2f}"),
    ("eval", "eval/return", "{:.2f}"),
)
# Config keys whose change on resume is expected (budget, cadence, where to resume from).
RESUME_FREE_KEYS = ("trainer.iterations", "trainer.log_every", "trainer.checkpoint_every", "trainer.eval_every",
                    "trainer.keep_checkpoints", "trainer.resume", "trainer.progress", "trainer.mode")


# The chunk program's second argument: how many of its log_every iterations to run.
CHUNK_LENGTH = jax.ShapeDtypeStruct((), np.int32)

# A batch this large only pays off on a GPU (on the CPU a 1024-env chunk already saturates the cores).
GPU_SIZED_ENVS = 4096


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if dataclasses.is_dataclass(d):
        d = dataclasses.asdict(d)
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: list(d) if isinstance(d, tuple) else d}


def config_differences(stored: dict, current: Config) -> list[str]:
    old, new = flatten(stored), flatten(current)
    keys = sorted(set(old) | set(new))
    return [f"{k}: checkpoint {old.get(k, '<absent>')!r} vs now {new.get(k, '<absent>')!r}"
            for k in keys if old.get(k) != new.get(k) and k not in RESUME_FREE_KEYS]


def reduce_chunk(metrics: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-iteration metrics of one chunk -> one value each. Episode statistics are weighted by
    how many episodes ended in each iteration; a chunk with none reports none."""
    out = {}
    counts = metrics.get("episode/count")
    for k, v in metrics.items():
        v = np.asarray(v, dtype=np.float64)
        if k == "episode/count":
            out[k] = float(v.sum())
        elif k.startswith("episode/") and counts is not None:
            total = float(np.sum(counts))
            if total > 0:
                out[k] = float(np.sum(v * counts) / total)
        else:
            out[k] = float(v.mean())
    return out


PHYSICS_NAMES = {"mjx": "MJX", "mujoco": "MuJoCo C"}


def physics_backend(env: Env) -> str:
    """The physics engine an env steps (``env.sim.backend`` resolved), or "" for envs without one."""
    return getattr(getattr(env, "physics", None), "backend", "")


class BackgroundCompile:
    """Traces and compiles ``jitted`` for these abstract arguments in a thread; ``result()`` waits
    and gives the compiled executable, which then runs without any further tracing."""

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

    def result(self) -> Any:
        self._finished.wait()
        if "error" in self._done:
            raise self._done["error"]
        return self._done["compiled"]

    def finish(self) -> None:
        """Wait for the compiler: the process must not exit while XLA compiles in a thread (it aborts)."""
        self._finished.wait()


class ElapsedLine:
    """A status line whose elapsed time ticks once a second while the main thread waits (for
    XLA: a first run compiles for a minute or more on a laptop CPU, and should not look hung)."""

    def __init__(self, desc: str, enabled: bool):
        self._bar = tqdm(desc=desc, bar_format="{desc}: {elapsed}", disable=not enabled, file=sys.stderr)
        self._stop = threading.Event()
        if enabled:
            threading.Thread(target=self._tick, name="elapsed", daemon=True).start()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self._bar.refresh()

    def __enter__(self) -> "ElapsedLine":
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._bar.close()


def resolve_resume(spec: str, search_root: Path, current_run_dir: Path,
                   option: str = "trainer.resume") -> tuple[Path, Optional[int], str]:
    """``trainer.resume`` (or another ``option`` naming a run) -> (run dir, step or None for the
    newest, "latest" | "best")."""
    if spec == "latest":
        candidates = []
        for pattern in ("outputs/*/*/checkpoints/latest", "multirun/*/*/*/checkpoints/latest"):
            for d in search_root.glob(pattern):
                run_dir = d.parent.parent
                steps = [p for p in d.iterdir() if p.name.isdigit()]
                if steps and run_dir.resolve() != current_run_dir.resolve():
                    candidates.append((max(p.stat().st_mtime for p in steps), run_dir))
        if not candidates:
            raise ConfigError(f"{option}=latest: no run with checkpoints under {search_root}/outputs or "
                              f"{search_root}/multirun. Pass a run directory instead.")
        return max(candidates)[1], None, "latest"
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = search_root / path
    if not path.exists():
        raise ConfigError(f"{option}={spec!r}: {path} does not exist. Give a run directory (it holds "
                          f"checkpoints/), a checkpoint directory (checkpoints/latest/<step>), or 'latest'.")
    path = path.resolve()
    if path.name.isdigit() and path.parent.name in ("latest", "best"):
        return path.parent.parent.parent, int(path.name), path.parent.name
    if path.name in ("latest", "best") and path.parent.name == "checkpoints":
        return path.parent.parent, None, path.name
    if path.name == "checkpoints":
        return path.parent, None, "latest"
    if (path / "checkpoints").is_dir():
        return path, None, "latest"
    raise ConfigError(f"{option}={spec!r}: {path} holds no checkpoints/ folder. Give the run directory "
                      f"that a training run wrote (with checkpoints/ inside), a checkpoint directory, or 'latest'.")


class StopRequest:
    """Ctrl-C / SIGTERM set a flag; the loop saves a checkpoint at the next chunk boundary and exits.
    A second Ctrl-C, a second or more after the first, interrupts at once. One sooner is taken for
    the same Ctrl-C delivered twice: without a terminal (a script, an IDE's stop button, a
    supervisor signalling the process group), ``uv run`` forwards the group's SIGINT to its child,
    which has it already."""

    SAME_SIGNAL_S = 1.0

    def __init__(self):
        self.signum: Optional[int] = None
        self._first = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a threaded launcher): leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            if signum == signal.SIGINT and time.monotonic() - self._first >= self.SAME_SIGNAL_S:
                raise KeyboardInterrupt
            return
        self.signum, self._first = signum, time.monotonic()
        tqdm.write(f"\n{signal.Signals(signum).name} received: saving a checkpoint when the chunk now running ends "
                   f"(Ctrl-C again to abort without saving)", file=sys.stderr)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


class Trainer:
    """Shared by every trainer: env, seeded RNG, chunked jitted loop, cadence, logging, resume."""

    def __init__(self, cfg: Config, run_dir: Path, search_root: Optional[Path] = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir).absolute()
        self.search_root = Path(search_root or Path.cwd()).absolute()
        self.trace_count = 0  # how often the chunk function was traced (1 = compiled once)
        self.final_metrics: dict[str, float] = {}
        self.chunk_seconds: list[float] = []  # wall time of each chunk (on resume the first includes compiling)
        self.chunk_iterations: list[int] = []  # iterations in each chunk (a new run's first has one)
        self.seconds_to_first_chunk = math.nan  # from run() start: env build, init, compile, the first chunk

    # -- what a trainer provides ---------------------------------------------------------------
    def make_algorithm(self, env: Env) -> Algorithm:
        raise NotImplementedError

    def on_finish(self, carry: Any, metrics: dict[str, float]) -> None:
        """Called once after the loop (also after an interruption)."""

    # -- the loop -----------------------------------------------------------------------------
    def meta(self, algo: Algorithm, physics: str = "") -> dict:
        return {
            "config": dataclasses.asdict(self.cfg),
            "env": self.cfg.env.name,
            "physics": physics,  # the engine that ran (env.sim.backend=auto picks by device)
            "algo": self.cfg.algo.name,
            "versions": package_versions(),
            "git_revision": git_revision(),
            "env_steps_per_iteration": algo.env_steps_per_iteration,
        }

    def global_step(self, algo: Algorithm, iteration: int) -> int:
        """The TensorBoard step axis: env steps, or iterations for algorithms without an env."""
        return iteration * (algo.env_steps_per_iteration or 1)

    def run(self) -> int:
        started = time.perf_counter()
        cfg, t = self.cfg, self.cfg.trainer
        resume = resolve_resume(t.resume, self.search_root, self.run_dir) if t.resume else None
        out_dir = resume[0] if resume else self.run_dir

        env = make_env(cfg.env)
        algo = self.make_algorithm(env)
        key = jax.random.key(cfg.seed)
        ckpt = Checkpointer(out_dir / "checkpoints", t.keep_checkpoints)
        start = 0
        if resume:
            run_dir, step, manager = resume
            abstract = jax.eval_shape(algo.init, key)
            diff = self._resume_diff(ckpt, step, manager, physics_backend(env))
            carry, meta, start = ckpt.restore_newest(abstract, step=step, manager=manager,
                                                     config_diff=("\nKeys that differ:\n  " + "\n  ".join(diff)) if diff else "")
            if diff:
                log.warning("resuming with a config that differs from the checkpoint's:\n  %s", "\n  ".join(diff))
            print(f"Resuming {run_dir} from iteration {start} (checkpoints and TensorBoard continue there)")
        print(self._budget_line(algo, start, physics_backend(env)))
        print("Compiling the training program ...", flush=True)
        chunk_jit = jax.jit(self._make_chunk(algo), donate_argnums=0)
        if resume:
            chunk_fn = chunk_jit
        else:
            # XLA compiles each program on one core: compile the first chunk while init compiles
            # and runs (on a cold compilation cache these are a first run's two longest waits).
            compiling = BackgroundCompile(chunk_jit, jax.eval_shape(algo.init, key), CHUNK_LENGTH)
            try:
                with ElapsedLine("compiling", enabled=t.progress and jax.process_index() == 0):
                    carry = jax.jit(algo.init)(key)
                    release_freed_memory()
                    chunk_fn = compiling.result()
            except KeyboardInterrupt:
                print("Stopped by SIGINT while compiling (nothing trained yet, nothing to save); "
                      "exiting when the compiler returns ...", flush=True)
                compiling.finish()
                return 128 + signal.SIGINT
            release_freed_memory()

        steps_per_it = algo.env_steps_per_iteration
        # Purge what an interrupted run logged after its checkpoint (steps > start), keep the rest.
        tb = TensorBoardLogger(out_dir / "tensorboard", purge_step=self.global_step(algo, start) + 1 if resume else None)
        eval_fn = jax.jit(algo.evaluate)
        meta = self.meta(algo, physics_backend(env))

        it, exit_code, metrics = start, 0, {}
        unit_total = (t.iterations - start) * (steps_per_it or 1)
        bar = tqdm(total=unit_total, unit=" steps" if steps_per_it else " it", unit_scale=True, dynamic_ncols=True,
                   disable=not t.progress or jax.process_index() != 0, file=sys.stderr)

        # JAX returns from a call at once and runs the program in the background, except a program
        # that calls back into Python (MuJoCo C physics), which runs to its end inside the call on
        # a CPU: calls go to a worker thread, so either way Python logs one chunk while the next runs.
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk")

        def launch(carry: Any, it: int) -> tuple[Future, int]:
            """Queue the chunk that starts at iteration ``it``: a new run's first is one iteration
            (progress shows as soon as the program is compiled), every other runs up to the next
            multiple of log_every (the cadence of logs, checkpoints and evaluations)."""
            n = 1 if it == 0 else min(t.log_every - it % t.log_every, t.iterations - it)
            return worker.submit(chunk_fn, carry, np.int32(n)), n

        try:
            with StopRequest() as stop:
                chunk_start = time.perf_counter()
                pending = launch(carry, it) if it < t.iterations else None
                while pending is not None:
                    call, n = pending
                    carry, chunk_metrics = call.result()
                    it += n
                    evaluate_now = bool(t.eval_every) and it % t.eval_every == 0
                    save_now = bool(t.checkpoint_every) and it % t.checkpoint_every == 0 or it >= t.iterations
                    # Queue the next chunk before reading this one's metrics, so the device never
                    # idles while Python logs. Not when this chunk's state is still needed (evaluation,
                    # checkpoint, stop): the next chunk takes it over (donated buffers).
                    pending = None
                    if not (evaluate_now or save_now or stop.signum is not None) and it < t.iterations:
                        pending = launch(carry, it)
                    # A chunk's function always scans log_every iterations and skips those past n.
                    metrics = reduce_chunk({k: v[:n] for k, v in jax.device_get(chunk_metrics).items()})
                    now = time.perf_counter()
                    self.chunk_seconds.append(now - chunk_start)
                    self.chunk_iterations.append(n)
                    if len(self.chunk_seconds) == 1:
                        self.seconds_to_first_chunk = now - started
                        release_freed_memory()  # what compiling the chunk (on resume) left behind
                    metrics["perf/steps_per_second"] = n * steps_per_it / (now - chunk_start) if steps_per_it else 0.0
                    chunk_start = now  # from here the next chunk's time runs (evaluating and saving excluded)
                    metrics["perf/iteration"] = it
                    if evaluate_now:
                        eval_start = time.perf_counter()
                        evaluation = eval_fn(carry, jax.random.fold_in(jax.random.key(cfg.seed + 1), it))
                        if evaluation is not None:
                            metrics.update({k: float(v) for k, v in jax.device_get(evaluation).items()})
                            best = algo.best_metric
                            if best in metrics and ckpt.save_if_best(it, carry, meta, metrics[best]):
                                metrics["eval/best"] = metrics[best]
                        # An evaluation is sequential episodes (seconds even on a GPU): report it on
                        # its own rather than as a slow next chunk; the progress bar's rate keeps it.
                        metrics["perf/eval_seconds"] = time.perf_counter() - eval_start
                        chunk_start += metrics["perf/eval_seconds"]
                    tb.scalars(metrics, self.global_step(algo, it))
                    bar.update(n * (steps_per_it or 1))
                    bar.write(self._summary_line(it, algo, metrics))
                    if len(self.chunk_seconds) == 2 and it < t.iterations:  # the first: one iteration, or compiling
                        left = (t.iterations - it) / n * self.chunk_seconds[-1]
                        evals = (t.iterations // t.eval_every - it // t.eval_every) if t.eval_every else 0
                        bar.write(f"expected time to finish: {left / 60:.1f} min at the current rate"
                                  + (f", plus {evals} evaluations" if evals else ""))
                    if pending is None:  # this chunk's state is the newest: save it if due, then go on
                        if save_now or stop.signum is not None:
                            save_start = time.perf_counter()
                            ckpt.save(it, carry, meta)
                            chunk_start += time.perf_counter() - save_start
                        if it < t.iterations and stop.signum is None:
                            pending = launch(carry, it)
                if stop.signum is not None:
                    exit_code = 128 + stop.signum
                    print(f"Stopped by {signal.Signals(stop.signum).name} at iteration {it}; checkpoint saved in "
                          f"{out_dir / 'checkpoints' / 'latest' / str(it)}. Resume with trainer.resume={out_dir}")
        finally:
            worker.shutdown(wait=True)  # a chunk still running (after an error) finishes first
            bar.close()
            tb.close()
            ckpt.close()
        self.final_metrics = metrics
        print(f"Checkpoints: {out_dir / 'checkpoints'}\nTensorBoard: tensorboard --logdir {out_dir / 'tensorboard'}")
        self.on_finish(carry, metrics)
        return exit_code

    def _make_chunk(self, algo: Algorithm):
        """``chunk(carry, n) -> (carry, metrics)``: ``n`` (1..log_every) iterations in one program.
        ``n`` is an argument, not a constant, so chunks of every length share one compilation; the
        scan runs log_every steps and the ones past ``n`` pass the carry through (``lax.cond``
        runs one branch, so they do no work) with zero metrics, which the runner drops."""
        length = self.cfg.trainer.log_every

        # jitted, so that asking for its metrics' shapes and the cond's branch share one trace
        iteration = jax.jit(algo.iteration)

        def chunk(carry, n):
            self.trace_count += 1  # runs only while tracing

            def step(c, i):
                metric_shapes = jax.eval_shape(iteration, c)[1]

                def skip(c):
                    return c, jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), metric_shapes)

                return jax.lax.cond(i < n, iteration, skip, c)

            return jax.lax.scan(step, carry, jnp.arange(length))

        return chunk

    def _resume_diff(self, ckpt: Checkpointer, step: Optional[int], manager: str, physics: str = "") -> list[str]:
        meta = ckpt.newest_meta(manager, step)
        if meta is None:
            return []  # restore_newest reports what is wrong with each checkpoint
        if meta.get("env") != self.cfg.env.name or meta.get("algo") != self.cfg.algo.name:
            raise CheckpointError(
                f"the checkpoint was written by env '{meta.get('env')}' with algo '{meta.get('algo')}', "
                f"but this run is env '{self.cfg.env.name}' with algo '{self.cfg.algo.name}'. "
                f"Resume with env={meta.get('env')} algo={meta.get('algo')}.")
        # Checkpoints from before the MuJoCo C backend have no "physics": they all stepped MJX.
        saved = meta.get("physics", "mjx" if physics else "")
        if physics and saved and saved != physics:
            raise CheckpointError(
                f"the checkpoint's env state was stepped by {PHYSICS_NAMES.get(saved, saved)}, but this run's "
                f"physics is {PHYSICS_NAMES.get(physics, physics)} (env.sim.backend=auto picks MuJoCo C on a CPU "
                f"and MJX on a GPU), and one cannot continue the other's state. Resume with "
                f"env.sim.backend={saved}, or evaluate or export the run's policy, which does not need it.")
        return config_differences(meta.get("config", {}), self.cfg)

    def _budget_line(self, algo: Algorithm, start: int, physics: str = "") -> str:
        t = self.cfg.trainer
        spi = algo.env_steps_per_iteration
        what = f"{t.iterations} iterations"
        if spi:
            what += f" x {spi:,} env steps = {t.iterations * spi:,} env steps ({t.num_envs} envs)"
        device = jax.devices()[0]
        where = (f"the CPU ({os.cpu_count()} cores)" if device.platform == "cpu"
                 else f"{jax.device_count()} x {device.device_kind}")
        line = (f"Training {self.cfg.algo.name} on {self.cfg.env.name}: {what}, from iteration {start}; "
                f"chunks of {t.log_every} iterations{' (the first: 1)' if start == 0 and t.log_every > 1 else ''}; "
                f"on {where}{f', {PHYSICS_NAMES.get(physics, physics)} physics' if physics else ''}; output in {self.run_dir}")
        if device.platform == "cpu" and spi and t.num_envs >= GPU_SIZED_ENVS:
            line += (f"\nNote: {t.num_envs} envs is a GPU-sized batch, but JAX sees only the CPU. For an NVIDIA "
                     "GPU, run with the CUDA build of JAX: uv run --extra cuda12 run.py ... (or --extra cuda13).")
        return line

    def _summary_line(self, it: int, algo: Algorithm, m: dict[str, float]) -> str:
        parts = [f"it {it}/{self.cfg.trainer.iterations}"]
        if algo.env_steps_per_iteration:
            parts.append(f"steps {self.global_step(algo, it):,}")
            parts.append(f"{m['perf/steps_per_second']:,.0f} sps")
        for label, key, fmt in SUMMARY:
            if key in m and math.isfinite(m[key]):
                parts.append(f"{label} {fmt.format(m[key])}")
        return " | ".join(parts)
