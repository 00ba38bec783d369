"""Typed configuration of ``algo=ppo_amp``: PPO's settings plus the discriminator's (its trainer is
not built yet; the config composes and validates)."""

from __future__ import annotations

from dataclasses import dataclass, field

from wildrobot.algos.ppo_config import PPOConfig


@dataclass
class DiscriminatorConfig:
    hidden_sizes: list[int] = field(default_factory=lambda: [512, 256])
    learning_rate: float = 1e-4
    gradient_penalty: float = 10.0
    replay_size: int = 200_000


@dataclass
class PPOAMPConfig(PPOConfig):
    name: str = "ppo_amp"
    task_reward_weight: float = 0.5
    style_reward_weight: float = 0.5
    motion_dataset: str = ""
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
