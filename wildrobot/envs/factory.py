"""The one way trainers, tools and tests get an environment."""

from __future__ import annotations

import dataclasses
from typing import Any

from wildrobot.envs.core import Env
from wildrobot.envs.registry import env_entry


def make_env(cfg: Any) -> Env:
    """Build the env named by ``cfg.name`` from its typed config (``wildrobot.envs.registry``)."""
    return env_entry(cfg.name).make(cfg)


def evaluation_config(env_cfg: Any) -> Any:
    """The env config for evaluation: every switchable disturbance group (domain randomisation,
    pushes, sensor noise: a sub-config with ``enabled``) switched off."""
    changes = {}
    for group in ("randomization", "push", "noise"):
        sub = getattr(env_cfg, group, None)
        if sub is not None and dataclasses.is_dataclass(sub) and hasattr(sub, "enabled"):
            changes[group] = dataclasses.replace(sub, enabled=False)
    return dataclasses.replace(env_cfg, **changes) if changes else env_cfg
