"""A cheap pure-JAX stand-in for the robot: a point mass that must follow a velocity command.

No physics engine, so the training-loop tests compile in seconds. It keeps the real env's
shape: actor/critic observations, named reward terms, terminations ("falls" when the mass
gets too fast) and a command in ``info`` that ``set_command`` can fix.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wildrobot.envs.core import EPISODE_MARK, Env, Mirror, State
from wildrobot.envs.observation import Block, ObservationView, flips
from wildrobot.envs.stub_config import StubEnvConfig

_GAIN = 2.0  # velocity change per second at full action


_FLIP_Y = flips(1.0, -1.0)  # the stub's mirror: reflection across the x axis, every y component flips
_BLOCKS = (
    Block("velocity", 2, lambda q: q["velocity"], "m/s", _FLIP_Y),
    Block("command", 2, lambda q: q["command"], "m/s", _FLIP_Y),
    Block("prev_action", 2, lambda q: q["prev_action"], "in [-1, 1]", _FLIP_Y),
)
VIEWS = {"actor": ObservationView(_BLOCKS),
         "critic": ObservationView(_BLOCKS + (Block("position", 2, lambda q: q["position"], "m", _FLIP_Y),))}


class StubEnv(Env):
    def __init__(self, cfg: StubEnvConfig):
        self.cfg = cfg
        self.observation = VIEWS

    @property
    def observation_size(self) -> dict[str, int]:
        return {name: view.size for name, view in self.observation.items()}

    @property
    def observation_layout(self) -> list[dict]:
        """Blocks of the actor observation (as the export sidecar describes them)."""
        return self.observation["actor"].layout()

    @property
    def action_size(self) -> int:
        return 2

    @property
    def mirror(self) -> Mirror:
        perm, sign = self.observation["actor"].mirror()
        return Mirror(obs_perm=perm, obs_sign=sign, action_perm=_FLIP_Y[0], action_sign=_FLIP_Y[1])

    @property
    def dt(self) -> float:
        return self.cfg.dt

    @property
    def command_labels(self) -> tuple[str, ...]:
        return ("vx", "vy")

    @property
    def evaluation_commands(self) -> tuple[tuple[float, ...], ...]:
        """2-D velocities inside the command range."""
        return ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (-0.5, 0.5), (0.8, -0.3))

    @property
    def headline_metrics(self) -> tuple[tuple[str, str, str], ...]:
        return (("v_err", "tracking/velocity_error", "{:.3f}"),)

    @property
    def episode_length(self) -> int:
        return self.cfg.episode_length

    def reset(self, key: jax.Array) -> State:
        key, k_cmd, k_vel = jax.random.split(key, 3)
        r = self.cfg.command_range
        command = jax.random.uniform(k_cmd, (2,), minval=-r, maxval=r)
        velocity = jax.random.uniform(k_vel, (2,), minval=-0.5, maxval=0.5)
        data = {"position": jnp.zeros(2), "velocity": velocity}
        info = {"rng": key, "command": command, "prev_action": jnp.zeros(2), EPISODE_MARK: data["position"]}
        zero = jnp.zeros(())
        return State(data, self._obs(data, info), zero, zero, self._metrics(zero, zero, zero, zero), info)

    def step(self, state: State, action: jax.Array) -> State:
        """One step; a new episode first when an outside auto-reset put back a first state."""
        return self.step_in_episode(self.restart_if_replaced(state), action)

    def physics_mark(self, data: Any) -> jax.Array:
        return data["position"]

    def step_in_episode(self, state: State, action: jax.Array) -> State:
        action = jnp.clip(action, -1.0, 1.0)
        velocity = state.data["velocity"] + self.cfg.dt * _GAIN * action
        data = {"position": state.data["position"] + self.cfg.dt * velocity, "velocity": velocity}
        info = dict(state.info, prev_action=action, **{EPISODE_MARK: data["position"]})
        err = jnp.sum((velocity - info["command"]) ** 2)
        tracking = jnp.exp(-err / self.cfg.tracking_sigma)
        action_rate = -0.01 * jnp.sum((action - state.info["prev_action"]) ** 2)
        fall = (jnp.linalg.norm(velocity) > self.cfg.max_speed).astype(jnp.float32)
        termination = -1.0 * fall
        reward = tracking + action_rate + termination
        metrics = dict(state.metrics, **self._metrics(tracking, action_rate, termination, fall))  # keeps wrappers' keys
        metrics["tracking/velocity_error"] = jnp.sqrt(err)
        return State(data, self._obs(data, info), reward, fall, metrics, info)

    # motion style: the features are the velocity; a reference frame is a velocity and a command
    @property
    def feature_size(self) -> int:
        return 2

    def state_features(self, state: State) -> jax.Array:
        return state.data["velocity"]

    def reset_from(self, key: jax.Array, frame: dict[str, jax.Array]) -> State:
        state = self.reset(key)
        data = dict(state.data, velocity=frame["velocity"].astype(jnp.float32))
        info = dict(state.info, command=frame["command"].astype(jnp.float32))
        return state.replace(data=data, info=info, obs=self._obs(data, info))

    def synthetic_reference(self, velocity=(0.5, 0.0), frames: int = 64) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """A made-up motion style for tests of algo=ppo_amp: moving at ``velocity`` with a small slow
        sway. (transitions (frames - 1, 2, 2) of consecutive features, reference starts)."""
        t = np.arange(frames) * self.cfg.dt
        v = np.stack([velocity[0] + 0.05 * np.sin(2 * np.pi * t), velocity[1] + 0.05 * np.cos(2 * np.pi * t)], -1)
        v = v.astype(np.float32)
        starts = {"velocity": v, "command": np.zeros_like(v)}
        return np.stack([v[:-1], v[1:]], axis=1), starts

    def command(self, state: State) -> jax.Array:
        return state.info["command"]

    def set_command(self, state: State, command: jax.Array) -> State:
        info = dict(state.info, command=jnp.asarray(command, jnp.float32)[:2])
        return state.replace(info=info, obs=self._obs(state.data, info))

    def _obs(self, data, info) -> dict[str, jax.Array]:
        q = {**data, "command": info["command"], "prev_action": info["prev_action"]}
        return {name: view.frame(q) for name, view in self.observation.items()}

    @staticmethod
    def _metrics(tracking, action_rate, termination, fall) -> dict[str, jax.Array]:
        return {
            "reward/tracking": tracking,
            "reward/action_rate": action_rate,
            "reward/termination": termination,
            "fall": fall,
            "tracking/velocity_error": jnp.zeros(()),
        }
