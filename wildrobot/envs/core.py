"""The environment interface every trainer talks to.

Pure and jit/vmap-able, in the shape of Brax's ``Env`` and MuJoCo Playground's ``MjxEnv``:
``reset(key) -> State`` and ``step(state, action) -> State`` on ONE environment; batching,
episode limits and auto-reset are added by ``wildrobot.envs.wrappers``.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

Observation = dict[str, jax.Array]  # {"actor": deployable obs, "critic": privileged obs}
EPISODE_MARK = "episode_mark"  # info key: Env.physics_mark of the physics state the env last left
# info key of an env with a training curriculum: env steps the whole training batch has taken so far
# (float32). The env's reset puts 0; wrap_for_training's step adds the batch's size and keeps it
# across the episodes of each slot; a batch outside training (an evaluation) stays at 0.
TRAINING_STEPS = "training_steps"

# What ``Env.physics_backend`` names, as the progress line and error messages write it.
PHYSICS_NAMES = {"mjx": "MJX", "mujoco": "MuJoCo C"}


@flax.struct.dataclass
class State:
    """One environment's state; every field is a pytree of arrays.

    data:    physics state (``mjx.Data`` or MuJoCo C's ``MujocoData`` for WildRobot, a small pytree for the stub).
    obs:     {"actor": ..., "critic": ...}; the actor part is what the real robot senses.
    reward:  scalar reward of the last step (already zeroed on a non-finite step).
    done:    1.0 when the episode ended at this step (termination OR truncation).
    metrics: scalars to log, e.g. every reward term as "reward/<name>".
    info:    env bookkeeping; wrappers add "truncation" (1.0 = time limit, bootstrap the value),
             "steps" and "episode_metrics"; envs keep their own rng, command, etc. here.
    """

    data: Any
    obs: Observation
    reward: jax.Array
    done: jax.Array
    metrics: dict[str, jax.Array]
    info: dict[str, Any]

    @property
    def pipeline_state(self) -> Any:
        """Brax's name for ``data`` (its wrappers read and replace ``pipeline_state``)."""
        return self.data


def _replace(self: State, **changes: Any) -> State:
    """``State.replace`` that also takes Brax's ``pipeline_state=`` for ``data=``."""
    if "pipeline_state" in changes:
        changes["data"] = changes.pop("pipeline_state")
    return dataclasses.replace(self, **changes)


State.replace = _replace  # after the decorator, which installs its own ``replace``


@dataclass(frozen=True)
class Mirror:
    """The left/right mirror image of actor observations and of actions, for an env whose task is
    symmetric about the sagittal plane: ``mirrored = sign * x[perm]`` on the last axis."""

    obs_perm: np.ndarray
    obs_sign: np.ndarray
    action_perm: np.ndarray
    action_sign: np.ndarray

    def actor_obs(self, obs: jax.Array) -> jax.Array:
        return obs[..., self.obs_perm] * self.obs_sign

    def action(self, action: jax.Array) -> jax.Array:
        return action[..., self.action_perm] * self.action_sign


class Env(abc.ABC):
    """A single (unbatched) environment."""

    @abc.abstractmethod
    def reset(self, key: jax.Array) -> State:
        """A fresh episode. Must be cheap: the auto-reset wrapper calls it every step."""

    @abc.abstractmethod
    def step(self, state: State, action: jax.Array) -> State:
        """Advance one control step. ``action`` lies in [-1, 1]^action_size.

        Another library's auto-reset (Brax's ``AutoResetWrapper``, Playground's
        ``BraxAutoResetWrapper``) puts back only an episode's first ``data`` and ``obs``, not its
        ``info``; an env whose episodes carry state in ``info`` (a command, randomisation draws, a
        clock) starts its ``step`` with ``restart_if_replaced`` to begin a new episode then."""

    def step_in_episode(self, state: State, action: jax.Array) -> State:
        """``step`` for a wrapper that starts every episode with ``reset`` itself (``BatchedEnv``,
        evaluation, quick-verify), so the check of ``restart_if_replaced`` can be left out; the same
        as ``step`` unless an env overrides it. Our training wrapper calls this, not ``step``: a
        subclass of an env that has it changes the dynamics here."""
        return self.step(state, action)

    def physics_mark(self, data: Any) -> Optional[jax.Array]:
        """What identifies a physics state (WildRobot: ``qpos``), kept in ``info[EPISODE_MARK]`` by an
        env that uses ``restart_if_replaced``; None: the env does not check."""
        return None

    def restart_if_replaced(self, state: State) -> State:
        """``state``, or, when its physics is not what this env's last step (or reset) left there (an
        outside auto-reset put an episode's first state back), a new episode: ``reset`` with a key
        from ``info["rng"]``, every info key a wrapper added kept. A wrapper's restored first
        observation is then one step out of date; the step's own observation is the new episode's."""
        mark = self.physics_mark(state.data)
        if mark is None:
            return state
        last = state.info[EPISODE_MARK]
        replaced = jnp.any((mark != last) & ~(jnp.isnan(mark) & jnp.isnan(last)))  # a blow-up is no restart
        fresh = self.reset(jax.random.fold_in(state.info["rng"], 1))
        fresh = fresh.replace(info=dict(state.info, **fresh.info), metrics=state.metrics,
                              reward=state.reward, done=state.done, obs=state.obs)
        return jax.tree.map(lambda a, b: jnp.where(replaced, a, b), fresh, state)

    def set_command(self, state: State, command: jax.Array) -> State:
        """Fix the command (``command_labels``) for the rest of the episode and update the observation;
        envs that take a command override this (evaluation uses it)."""
        raise NotImplementedError(f"{type(self).__name__} takes no command")

    def command(self, state: State) -> jax.Array:
        """The command ``state`` follows (``command_labels`` order); envs that take a command override
        this (a style reward weighted by the reference's commands reads it)."""
        raise NotImplementedError(f"{type(self).__name__} takes no command")

    @property
    @abc.abstractmethod
    def observation_size(self) -> dict[str, int]:
        """Sizes of the flat observation vectors, {"actor": n, "critic": m}."""

    @property
    @abc.abstractmethod
    def action_size(self) -> int: ...

    @property
    @abc.abstractmethod
    def dt(self) -> float:
        """Control period in seconds."""

    @property
    def action_names(self) -> tuple[str, ...]:
        """A name per action component, for reports (WildRobot: its joints in actuator order)."""
        return tuple(f"a{i}" for i in range(self.action_size))

    @property
    def episode_length(self) -> int:
        """Control steps before truncation (used by the episode wrapper)."""
        return 1000

    @property
    def mirror(self) -> Optional[Mirror]:
        """The env's left/right symmetry (PPO's ``symmetry_coef`` uses it); None when it has none."""
        return None

    @property
    def observation_layout(self) -> Optional[list[dict]]:
        """Name, start, size and unit of each block of the actor observation (what the export
        sidecar describes); None for an env that does not describe it."""
        return None

    @property
    def command_labels(self) -> tuple[str, ...]:
        """A name per component of the command ``set_command`` takes (empty: the env takes none)."""
        return ()

    @property
    def evaluation_commands(self) -> tuple[tuple[float, ...], ...]:
        """The fixed commands ``wildrobot.eval`` runs by default (``--commands grid``)."""
        return ()

    @property
    def headline_metrics(self) -> tuple[tuple[str, str, str], ...]:
        """(label, metric key, format) of the ``metrics`` the progress line shows for this env, e.g.
        ``("vx_err", "tracking/vx_error", "{:.3f}")``; an algorithm adds its own around them."""
        return ()

    # -- motion style (algo=ppo_amp): features of a state, and episodes that start at a reference frame --
    @property
    def feature_size(self) -> int:
        """Length of ``state_features``; 0 for an env without motion features."""
        return 0

    def state_features(self, state: State) -> jax.Array:
        """The kinematic features of a state that a motion-style discriminator compares with reference
        motions (one function for policy states and reference frames)."""
        raise NotImplementedError(f"{type(self).__name__} has no motion features (Env.state_features)")

    def reset_from(self, key: jax.Array, frame: dict[str, jax.Array]) -> State:
        """A fresh episode that starts at one frame of a reference motion (reference state
        initialisation); ``frame`` holds one row of each array of the env's reference starts (for
        WildRobot: ``qpos``, ``qvel``, the clip's ``command`` and the frame's gait ``phase``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot start an episode at a reference frame")

    @property
    def physics_backend(self) -> str:
        """The physics engine that steps this env (a key of ``PHYSICS_NAMES``), or "" for an env
        without one. Checkpoints record it: one engine's state cannot continue in another."""
        return ""
