"""The trainers: each only says which algorithm runs; the loop lives in ``runner.Trainer``."""

from __future__ import annotations

from typing import Any

from wildrobot.algos.ppo import PPO
from wildrobot.algos.smoke import SmokeAlgorithm
from wildrobot.envs.core import Env
from wildrobot.envs.factory import evaluation_config, make_env
from wildrobot.envs.wrappers import wrap_for_training
from wildrobot.train.runner import Trainer


class SmokeTrainer(Trainer):
    def make_algorithm(self, env: Env) -> SmokeAlgorithm:
        return SmokeAlgorithm(self.cfg.algo)

    def on_finish(self, carry: Any, metrics: dict[str, float]) -> None:
        print(f"Updated param w mean: {float(carry['params']['w'].mean()):.6g}")


class PPOTrainer(Trainer):
    def make_algorithm(self, env: Env) -> PPO:
        t = self.cfg.trainer
        eval_env = make_env(evaluation_config(self.cfg.env)) if t.eval_every else None
        return PPO(self.cfg.algo, wrap_for_training(env), t.num_envs, t.iterations, eval_env=eval_env)


class NotBuiltTrainer(Trainer):
    """An algorithm whose config exists but whose trainer does not yet: say so, train nothing."""

    def run(self) -> int:
        print(f"algo={self.cfg.algo.name} is configured but its trainer is not built yet; nothing was trained. "
              f"Available now: algo=ppo, algo=jax_smoke.")
        return 3
