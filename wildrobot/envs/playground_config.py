"""Schema of ``env=playground``: one of MuJoCo Playground's envs, trained by this framework's
trainers (``wildrobot.envs.playground``). Playground is an optional package:
``uv sync --extra playground`` (or ``pip install playground==0.2.0``)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from wildrobot.errors import ConfigError, require

INSTALL_HINT = "install it with `uv sync --extra playground` (or `pip install playground==0.2.0`)"


@dataclass
class PlaygroundEnvConfig:
    name: str = "playground"
    task: str = "CartpoleBalance"  # a name of mujoco_playground.registry (dm_control suite: no downloads)
    impl: str = "jax"  # Playground's MJX implementation: jax (any machine) | warp (NVIDIA GPUs)
    episode_length: int = 0  # control steps before truncation; 0 = the task's own config
    config_overrides: dict[str, Any] = field(default_factory=dict)  # keys of the task's own config, e.g. {ctrl_dt: 0.02}

    def validate(self) -> None:
        if importlib.util.find_spec("mujoco_playground") is None:
            raise ConfigError(f"env=playground needs MuJoCo Playground, which is not installed: {INSTALL_HINT}")
        require(self.impl in ("jax", "warp"), "env.impl", self.impl, "jax or warp")
        require(self.episode_length >= 0, "env.episode_length", self.episode_length, "0 (the task's own) or more")
        check_task(self.task)


def check_task(task: str) -> None:
    """A task Playground has and that loads without a network (imports Playground: seconds)."""
    from mujoco_playground import registry
    from mujoco_playground._src import dm_control_suite, mjx_env

    if task not in registry.ALL_ENVS:
        raise ConfigError(f"env.task='{task}' is not one of MuJoCo Playground's envs; its dm_control suite "
                          f"(no downloads): {', '.join(dm_control_suite.ALL_ENVS)}")
    if task not in dm_control_suite.ALL_ENVS and not mjx_env.MENAGERIE_PATH.exists():
        raise ConfigError(f"env.task='{task}' loads its robot from MuJoCo Menagerie, which Playground clones "
                          f"from GitHub on first use, and runs here need no network. Clone "
                          f"https://github.com/google-deepmind/mujoco_menagerie into {mjx_env.MENAGERIE_PATH} "
                          f"beforehand, or pick one of the dm_control suite: {', '.join(dm_control_suite.ALL_ENVS)}")
