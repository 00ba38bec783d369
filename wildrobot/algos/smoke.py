"""One SGD step on dummy parameters: the smallest end-to-end check that JAX and Optax work."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from wildrobot.algos.smoke_config import SmokeConfig


class SmokeAlgorithm:
    env_steps_per_iteration = 0
    best_metric = None
    headline_metrics = (("w_mean", "param_w_mean", "{:.3g}"),)

    def __init__(self, cfg: SmokeConfig):
        self.cfg = cfg
        self.optimizer = optax.sgd(cfg.learning_rate)

    def init(self, key: jax.Array) -> dict:
        params = {"w": jnp.zeros((10, 10)), "b": jnp.zeros(10)}
        return {"params": params, "opt_state": self.optimizer.init(params), "key": key}

    def iteration(self, carry: dict) -> tuple[dict, dict]:
        params = carry["params"]
        grads = jax.tree.map(lambda p: jnp.full_like(p, self.cfg.gradient), params)
        updates, opt_state = self.optimizer.update(grads, carry["opt_state"], params)
        params = optax.apply_updates(params, updates)
        key, _ = jax.random.split(carry["key"])
        metrics = {"param_w_mean": jnp.mean(params["w"]), "param_b_mean": jnp.mean(params["b"])}
        return {"params": params, "opt_state": opt_state, "key": key}, metrics

    def evaluate(self, carry: dict, key: jax.Array) -> None:
        return None
