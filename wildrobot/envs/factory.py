"""The one way trainers, tools and tests get an environment."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from wildrobot.envs.core import Env


def _stub(cfg: Any) -> Env:
    from wildrobot.envs.stub import StubEnv

    return StubEnv(cfg)


def _wildrobot(cfg: Any) -> Env:
    # Imported lazily: MJX and the robot model load only when this env is asked for.
    from wildrobot.envs.wildrobot import WildRobotEnv

    return WildRobotEnv(cfg)


ENV_CONSTRUCTORS: dict[str, Callable[[Any], Env]] = {"stub": _stub, "wildrobot": _wildrobot}


def make_env(cfg: Any) -> Env:
    """Build the env named by ``cfg.name`` from its typed config."""
    try:
        constructor = ENV_CONSTRUCTORS[cfg.name]
    except KeyError:
        raise ValueError(f"unknown env '{cfg.name}'; available: {', '.join(ENV_CONSTRUCTORS)}") from None
    return constructor(cfg)


def evaluation_config(env_cfg: Any) -> Any:
    """The env config for evaluation: every switchable disturbance group (domain randomisation,
    pushes, sensor noise: a sub-config with ``enabled``) switched off."""
    changes = {}
    for group in ("randomization", "push", "noise"):
        sub = getattr(env_cfg, group, None)
        if sub is not None and dataclasses.is_dataclass(sub) and hasattr(sub, "enabled"):
            changes[group] = dataclasses.replace(sub, enabled=False)
    return dataclasses.replace(env_cfg, **changes) if changes else env_cfg
