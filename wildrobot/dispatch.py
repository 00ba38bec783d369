"""Which trainer runs a config: a small explicit registry."""

from __future__ import annotations

from wildrobot.config import Config
from wildrobot.train.runner import Trainer
from wildrobot.train.trainers import AMPTrainer, PPOTrainer, SmokeTrainer
from wildrobot.train.verify import VerifyTrainer

TRAINERS: dict[str, type[Trainer]] = {
    "jax_smoke": SmokeTrainer,
    "ppo": PPOTrainer,
    "ppo_amp": AMPTrainer,
}


def trainer_class(cfg: Config) -> type[Trainer]:
    if cfg.trainer.mode == "verify":
        return VerifyTrainer
    return TRAINERS[cfg.algo.name]
