"""Typed configuration of ``algo=jax_smoke`` (``wildrobot.algos.smoke``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SmokeConfig:
    """One SGD step on dummy parameters: checks that JAX and Optax work."""

    name: str = "jax_smoke"
    learning_rate: float = 1e-3
    gradient: float = 0.01  # every gradient entry; the expected update is -lr * gradient

    def validate(self, num_envs: int) -> None:
        """Nothing beyond the learning rate, which ``wildrobot.config`` checks for every algorithm."""
