"""Typed configuration of ``algo=ppo`` (``wildrobot.algos.ppo``) and its checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from wildrobot.errors import require

# The networks' activation functions by name (``wildrobot.algos.networks.ACTIVATIONS`` maps them).
ACTIVATION_NAMES = ("elu", "relu", "tanh", "swish")
LR_SCHEDULES = ("constant", "linear", "adaptive_kl")


@dataclass
class NetworkConfig:
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 128, 64])
    activation: str = "elu"


@dataclass
class PPOConfig:
    name: str = "ppo"
    unroll_length: int = 20
    num_epochs: int = 4
    num_minibatches: int = 4
    discount: float = 0.97
    gae_lambda: float = 0.95
    clip_epsilon: float = 0.2
    clip_value_loss: bool = True
    value_loss_coef: float = 1.0
    entropy_coef: float = 0.005
    symmetry_coef: float = 0.0  # mirror loss |pi(mirror(s)) - mirror(pi(s))|^2; needs an env with a mirror
    learning_rate: float = 3e-4
    lr_schedule: str = "constant"  # constant | linear | adaptive_kl
    desired_kl: float = 0.01  # target of the adaptive_kl schedule
    max_grad_norm: float = 1.0
    normalize_observations: bool = True
    normalize_advantages: bool = True
    reward_scale: float = 1.0
    init_log_std: float = -0.7
    privileged_critic: bool = True  # the critic reads the env's "critic" observation
    policy: NetworkConfig = field(default_factory=NetworkConfig)
    value: NetworkConfig = field(default_factory=NetworkConfig)
    num_eval_envs: int = 32
    eval_steps: int = 0  # 0 = one full episode (the env's episode_length)

    def validate(self, num_envs: int) -> None:
        """What types cannot express; ``num_envs`` (trainer.num_envs) sizes the batch."""
        for key in ("unroll_length", "num_epochs", "num_minibatches", "num_eval_envs"):
            require(getattr(self, key) >= 1, f"algo.{key}", getattr(self, key), "an integer >= 1")
        batch = num_envs * self.unroll_length
        require(
            batch % self.num_minibatches == 0,
            "algo.num_minibatches", self.num_minibatches,
            f"a divisor of the batch trainer.num_envs * algo.unroll_length = "
            f"{num_envs} * {self.unroll_length} = {batch}",
        )
        require(0 < self.discount <= 1, "algo.discount", self.discount, "a number in (0, 1]")
        require(0 <= self.gae_lambda <= 1, "algo.gae_lambda", self.gae_lambda, "a number in [0, 1]")
        require(self.clip_epsilon > 0, "algo.clip_epsilon", self.clip_epsilon, "a number > 0")
        require(self.entropy_coef >= 0, "algo.entropy_coef", self.entropy_coef, "a number >= 0")
        require(self.symmetry_coef >= 0, "algo.symmetry_coef", self.symmetry_coef, "a number >= 0")
        require(self.value_loss_coef > 0, "algo.value_loss_coef", self.value_loss_coef, "a number > 0")
        require(self.max_grad_norm > 0, "algo.max_grad_norm", self.max_grad_norm, "a number > 0")
        require(self.reward_scale > 0, "algo.reward_scale", self.reward_scale, "a number > 0")
        require(self.eval_steps >= 0, "algo.eval_steps", self.eval_steps, "an integer >= 0")
        require(self.lr_schedule in LR_SCHEDULES, "algo.lr_schedule", self.lr_schedule, ", ".join(LR_SCHEDULES))
        require(self.desired_kl > 0, "algo.desired_kl", self.desired_kl, "a number > 0")
        for net in ("policy", "value"):
            n: NetworkConfig = getattr(self, net)
            require(
                len(n.hidden_sizes) >= 1 and all(h >= 1 for h in n.hidden_sizes),
                f"algo.{net}.hidden_sizes", list(n.hidden_sizes), "a non-empty list of integers >= 1",
            )
            require(n.activation in ACTIVATION_NAMES, f"algo.{net}.activation", n.activation,
                    ", ".join(ACTIVATION_NAMES))
