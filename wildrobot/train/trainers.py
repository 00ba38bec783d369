"""The trainers: each only says which algorithm runs; the loop lives in ``runner.Trainer``."""

from __future__ import annotations

import dataclasses
from typing import Any

from wildrobot.algos.ppo import PPO
from wildrobot.algos.smoke import SmokeAlgorithm
from wildrobot.envs.core import Env
from wildrobot.envs.factory import make_env
from wildrobot.envs.wrappers import wrap_for_training
from wildrobot.train.runner import Trainer


class SmokeTrainer(Trainer):
    def make_algorithm(self, env: Env) -> SmokeAlgorithm:
        return SmokeAlgorithm(self.cfg.algo)

    def on_finish(self, carry: Any, metrics: dict[str, float]) -> None:
        print(f"Updated param w mean: {float(carry['params']['w'].mean()):.6g}")


def evaluation_env_config(env_cfg: Any) -> Any:
    """The env config for evaluation: randomisation, pushes and sensor noise switched off."""
    changes = {}
    for group in ("randomization", "push", "noise"):
        sub = getattr(env_cfg, group, None)
        if sub is not None and dataclasses.is_dataclass(sub) and hasattr(sub, "enabled"):
            changes[group] = dataclasses.replace(sub, enabled=False)
    return dataclasses.replace(env_cfg, **changes) if changes else env_cfg


class PPOTrainer(Trainer):
    def make_algorithm(self, env: Env) -> PPO:
        t = self.cfg.trainer
        eval_env = wrap_for_training(make_env(evaluation_env_config(self.cfg.env))) if t.eval_every else None
        return PPO(self.cfg.algo, wrap_for_training(env), t.num_envs, t.iterations, eval_env=eval_env)


class NotBuiltTrainer(Trainer):
    """An algorithm whose config exists but whose trainer does not yet: say so, train nothing."""

    def run(self) -> int:
        print(f"algo={self.cfg.algo.name} is configured but its trainer is not built yet; nothing was trained. "
              f"Available now: algo=ppo, algo=jax_smoke.")
        return 3
