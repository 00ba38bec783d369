"""The environment interface every trainer talks to.

Pure and jit/vmap-able, in the shape of Brax's ``Env`` and MuJoCo Playground's ``MjxEnv``:
``reset(key) -> State`` and ``step(state, action) -> State`` on ONE environment; batching,
episode limits and auto-reset are added by ``wildrobot.envs.wrappers``.
"""

from __future__ import annotations

import abc
from typing import Any

import flax.struct
import jax

Observation = dict[str, jax.Array]  # {"actor": deployable obs, "critic": privileged obs}


@flax.struct.dataclass
class State:
    """One environment's state; every field is a pytree of arrays.

    data:    physics state (``mjx.Data`` for MJX envs, a small pytree for the stub).
    obs:     {"actor": ..., "critic": ...}; the actor part is what the real robot senses.
    reward:  scalar reward of the last step (already zeroed on a non-finite step).
    done:    1.0 when the episode ended at this step (termination OR truncation).
    metrics: scalars to log, e.g. every reward term as "reward/<name>".
    info:    env bookkeeping; wrappers add "truncation" (1.0 = time limit, bootstrap the value),
             "steps" and "episode_metrics"; envs keep their own rng, command, etc. here.
    """

    data: Any
    obs: Observation
    reward: jax.Array
    done: jax.Array
    metrics: dict[str, jax.Array]
    info: dict[str, Any]


class Env(abc.ABC):
    """A single (unbatched) environment."""

    @abc.abstractmethod
    def reset(self, key: jax.Array) -> State:
        """A fresh episode. Must be cheap: the auto-reset wrapper calls it every step."""

    @abc.abstractmethod
    def step(self, state: State, action: jax.Array) -> State:
        """Advance one control step. ``action`` lies in [-1, 1]^action_size."""

    @property
    @abc.abstractmethod
    def observation_size(self) -> dict[str, int]:
        """Sizes of the flat observation vectors, {"actor": n, "critic": m}."""

    @property
    @abc.abstractmethod
    def action_size(self) -> int: ...

    @property
    @abc.abstractmethod
    def dt(self) -> float:
        """Control period in seconds."""

    @property
    def episode_length(self) -> int:
        """Control steps before truncation (used by the episode wrapper)."""
        return 1000
