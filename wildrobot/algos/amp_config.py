"""Typed configuration of ``algo=ppo_amp`` (``wildrobot.algos.amp``): PPO's settings plus the
discriminator's, the reward blend and reference state initialisation, with their checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from wildrobot.algos.ppo_config import ACTIVATION_NAMES, PPOConfig
from wildrobot.errors import require


@dataclass
class DiscriminatorConfig:
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 128])
    activation: str = "relu"
    learning_rate: float = 1e-4
    gradient_penalty: float = 10.0  # w: adds w/2 * E_ref |grad_x D|^2 to half the least squares (paper's w: 2x)
    logit_regularization: float = 0.01  # times the squared weights of the output layer
    weight_decay: float = 1e-4  # decoupled (AdamW), every weight
    replay_size: int = 100_000  # past policy transitions kept for the discriminator's negatives
    batch_size: int = 1024  # reference and policy transitions (each) per discriminator update
    updates_per_minibatch: int = 1  # discriminator updates after each PPO minibatch


@dataclass
class PPOAMPConfig(PPOConfig):
    name: str = "ppo_amp"
    task_reward_weight: float = 1.0  # r = task_weight * r_task + style_weight * r_style
    style_reward_weight: float = 1.0
    # the style weight rises linearly from 0 to style_reward_weight over these first env steps (0: from
    # the start), so the policy first learns the task; the discriminator trains from the start. Counted in
    # env steps, so the ramp lasts as long on 512 envs as on 8192
    style_ramp_env_steps: float = 0.0
    # the style weight of a transition falls off with its command's distance from the nearest command of
    # the reference clips: times exp(-1/2 sum(((c - c_clip) / width)^2)), one width per command component
    # (WildRobot: vx, vy in m/s, yaw rate in rad/s); [] = the same weight at every command. Where the clips
    # show no gait for a command (turning faster than any clip), the task reward leads
    style_command_widths: list[float] = field(default_factory=list)
    style_reward_scale: float = 2.0  # r_style = scale * dt * max(0, 1 - (d - 1)^2 / 4): per second, as the env's terms
    motion_dataset: str = ""  # a clip, a folder of clips or a manifest; "" = the gait library that ships
    reference_start_share: float = 0.3  # share of episodes that start at a random reference frame
    # subtract the rollout's mean style reward: the style term then ranks transitions without also
    # paying for every step survived (with a saturated discriminator it is otherwise a survival bonus)
    center_style_reward: bool = False
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def validate(self, num_envs: int) -> None:
        super().validate(num_envs)
        for key in ("task_reward_weight", "style_reward_weight"):
            require(getattr(self, key) >= 0, f"algo.{key}", getattr(self, key), "a number >= 0")
        require(self.style_reward_weight > 0, "algo.style_reward_weight", self.style_reward_weight,
                "a number > 0 (with 0 the discriminator shapes nothing: train algo=ppo instead)")
        require(self.style_ramp_env_steps >= 0, "algo.style_ramp_env_steps", self.style_ramp_env_steps,
                "a number of env steps >= 0")
        require(all(w > 0 for w in self.style_command_widths), "algo.style_command_widths",
                list(self.style_command_widths), "[] or a list of widths > 0, one per command component")
        require(self.style_reward_scale > 0, "algo.style_reward_scale", self.style_reward_scale, "a number > 0")
        require(0 <= self.reference_start_share <= 1, "algo.reference_start_share", self.reference_start_share,
                "a share in [0, 1]")
        d = self.discriminator
        require(len(d.hidden_sizes) >= 1 and all(h >= 1 for h in d.hidden_sizes),
                "algo.discriminator.hidden_sizes", list(d.hidden_sizes), "a non-empty list of integers >= 1")
        require(d.activation in ACTIVATION_NAMES, "algo.discriminator.activation", d.activation,
                ", ".join(ACTIVATION_NAMES))
        require(d.learning_rate > 0, "algo.discriminator.learning_rate", d.learning_rate, "a number > 0")
        for key in ("gradient_penalty", "logit_regularization", "weight_decay"):
            require(getattr(d, key) >= 0, f"algo.discriminator.{key}", getattr(d, key), "a number >= 0")
        require(d.batch_size >= 1, "algo.discriminator.batch_size", d.batch_size, "an integer >= 1")
        require(d.replay_size >= d.batch_size, "algo.discriminator.replay_size", d.replay_size,
                f"an integer >= algo.discriminator.batch_size ({d.batch_size})")
        require(d.updates_per_minibatch >= 1, "algo.discriminator.updates_per_minibatch", d.updates_per_minibatch,
                "an integer >= 1")
