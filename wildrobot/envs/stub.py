"""A cheap pure-JAX stand-in for the robot: a point mass that must follow a velocity command.

No physics engine, so the training-loop tests compile in seconds. It keeps the real env's
shape: actor/critic observations, named reward terms, terminations ("falls" when the mass
gets too fast) and a command in ``info`` that ``set_command`` can fix.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from wildrobot.config import StubEnvConfig
from wildrobot.envs.core import Env, Mirror, State

_GAIN = 2.0  # velocity change per second at full action


class StubEnv(Env):
    def __init__(self, cfg: StubEnvConfig):
        self.cfg = cfg

    @property
    def observation_size(self) -> dict[str, int]:
        return {"actor": 6, "critic": 8}

    @property
    def observation_layout(self) -> list[dict]:
        """Blocks of the actor observation (as the export sidecar describes them)."""
        return [{"name": "velocity", "start": 0, "size": 2}, {"name": "command", "start": 2, "size": 2},
                {"name": "prev_action", "start": 4, "size": 2}]

    @property
    def action_size(self) -> int:
        return 2

    @property
    def mirror(self) -> Mirror:
        """Reflection across the x axis: every y component (velocity, command, action) flips."""
        flip_y = np.array([1.0, -1.0], np.float32)
        return Mirror(obs_perm=np.arange(6), obs_sign=np.tile(flip_y, 3), action_perm=np.arange(2), action_sign=flip_y)

    @property
    def dt(self) -> float:
        return self.cfg.dt

    @property
    def episode_length(self) -> int:
        return self.cfg.episode_length

    def reset(self, key: jax.Array) -> State:
        key, k_cmd, k_vel = jax.random.split(key, 3)
        r = self.cfg.command_range
        command = jax.random.uniform(k_cmd, (2,), minval=-r, maxval=r)
        velocity = jax.random.uniform(k_vel, (2,), minval=-0.5, maxval=0.5)
        data = {"position": jnp.zeros(2), "velocity": velocity}
        info = {"rng": key, "command": command, "prev_action": jnp.zeros(2)}
        zero = jnp.zeros(())
        return State(data, self._obs(data, info), zero, zero, self._metrics(zero, zero, zero, zero), info)

    def step(self, state: State, action: jax.Array) -> State:
        action = jnp.clip(action, -1.0, 1.0)
        velocity = state.data["velocity"] + self.cfg.dt * _GAIN * action
        data = {"position": state.data["position"] + self.cfg.dt * velocity, "velocity": velocity}
        info = dict(state.info, prev_action=action)
        err = jnp.sum((velocity - info["command"]) ** 2)
        tracking = jnp.exp(-err / self.cfg.tracking_sigma)
        action_rate = -0.01 * jnp.sum((action - state.info["prev_action"]) ** 2)
        fall = (jnp.linalg.norm(velocity) > self.cfg.max_speed).astype(jnp.float32)
        termination = -1.0 * fall
        reward = tracking + action_rate + termination
        metrics = self._metrics(tracking, action_rate, termination, fall)
        metrics["tracking/velocity_error"] = jnp.sqrt(err)
        return State(data, self._obs(data, info), reward, fall, metrics, info)

    def set_command(self, state: State, command: jax.Array) -> State:
        info = dict(state.info, command=jnp.asarray(command, jnp.float32)[:2])
        return state.replace(info=info, obs=self._obs(state.data, info))

    def _obs(self, data, info) -> dict[str, jax.Array]:
        actor = jnp.concatenate([data["velocity"], info["command"], info["prev_action"]])
        critic = jnp.concatenate([actor, data["position"]])
        return {"actor": actor, "critic": critic}

    @staticmethod
    def _metrics(tracking, action_rate, termination, fall) -> dict[str, jax.Array]:
        return {
            "reward/tracking": tracking,
            "reward/action_rate": action_rate,
            "reward/termination": termination,
            "fall": fall,
            "tracking/velocity_error": jnp.zeros(()),
        }
