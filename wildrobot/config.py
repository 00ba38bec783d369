"""The typed run configuration: the root schema, the trainer group's schema, which schema each
``env`` and ``algo`` option has, and the checks that stop a bad run before anything is compiled.

Each env's schema lives next to that env (``envs/<name>_config.py``) and each algorithm's next to
it (``algos/<name>_config.py``); each validates itself (``validate``). Hydra sits above this module:
``wildrobot.cli`` registers these schemas in Hydra's ConfigStore and composes the YAML files under
``conf/``, so importing an env or an algorithm never imports Hydra. OmegaConf is used here only to
turn a composed (or stored) config into these dataclasses once.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError

from wildrobot.algos.amp_config import PPOAMPConfig
from wildrobot.algos.ppo_config import PPOConfig
from wildrobot.algos.smoke_config import SmokeConfig
from wildrobot.envs.registry import env_entries
from wildrobot.errors import ConfigError, require

__all__ = ["ALGO_SCHEMAS", "env_schemas", "Config", "ConfigError", "TrainerConfig", "check_device_split",
           "config_from_dict", "to_typed", "upgrade_stored", "validate"]


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
    # how many devices the env batch is split over: a count ("2") or "all" (wildrobot.train.sharding)
    devices: str = "1"
    # the machine the preset is sized for: cpu | gpu | any; a gpu preset on a JAX that sees only the
    # CPU gets a note at the start (wildrobot.train.progress.budget_line)
    sized_for: str = "any"


@dataclass
class Config:
    env: Any = MISSING
    algo: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0


def env_schemas() -> dict[str, type]:
    """Each env option's schema: the built-in envs and any registered (``wildrobot.envs.registry``)."""
    return {name: entry.schema for name, entry in env_entries().items()}


ALGO_SCHEMAS: dict[str, type] = {"jax_smoke": SmokeConfig, "ppo": PPOConfig, "ppo_amp": PPOAMPConfig}


# ----------------------------------------------------------------------------------------------
# from a DictConfig (Hydra's, or one stored in a checkpoint) to typed objects
def to_typed(cfg: DictConfig) -> Config:
    """Reject unknown keys, convert once to dataclasses, and check values."""
    reject_unknown_keys(cfg, Config, "")
    typed = OmegaConf.to_object(cfg)
    assert isinstance(typed, Config)
    validate(typed)
    return typed


# Keys an earlier version had, and what took their place: ``upgrade_stored`` converts stored configs,
# and an override of the old key stops with the new one (``wildrobot.cli.renamed_key_error``).
RENAMED_KEYS = {
    "algo.style_ramp_iterations": "algo.style_ramp_env_steps, counted in env steps: iterations x "
                                  "trainer.num_envs x algo.unroll_length (since 2026-12-05)",
}


def upgrade_stored(d: dict) -> dict:
    """A config stored by an earlier version (a checkpoint's), in today's keys: the same run, keyed
    as this version names it (``RENAMED_KEYS``)."""
    algo = d.get("algo", {})
    if "style_ramp_iterations" in algo:
        algo = dict(algo)
        iterations = algo.pop("style_ramp_iterations")
        steps_per_iteration = d.get("trainer", {}).get("num_envs", TrainerConfig.num_envs) * algo.get(
            "unroll_length", PPOConfig.unroll_length)
        algo["style_ramp_env_steps"] = float(iterations * steps_per_iteration)
        d = dict(d, algo=algo)
    return d


def config_from_dict(d: dict) -> Config:
    """The typed Config stored (as plain JSON) in a checkpoint's metadata."""
    d = upgrade_stored(d)
    for group, schemas in (("env", env_schemas()), ("algo", ALGO_SCHEMAS)):
        name = d.get(group, {}).get("name")
        if name not in schemas:
            raise ConfigError(f"the stored config's {group} '{name}' is not one this version knows "
                              f"({', '.join(schemas)})")
    merged = {}
    for group, schema in (("env", env_schemas()[d["env"]["name"]]), ("algo", ALGO_SCHEMAS[d["algo"]["name"]]),
                          ("trainer", TrainerConfig)):
        try:
            merged[group] = OmegaConf.merge(OmegaConf.structured(schema), d[group])
        except ConfigKeyError as e:  # a key this version does not have: a run of another (newer) version
            raise ConfigError(f"the stored config has a key this version of wildrobot does not know "
                              f"({group}.{e.full_key}): the run was written by another version; evaluate, export "
                              f"or resume it with that version") from None
    env, algo, trainer = merged["env"], merged["algo"], merged["trainer"]
    cfg = Config(env=OmegaConf.to_object(env), algo=OmegaConf.to_object(algo),
                 trainer=OmegaConf.to_object(trainer), seed=d["seed"])
    validate(cfg)
    return cfg


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


def validate(cfg: Config) -> None:
    """The trainer's values and their cadence, then each group's own ``validate``."""
    t = cfg.trainer
    require(t.mode in ("train", "verify"), "trainer.mode", t.mode, "'train' or 'verify'")
    require(t.sized_for in ("cpu", "gpu", "any"), "trainer.sized_for", t.sized_for, "'cpu', 'gpu' or 'any'")
    require(t.num_envs >= 1, "trainer.num_envs", t.num_envs, "an integer >= 1")
    require(t.iterations >= 1, "trainer.iterations", t.iterations, "an integer >= 1")
    require(t.log_every >= 1, "trainer.log_every", t.log_every, "an integer >= 1")
    require(t.keep_checkpoints >= 1, "trainer.keep_checkpoints", t.keep_checkpoints, "an integer >= 1")
    for key in ("checkpoint_every", "eval_every"):
        every = getattr(t, key)
        require(
            every >= 0 and every % t.log_every == 0,
            f"trainer.{key}", every,
            f"0 or a positive multiple of trainer.log_every={t.log_every}",
        )
    require(cfg.seed >= 0, "seed", cfg.seed, "an integer >= 0")

    require(cfg.env.name in env_schemas(), "env.name", cfg.env.name, ", ".join(env_schemas()))
    if callable(getattr(cfg.env, "validate", None)):
        cfg.env.validate()
    require(cfg.algo.name in ALGO_SCHEMAS, "algo.name", cfg.algo.name, ", ".join(ALGO_SCHEMAS))
    require(cfg.algo.learning_rate > 0, "algo.learning_rate", cfg.algo.learning_rate, "a number > 0")
    cfg.algo.validate(t.num_envs)
    require(t.devices == "all" or (t.devices.isdigit() and int(t.devices) >= 1), "trainer.devices", t.devices,
            "'all' (every device JAX sees) or a device count >= 1, e.g. trainer.devices=2")
    if t.devices != "all":  # "all" is checked once JAX is asked how many there are (Trainer.start)
        check_device_split(cfg, int(t.devices))


def check_device_split(cfg: Config, count: int) -> None:
    """The env batch splits into ``count`` equal shards (one per device), and so does every PPO
    minibatch (each takes an equal slice of every shard)."""
    t = cfg.trainer
    if t.num_envs % count:
        lower = t.num_envs // count * count
        nearest = " or ".join(str(n) for n in (lower, lower + count) if n > 0)
        raise ConfigError(f"trainer.num_envs={t.num_envs} does not split evenly over trainer.devices={t.devices} "
                          f"({count} devices): use a multiple of {count}, e.g. trainer.num_envs={nearest}.")
    if isinstance(cfg.algo, PPOConfig):
        a = cfg.algo
        batch = t.num_envs * a.unroll_length
        if (batch // a.num_minibatches) % count:
            fitting = [m for m in range(1, batch + 1) if batch % m == 0 and (batch // m) % count == 0]
            nearest = sorted(fitting, key=lambda m: (abs(m - a.num_minibatches), m))[:2]
            raise ConfigError(
                f"a PPO minibatch of trainer.num_envs * algo.unroll_length / algo.num_minibatches = {t.num_envs} * "
                f"{a.unroll_length} / {a.num_minibatches} = {batch // a.num_minibatches} samples does not split "
                f"evenly over trainer.devices={t.devices} ({count} devices; each takes an equal share of every "
                f"minibatch): e.g. algo.num_minibatches={' or '.join(map(str, sorted(nearest)))}.")
