"""Flax MLPs for the policy and the value function."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from wildrobot.algos.ppo_config import ACTIVATION_NAMES

ACTIVATIONS = {"elu": nn.elu, "relu": nn.relu, "tanh": nn.tanh, "swish": nn.swish}
assert tuple(ACTIVATIONS) == ACTIVATION_NAMES, "the config's activation names and the functions disagree"


class MLP(nn.Module):
    hidden_sizes: Sequence[int]
    out_size: int
    activation: str = "elu"
    out_scale: float = 1.0  # small initial outputs keep the first policy near the home pose

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for h in self.hidden_sizes:
            x = act(nn.Dense(h, kernel_init=nn.initializers.orthogonal(jnp.sqrt(2.0)))(x))
        return nn.Dense(self.out_size, kernel_init=nn.initializers.orthogonal(self.out_scale))(x)
