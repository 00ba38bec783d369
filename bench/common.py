"""Timing helpers shared by the benchmarks (run as ``python bench/<name>.py``, so importable as ``common``)."""

from __future__ import annotations

import time

import jax
from mujoco import mjx

from wildrobot.envs.wrappers import batch_map


def best_times(calls: dict[str, tuple], repeats: int) -> dict[str, float]:
    """{name: fastest of ``repeats`` timed calls} for {name: (fn, *args)}.

    Each function is compiled and warmed up first (a second call: the outputs' exact types can
    differ from the inputs', which can trigger one more trace); then the timed calls alternate
    between the functions, round by round, so that a slow spell of a shared machine hits every
    side alike and the ratios stay fair.
    """
    for fn, *args in calls.values():
        jax.block_until_ready(fn(*args))
        jax.block_until_ready(fn(*args))
    best = {name: float("inf") for name in calls}
    for _ in range(repeats):
        for name, (fn, *args) in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def bare_physics_rollout(model: mjx.Model, substeps: int, chunk: int | None):
    """A jitted ``(data, ctrl[T, n, nu]) -> data``: T control steps of ``substeps`` bare ``mjx.step``
    calls for a batch of n, batched as the env is (``batch_map``), and nothing else."""

    def control_step(d, c):
        d = d.replace(ctrl=c)
        return jax.lax.fori_loop(0, substeps, lambda _, x: mjx.step(model, x), d)

    @jax.jit
    def rollout(data, ctrl):
        return jax.lax.scan(lambda d, c: (batch_map(control_step, d, c, chunk=chunk), None), data, ctrl)[0]

    return rollout
