"""Timing helpers shared by the benchmarks (run as ``python bench/<name>.py``, so importable as ``common``)."""

from __future__ import annotations

import statistics
import time

import jax



def timed_rounds(calls: dict[str, tuple], repeats: int) -> dict[str, list[float]]:
    """{name: seconds of each of ``repeats`` timed calls} for {name: (fn, *args)}.

    Each function is compiled and warmed up first (a second call: the outputs' exact types can
    differ from the inputs', which can trigger one more trace); then the timed calls alternate
    between the functions, round by round, so that a slow spell of a shared machine hits every
    side alike.
    """
    for fn, *args in calls.values():
        jax.block_until_ready(fn(*args))
        jax.block_until_ready(fn(*args))
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, (fn, *args) in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - start)
    return times


def best_times(calls: dict[str, tuple], repeats: int) -> dict[str, float]:
    """{name: fastest of ``repeats`` timed calls}, alternating as ``timed_rounds``."""
    return {name: min(t) for name, t in timed_rounds(calls, repeats).items()}


def paired_ratio(times: dict[str, list[float]], slow: str, fast: str) -> float:
    """Median over rounds of time[fast] / time[slow]: each round's two calls ran back to back, so
    a machine whose speed drifts by ±20 % between minutes still gives a steady ratio."""
    return float(statistics.median(f / s for s, f in zip(times[slow], times[fast])))


def trainer_rate(trainer, samples_per_iteration: int) -> float:
    """Env steps per second over every chunk after the first (one iteration, right after compiling)."""
    return sum(trainer.chunk_iterations[1:]) * samples_per_iteration / sum(trainer.chunk_seconds[1:])


def random_actions(key: jax.Array, n: int, action_size: int) -> jax.Array:
    """n uniform actions in [-1, 1]: what the benchmarks step envs with."""
    return jax.random.uniform(key, (n, action_size), minval=-1.0, maxval=1.0)


def random_action_rollout(batched_env, length: int):
    """``(env_state, key) -> env_state``: ``length`` steps of a batched env (auto-reset included)
    with ``random_actions`` drawn from ``jax.random.split(key, length)``; jit it to time it."""
    def rollout(state, key):
        def step(s, k):
            return batched_env.step(s, random_actions(k, s.reward.shape[0], batched_env.action_size)), None

        return jax.lax.scan(step, state, jax.random.split(key, length))[0]

    return rollout


def bare_physics_rollout(step):
    """A jitted ``(data, ctrl[T, n, nu]) -> data``: T control steps of ``step(data, ctrl) -> data``
    (one env's physics, e.g. ``physics.step`` with the shared model) vmapped over a batch of n,
    batched as the env's physics is (MJX: chunks on CPU), and nothing else."""
    control_step = jax.vmap(step)

    @jax.jit
    def rollout(data, ctrl):
        return jax.lax.scan(lambda d, c: (control_step(d, c), None), data, ctrl)[0]

    return rollout
