"""``env=playground``: one of MuJoCo Playground's envs behind this framework's ``Env`` interface, so
its trainers (PPO, the runner, checkpoints, evaluation) train it unchanged.

    uv sync --extra playground
    uv run run.py env=playground env.task=CartpoleBalance trainer.num_envs=256

The task is built with Playground's own default config for it (``registry.get_default_config``),
with ``impl`` (default ``jax``: Playground's suite defaults to Warp, which needs an NVIDIA GPU) and
any ``config_overrides`` applied. Its observation becomes both the actor's and the critic's (a dict
observation: ``state`` for the actor, ``privileged_state`` for the critic when it has one); its
metrics and ``info`` pass through; the time limit is the task's ``episode_length`` (the training
wrapper truncates there, as Brax's episode wrapper does). It has no left/right mirror, so PPO's
mirror loss is off for it, and no motion features (``algo=ppo_amp`` refuses it).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from wildrobot.envs.core import Env, State
from wildrobot.envs.playground_config import PlaygroundEnvConfig, check_task
from wildrobot.errors import ConfigError


class PlaygroundEnv(Env):
    def __init__(self, cfg: PlaygroundEnvConfig):
        from mujoco_playground import registry

        check_task(cfg.task)
        self.cfg = cfg
        config = registry.get_default_config(cfg.task)
        config.impl = cfg.impl
        self._env = registry.load(cfg.task, config=config, config_overrides=dict(cfg.config_overrides) or None)
        self._episode_length = int(cfg.episode_length or cfg.config_overrides.get("episode_length", config.episode_length))
        shapes = jax.eval_shape(self._env.reset, jax.random.key(0)).obs
        self._dict_obs = isinstance(shapes, dict)
        if self._dict_obs:
            extra = set(shapes) - {"state", "privileged_state"}
            if "state" not in shapes or extra:
                raise ConfigError(f"Playground task '{cfg.task}' observes {sorted(shapes)}; env=playground takes an "
                                 f"array observation or a dict of 'state' (and 'privileged_state')")
            actor, critic = shapes["state"], shapes.get("privileged_state", shapes["state"])
        else:
            actor = critic = shapes
        self._sizes = {"actor": math.prod(actor.shape), "critic": math.prod(critic.shape)}
        self._raw_shapes = shapes

    @property
    def playground_env(self) -> Any:
        """The wrapped ``mujoco_playground`` env."""
        return self._env

    # -- the Env interface ----------------------------------------------------------------------
    def reset(self, key: jax.Array) -> State:
        return self._ours(self._env.reset(key))

    def step(self, state: State, action: jax.Array) -> State:
        from mujoco_playground._src import mjx_env

        theirs = mjx_env.State(state.data, self._raw_obs(state.obs), state.reward, state.done,
                               dict(state.metrics), dict(state.info))
        return self._ours(self._env.step(theirs, action))

    @property
    def observation_size(self) -> dict[str, int]:
        return dict(self._sizes)

    @property
    def action_size(self) -> int:
        return int(self._env.action_size)

    @property
    def dt(self) -> float:
        return float(self._env.dt)

    @property
    def episode_length(self) -> int:
        return self._episode_length

    @property
    def physics_backend(self) -> str:
        return "mjx"

    # -- conversions ----------------------------------------------------------------------------
    def _ours(self, s: Any) -> State:
        if self._dict_obs:
            actor, critic = s.obs["state"], s.obs.get("privileged_state", s.obs["state"])
        else:
            actor = critic = s.obs
        obs = {"actor": jnp.reshape(actor, (-1,)), "critic": jnp.reshape(critic, (-1,))}
        return State(s.data, obs, jnp.asarray(s.reward, jnp.float32), jnp.asarray(s.done, jnp.float32),
                     dict(s.metrics), dict(s.info))

    def _raw_obs(self, obs: dict[str, jax.Array]) -> Any:
        if not self._dict_obs:
            return jnp.reshape(obs["actor"], self._raw_shapes.shape)
        raw = {"state": jnp.reshape(obs["actor"], self._raw_shapes["state"].shape)}
        if "privileged_state" in self._raw_shapes:
            raw["privileged_state"] = jnp.reshape(obs["critic"], self._raw_shapes["privileged_state"].shape)
        return raw
