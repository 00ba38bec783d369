"""Deterministic evaluation episodes: the one rollout behind training-time evaluation
(``PPO.evaluate``) and ``wildrobot.eval``. Pure JAX, jit- and vmap-able."""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from wildrobot.envs.core import Env, State


def run_episodes(env: Env, policy: Callable[[jax.Array], jax.Array], keys: jax.Array, steps: int,
                 commands: Optional[jax.Array] = None, summed: tuple[str, ...] = (),
                 record: Optional[Callable[[State], Any]] = None) -> tuple[dict[str, jax.Array], Any]:
    """One episode per key, all in one batch of the (unbatched) ``env`` under ``vmap``: reset, fix
    each episode's command when ``commands`` is given (``env.set_command``: no resampling), then
    ``steps`` control steps of ``policy`` (a batch of actor observations -> actions).

    There is no auto-reset and no time limit: an episode stops counting at its first ``done``
    (the env's own, i.e. a fall or a blow-up). Returns per-episode totals, each of shape (episodes,)
    or (episodes, action size): "return", "length", "fall", the sum of every env metric whose name
    starts with one of ``summed``, and "at_limit" (steps on which each action component was at
    its limit, |a| >= 1); and, with ``record`` (a function of a batched state), ``(record(reset
    state), (record(state), alive before the step) per step)`` for replaying the episodes.
    """
    state = jax.vmap(env.reset)(keys)
    if commands is not None:
        state = jax.vmap(env.set_command)(state, commands)
    keep = [k for k in state.metrics if k.startswith(summed)]
    zeros = jnp.zeros(keys.shape[0])
    totals = {"return": zeros, "length": zeros, "fall": zeros, **{k: zeros for k in keep},
              "at_limit": jnp.zeros((keys.shape[0], env.action_size))}

    def one_step(carry, _):
        state, alive, totals = carry
        action = policy(state.obs["actor"])
        nxt = jax.vmap(env.step_in_episode)(state, action)  # episodes end at the first done: no auto-reset
        totals = {
            "return": totals["return"] + alive * nxt.reward,
            "length": totals["length"] + alive,
            "fall": totals["fall"] + alive * nxt.done,  # the env's own done is a termination
            **{k: totals[k] + alive * nxt.metrics[k] for k in keep},
            "at_limit": totals["at_limit"] + alive[:, None] * (jnp.abs(action) >= 1.0),
        }
        frame = (record(nxt), alive) if record is not None else None
        return (nxt, alive * (1.0 - nxt.done), totals), frame

    first = record(state) if record is not None else None
    (_, _, totals), frames = jax.lax.scan(one_step, (state, jnp.ones_like(zeros), totals), None, length=steps)
    return totals, (first, frames) if record is not None else None
