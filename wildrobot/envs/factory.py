"""The one way trainers, tools and tests get an environment."""

from __future__ import annotations

import dataclasses
from typing import Any

from wildrobot.envs.core import Env
from wildrobot.envs.registry import env_entry


def make_env(cfg: Any) -> Env:
    """Build the env named by ``cfg.name`` from its typed config (``wildrobot.envs.registry``)."""
    return env_entry(cfg.name).make(cfg)


DISTURBANCE_GROUPS = ("randomization", "push", "noise")


def _disturbance_groups(env_cfg: Any) -> dict[str, Any]:
    """The switchable disturbance groups of an env config (a sub-config with ``enabled``), by name."""
    groups = {}
    for group in DISTURBANCE_GROUPS:
        sub = getattr(env_cfg, group, None)
        if sub is not None and dataclasses.is_dataclass(sub) and hasattr(sub, "enabled"):
            groups[group] = sub
    return groups


def evaluation_config(env_cfg: Any) -> Any:
    """The env config for evaluation: every switchable disturbance group (domain randomisation,
    pushes, sensor noise) switched off."""
    changes = {group: dataclasses.replace(sub, enabled=False) for group, sub in _disturbance_groups(env_cfg).items()}
    return dataclasses.replace(env_cfg, **changes) if changes else env_cfg


def disturbances_on(env_cfg: Any) -> tuple[str, ...]:
    """The names of the disturbance groups an env config has switched on (none for an evaluation env)."""
    return tuple(group for group, sub in _disturbance_groups(env_cfg).items() if sub.enabled)
