"""Chunks: ``log_every`` training iterations in one jitted program, their schedule, a worker
thread that runs them one at a time (and times each), and the reduction of a chunk's
per-iteration metrics to one value each."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from wildrobot.algos.base import Algorithm

# The chunk program's second argument: how many of its log_every iterations to run.
CHUNK_LENGTH = jax.ShapeDtypeStruct((), np.int32)


def make_chunk(algo: Algorithm, length: int, on_trace: Optional[Callable[[], None]] = None):
    """``chunk(carry, n) -> (carry, metrics)``: ``n`` (0..length) iterations in one program.
    ``n`` is an argument, not a constant, so chunks of every length share one compilation; the
    scan runs ``length`` steps and the ones past ``n`` pass the carry through (``lax.cond`` runs one
    branch, so they do no work) with zero metrics, which ``ChunkRunner`` drops. ``on_trace`` is
    called each time the chunk is traced (once per run when nothing recompiles)."""
    # jitted, so that asking for its metrics' shapes and the cond's branch share one trace
    iteration = jax.jit(algo.iteration)

    def chunk(carry, n):
        if on_trace is not None:
            on_trace()

        def step(c, i):
            metric_shapes = jax.eval_shape(iteration, c)[1]

            def skip(c):
                return c, jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), metric_shapes)

            return jax.lax.cond(i < n, iteration, skip, c)

        return jax.lax.scan(step, carry, jnp.arange(length))

    return chunk


def chunk_length(it: int, log_every: int, iterations: int) -> int:
    """Iterations in the chunk that starts at ``it``: a new run's first is one (progress shows as
    soon as the program is compiled), every other runs up to the next multiple of log_every (the
    cadence of logs, checkpoints and evaluations), the last up to the budget."""
    return 1 if it == 0 else min(log_every - it % log_every, iterations - it)


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


@dataclass
class FinishedChunk:
    carry: Any  # the state after the chunk (on the device)
    metrics: dict[str, float]  # reduced over its iterations
    start: int  # the iteration it started from
    iterations: int
    seconds: float  # from the start of its call to its metrics in hand

    @property
    def end(self) -> int:
        return self.start + self.iterations


class ChunkRunner:
    """Runs chunks on a worker thread, one at a time, so that Python logs one chunk while the next
    runs: JAX returns from a call at once and runs the program in the background, except a
    program that calls back into Python (MuJoCo C physics), which runs to its end inside the call
    on a CPU. Each chunk is timed in the worker, from the start of its call until its metrics
    are on the host, so evaluations, checkpoints and logging never count as training time."""

    def __init__(self, chunk_fn: Callable, clock: Callable[[], float] = time.perf_counter):
        self._chunk_fn = chunk_fn
        self._clock = clock
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk")
        self._pending: Optional[Future] = None

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def launch(self, carry: Any, start: int, iterations: int) -> None:
        """Queue the chunk of ``iterations`` from iteration ``start``; its carry is donated to it."""
        assert self._pending is None, "one chunk at a time: wait() for the previous one first"
        self._pending = self._worker.submit(self._run, carry, start, iterations)

    def _run(self, carry: Any, start: int, n: int) -> FinishedChunk:
        began = self._clock()
        carry, metrics = self._chunk_fn(carry, np.int32(n))
        # the chunk's function always scans log_every iterations and skips those past n
        metrics = reduce_chunk({k: v[:n] for k, v in jax.device_get(metrics).items()})
        return FinishedChunk(carry, metrics, start, n, self._clock() - began)

    def wait(self) -> FinishedChunk:
        """The chunk queued last, once it has finished."""
        assert self._pending is not None, "no chunk is running"
        pending, self._pending = self._pending, None
        return pending.result()

    def close(self) -> None:
        """Let a chunk still running (after an error) finish first."""
        self._worker.shutdown(wait=True)
