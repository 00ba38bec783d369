"""Typed configuration: one dataclass schema per config-group option, registered in Hydra's
ConfigStore, plus the checks that stop a bad run before anything is compiled.

The YAML files under ``conf/`` start from these schemas (``defaults: [base_<name>, _self_]``),
so Hydra type-checks every value; ``validate`` adds what types cannot express (unknown keys,
impossible values, inconsistent sizes).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from wildrobot.envs.wildrobot_config import SIM_BACKENDS, WildRobotEnvConfig


class ConfigError(ValueError):
    """A configuration value that cannot work; the message says which key and what is allowed."""


# ----------------------------------------------------------------------------------------------
# env group
@dataclass
class StubEnvConfig:
    """A pure-JAX point mass that must track a commanded velocity (no physics, compiles fast)."""

    name: str = "stub"
    episode_length: int = 100
    dt: float = 0.05
    max_speed: float = 2.0  # the episode terminates (a "fall") above this speed
    command_range: float = 1.0  # commands are drawn from U(-range, range) per axis
    tracking_sigma: float = 0.25


# ----------------------------------------------------------------------------------------------
# algo group
@dataclass
class SmokeConfig:
    """One SGD step on dummy parameters: checks that JAX and Optax work."""

    name: str = "jax_smoke"
    learning_rate: float = 1e-3
    gradient: float = 0.01  # every gradient entry; the expected update is -lr * gradient


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


# ----------------------------------------------------------------------------------------------
# trainer group
@dataclass
class TrainerConfig:
    mode: str = "train"  # train | verify (quick-verify the env, no training)
    num_envs: int = 1024
    iterations: int = 1000
    log_every: int = 10  # iterations per jitted chunk: Python wakes up only between chunks
    checkpoint_every: int = 100  # iterations; a checkpoint is also written at the end
    eval_every: int = 100  # iterations; 0 = never
    keep_checkpoints: int = 3
    resume: Optional[str] = None  # run dir | checkpoint dir | latest
    progress: bool = True


@dataclass
class Config:
    env: Any = MISSING
    algo: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0


ENV_SCHEMAS: dict[str, type] = {"stub": StubEnvConfig, "wildrobot": WildRobotEnvConfig}
ALGO_SCHEMAS: dict[str, type] = {"jax_smoke": SmokeConfig, "ppo": PPOConfig, "ppo_amp": PPOAMPConfig}


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for name, schema in ENV_SCHEMAS.items():
        cs.store(group="env", name=f"base_{name}", node=schema)
    for name, schema in ALGO_SCHEMAS.items():
        cs.store(group="algo", name=f"base_{name}", node=schema)
    cs.store(group="trainer", name="base_trainer", node=TrainerConfig)


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The DictConfig ``run.py`` would see for these overrides (for tests, benchmarks and tools)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides or []))


def load_config(overrides: list[str] | None = None) -> "Config":
    return to_typed(compose_config(overrides))


# ----------------------------------------------------------------------------------------------
# from Hydra's DictConfig to typed objects
def to_typed(cfg: DictConfig) -> Config:
    """Reject unknown keys, convert once to dataclasses, and check values."""
    reject_unknown_keys(cfg, Config, "")
    typed = OmegaConf.to_object(cfg)
    assert isinstance(typed, Config)
    validate(typed)
    return typed


def _schema_of(node: Any, declared: Any) -> Optional[type]:
    if isinstance(node, DictConfig):
        t = OmegaConf.get_type(node)
        if t is not None and dataclasses.is_dataclass(t):
            return t
    if isinstance(declared, type) and dataclasses.is_dataclass(declared):
        return declared
    return None


def reject_unknown_keys(node: Any, schema: Optional[type], path: str) -> None:
    """Hydra lets ``+trainer.foo=1`` through a typed schema; we do not."""
    schema = _schema_of(node, schema)
    if schema is None or not isinstance(node, DictConfig):
        return
    hints = typing.get_type_hints(schema)
    allowed = [f.name for f in dataclasses.fields(schema)]
    for key in node.keys():
        full = f"{path}{key}"
        if key not in allowed:
            raise ConfigError(
                f"unknown config key '{full}'. Allowed keys under '{path.rstrip('.') or '<root>'}' "
                f"are: {', '.join(allowed)}. Check the spelling, or remove the '+' override."
            )
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            reject_unknown_keys(child, hints.get(key), f"{full}.")
        elif isinstance(child, ListConfig):
            pass


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"invalid value for '{key}': {value!r}. Allowed: {allowed}.")


def validate(cfg: Config) -> None:
    t = cfg.trainer
    _require(t.mode in ("train", "verify"), "trainer.mode", t.mode, "'train' or 'verify'")
    _require(t.num_envs >= 1, "trainer.num_envs", t.num_envs, "an integer >= 1")
    _require(t.iterations >= 1, "trainer.iterations", t.iterations, "an integer >= 1")
    _require(t.log_every >= 1, "trainer.log_every", t.log_every, "an integer >= 1")
    _require(t.keep_checkpoints >= 1, "trainer.keep_checkpoints", t.keep_checkpoints, "an integer >= 1")
    for key in ("checkpoint_every", "eval_every"):
        every = getattr(t, key)
        _require(
            every >= 0 and every % t.log_every == 0,
            f"trainer.{key}", every,
            f"0 or a positive multiple of trainer.log_every={t.log_every}",
        )
    _require(cfg.seed >= 0, "seed", cfg.seed, "an integer >= 0")

    env = cfg.env
    _require(env.name in ENV_SCHEMAS, "env.name", env.name, ", ".join(ENV_SCHEMAS))
    if isinstance(env, StubEnvConfig):
        _require(env.episode_length >= 1, "env.episode_length", env.episode_length, "an integer >= 1")
        _require(env.dt > 0, "env.dt", env.dt, "a number > 0")
    if isinstance(env, WildRobotEnvConfig):
        _require(env.sim.backend in SIM_BACKENDS, "env.sim.backend", env.sim.backend,
                 "auto (MuJoCo C on a CPU, MJX on a GPU), mjx or mujoco")
        _require(env.sim.substeps >= 1, "env.sim.substeps", env.sim.substeps, "an integer >= 1")

    algo = cfg.algo
    _require(algo.name in ALGO_SCHEMAS, "algo.name", algo.name, ", ".join(ALGO_SCHEMAS))
    _require(algo.learning_rate > 0, "algo.learning_rate", algo.learning_rate, "a number > 0")
    if isinstance(algo, PPOConfig):
        _validate_ppo(algo, t)


def _validate_ppo(a: PPOConfig, t: TrainerConfig) -> None:
    for key in ("unroll_length", "num_epochs", "num_minibatches", "num_eval_envs"):
        _require(getattr(a, key) >= 1, f"algo.{key}", getattr(a, key), "an integer >= 1")
    batch = t.num_envs * a.unroll_length
    _require(
        batch % a.num_minibatches == 0,
        "algo.num_minibatches", a.num_minibatches,
        f"a divisor of the batch trainer.num_envs * algo.unroll_length = "
        f"{t.num_envs} * {a.unroll_length} = {batch}",
    )
    _require(0 < a.discount <= 1, "algo.discount", a.discount, "a number in (0, 1]")
    _require(0 <= a.gae_lambda <= 1, "algo.gae_lambda", a.gae_lambda, "a number in [0, 1]")
    _require(a.clip_epsilon > 0, "algo.clip_epsilon", a.clip_epsilon, "a number > 0")
    _require(a.entropy_coef >= 0, "algo.entropy_coef", a.entropy_coef, "a number >= 0")
    _require(a.symmetry_coef >= 0, "algo.symmetry_coef", a.symmetry_coef, "a number >= 0")
    _require(a.value_loss_coef > 0, "algo.value_loss_coef", a.value_loss_coef, "a number > 0")
    _require(a.max_grad_norm > 0, "algo.max_grad_norm", a.max_grad_norm, "a number > 0")
    _require(a.reward_scale > 0, "algo.reward_scale", a.reward_scale, "a number > 0")
    _require(a.eval_steps >= 0, "algo.eval_steps", a.eval_steps, "an integer >= 0")
    schedules = ("constant", "linear", "adaptive_kl")
    _require(a.lr_schedule in schedules, "algo.lr_schedule", a.lr_schedule, ", ".join(schedules))
    _require(a.desired_kl > 0, "algo.desired_kl", a.desired_kl, "a number > 0")
    from wildrobot.algos.networks import ACTIVATIONS  # names only; no JAX work happens here

    for net in ("policy", "value"):
        n: NetworkConfig = getattr(a, net)
        _require(
            len(n.hidden_sizes) >= 1 and all(h >= 1 for h in n.hidden_sizes),
            f"algo.{net}.hidden_sizes", list(n.hidden_sizes), "a non-empty list of integers >= 1",
        )
        _require(n.activation in ACTIVATIONS, f"algo.{net}.activation", n.activation, ", ".join(ACTIVATIONS))
