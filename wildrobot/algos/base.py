"""What the runner needs from an algorithm: pure functions over one pytree (the carry).

The carry holds everything a run needs to continue (parameters, optimiser state, normaliser,
environment state, RNG key): it is exactly what a checkpoint saves.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

import jax

Metrics = dict[str, jax.Array]


class Algorithm(Protocol):
    env_steps_per_iteration: int  # 0 for algorithms that do not step an env
    best_metric: Optional[str]  # an evaluate() metric to keep the best checkpoint by (higher is better)
    # (label, metric key, format) of what the progress line shows after each chunk, in order
    headline_metrics: tuple[tuple[str, str, str], ...]

    def init(self, key: jax.Array) -> Any: ...

    def iteration(self, carry: Any) -> tuple[Any, Metrics]:
        """One training iteration; traced once and scanned over a chunk by the runner."""

    def evaluate(self, carry: Any, key: jax.Array) -> Optional[Metrics]:
        """Deterministic evaluation, or None when the algorithm has none."""
