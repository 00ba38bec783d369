"""Generalised advantage estimation (Schulman et al. 2016) with exact bootstrapping on truncation."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def compute_gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminations: jax.Array,
    dones: jax.Array,
    discount: float,
    gae_lambda: float,
) -> tuple[jax.Array, jax.Array]:
    """All inputs are [T, ...]. ``next_values[t]`` is V(s_{t+1}) of the state step t reached
    (before any auto-reset). ``terminations`` cut the bootstrap (falls); ``dones`` (falls and
    time limits) cut the advantage recursion. Returns (advantages, value targets)."""
    deltas = rewards + discount * (1.0 - terminations) * next_values - values

    def backward(carry, xs):
        delta, done = xs
        adv = delta + discount * gae_lambda * (1.0 - done) * carry
        return adv, adv

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(values[0]), (deltas, dones), reverse=True)
    return advantages, advantages + values
