"""Batching, episode limits, auto-reset and episode statistics around a single ``Env``.

``wrap_for_training(env, episode_length)`` returns a ``BatchedEnv`` whose ``reset(keys)`` and
``step(state, actions)`` work on a leading batch axis. On top of the env's own ``info`` it keeps:

- ``steps``: control steps into the current episode;
- ``truncation``: 1.0 when this step hit the time limit without a fall (bootstrap the value);
- ``final_obs``: the observation the step produced BEFORE an auto-reset replaced it, so the
  value of a truncated episode's last state can be bootstrapped exactly;
- ``episode_metrics`` / ``episode_done``: the sums (``return``, ``length``, every ``reward/*``
  term, and ``fall``) of the episode that finished at this step, kept until the next one ends.

An env whose ``reset`` puts ``info["training_steps"]`` (``core.TRAINING_STEPS``: a curriculum, such
as WildRobot's growing pushes) gets there the env steps the whole batch has taken since its reset:
each step adds the batch's size, and a slot's new episode keeps its clock.

For a motion-style discriminator (``algo=ppo_amp``) it can also add the env's ``state_features`` to
every observation as ``obs["features"]`` (so ``final_obs["features"]`` is the pre-reset state of an
episode's last transition), the command each state follows as ``obs["command"]`` (``Env.command``),
and start a share of the episodes it resets at reference frames
(``starts``: arrays with one row per frame, given to ``Env.reset_from``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import jax
import jax.numpy as jnp

from wildrobot.envs.core import TRAINING_STEPS, Env, State

FEATURES = "features"  # the observation key of the env's state features, when asked for
COMMAND = "command"  # the observation key of the command a state follows (Env.command), when asked for
WRAPPER_KEYS = ("steps", "truncation", "final_obs", "episode_metrics", "episode_done", "reset_rng", "running")


def _episode_keys(metrics: dict[str, jax.Array]) -> list[str]:
    return [k for k in metrics if k.startswith("reward/") or k in ("fall", "nonfinite")]


def _select(mask: jax.Array, on_true: Any, on_false: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(mask, a, b), on_true, on_false)


@dataclass(frozen=True, eq=False)
class BatchedEnv:
    env: Env
    episode_length: int
    features: bool = False  # add obs["features"] (Env.state_features) to every observation
    starts: Optional[dict[str, Any]] = None  # reference frames, one row each (Env.reset_from)
    start_share: float = 0.0  # the share of resets that start at a random reference frame
    with_command: bool = False  # add obs["command"] (Env.command) to every observation
    few_resets: float = 1 / 16  # up to this share of the batch finishing at once, reset only those envs

    @property
    def observation_size(self) -> dict[str, int]:
        return self.env.observation_size

    @property
    def action_size(self) -> int:
        return self.env.action_size

    @property
    def dt(self) -> float:
        return self.env.dt

    @property
    def mirror(self):
        return self.env.mirror

    @property
    def headline_metrics(self) -> tuple[tuple[str, str, str], ...]:
        return self.env.headline_metrics

    @property
    def feature_size(self) -> int:
        return self.env.feature_size

    # The whole batch is vmapped at once; an MJX env's physics step chunks itself on CPU
    # (wildrobot.envs.physics.vmap_in_chunks).
    def reset(self, keys: jax.Array) -> State:
        return jax.vmap(self._reset_one)(keys)

    def step(self, state: State, actions: jax.Array) -> State:
        """Step every env; where one finished (a fall, a blow-up or the time limit), a new episode."""
        nxt, done, own = jax.vmap(self._advance)(state, actions)
        reset_rng, keys = jnp.moveaxis(jax.vmap(jax.random.split)(own["reset_rng"]), 1, 0)
        out = jax.vmap(self._finish)(nxt, done, own, self._fresh_where(done, keys), reset_rng)
        if TRAINING_STEPS in state.info:  # the curriculum's clock: the batch's env steps, across episodes
            clock = state.info[TRAINING_STEPS] + jnp.float32(actions.shape[0])
            out = out.replace(info=dict(out.info, **{TRAINING_STEPS: clock}))
        return out

    def _fresh_where(self, done: jax.Array, keys: jax.Array) -> State:
        """New episodes for the envs that finished, from their own keys (rows of the others are zeros,
        which ``_finish`` does not read). A ``lax.switch`` over the batch makes none on a step where
        no env finished, only the finished ones when they are at most ``few_resets`` of the batch
        (gathered, reset, scattered back: the usual case, a fall here and a time limit there), and
        the whole batch's otherwise (after a synchronised start, all envs reach the limit together)."""
        n = done.shape[0]
        few = int(n * self.few_resets)
        make = jax.vmap(self._fresh)
        shapes = jax.eval_shape(make, keys)

        def zeros(_):
            return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        def some(keys):
            (rows,) = jnp.nonzero(done, size=few, fill_value=n)  # n: past the end, dropped below
            made = make(keys[jnp.minimum(rows, n - 1)])
            return jax.tree.map(lambda z, m: z.at[rows].set(m, mode="drop"), zeros(None), made)

        count = jnp.sum(done.astype(jnp.int32))
        branch = jnp.where(count == 0, 0, jnp.where(count <= few, 1, 2))
        return jax.lax.switch(branch, [zeros, some if few > 0 else make, make], keys)

    # -- one environment ----------------------------------------------------------------------
    def _fresh(self, key: jax.Array) -> State:
        """A new episode: the env's own reset, or (a ``start_share`` of the time) one at a random
        reference frame; with the features observation when asked for."""
        if self.starts is None or self.start_share <= 0:
            state = self.env.reset(key)
        else:
            k_reset, k_pick, k_frame = jax.random.split(key, 3)
            count = len(next(iter(self.starts.values())))
            row = jax.random.randint(k_frame, (), 0, count)
            frame = {name: jnp.asarray(rows)[row] for name, rows in self.starts.items()}
            use = jax.random.bernoulli(k_pick, self.start_share)
            state = _select(use, self.env.reset_from(k_reset, frame), self.env.reset(k_reset))
        return self._with_extras(state)

    def _with_extras(self, state: State) -> State:
        """``state`` with the observations asked for beside the env's own (features, command)."""
        extras = {}
        if self.features:
            features = self.env.state_features(state)
            # a blow-up's state is not finite: zero its features as the env zeroes its observations, so
            # that a discriminator scoring it (and the replay buffer keeping it) stays finite
            extras[FEATURES] = jnp.where(jnp.all(jnp.isfinite(features)), features, 0.0)
        if self.with_command:
            extras[COMMAND] = jnp.asarray(self.env.command(state), jnp.float32)
        return state.replace(obs=dict(state.obs, **extras)) if extras else state

    def _reset_one(self, key: jax.Array) -> State:
        key, reset_key = jax.random.split(key)
        state = self._fresh(reset_key)
        episode = {k: jnp.zeros(()) for k in ["return", "length", *_episode_keys(state.metrics)]}
        info = dict(
            state.info,
            steps=jnp.zeros((), jnp.int32),
            truncation=jnp.zeros(()),
            final_obs=state.obs,
            episode_metrics=episode,
            running=episode,
            episode_done=jnp.zeros(()),
            reset_rng=key,
        )
        return state.replace(info=info)

    def _advance(self, state: State, action: jax.Array) -> tuple[State, jax.Array, dict[str, Any]]:
        """The env's step (the episode goes on: this wrapper starts new ones itself), whether the
        episode ended, and this wrapper's own bookkeeping from ``state``."""
        own = {k: state.info[k] for k in WRAPPER_KEYS}
        inner = state.replace(info={k: v for k, v in state.info.items() if k not in WRAPPER_KEYS})
        nxt = self._with_extras(self.env.step_in_episode(inner, action))
        terminated = nxt.done > 0
        truncated = jnp.logical_and(own["steps"] + 1 >= self.episode_length, jnp.logical_not(terminated))
        return nxt, jnp.logical_or(terminated, truncated), dict(own, truncated=truncated)

    def _finish(self, nxt: State, done: jax.Array, own: dict[str, Any], fresh: State, reset_rng: jax.Array) -> State:
        """The step's state, or where the episode ended ``fresh`` (with the step's reward, done and
        metrics); the episode sums and the pre-reset observation in ``info``."""
        running = {k: own["running"][k] + nxt.metrics[k] for k in own["running"] if k.startswith("reward/")}
        running["return"] = own["running"]["return"] + nxt.reward
        running["length"] = own["running"]["length"] + 1.0
        for k in ("fall", "nonfinite"):
            if k in own["running"]:
                running[k] = own["running"][k] + nxt.metrics[k]
        running = {k: running[k] for k in own["running"]}  # keep the carry's key order

        after = _select(done, fresh.replace(reward=nxt.reward, done=nxt.done, metrics=nxt.metrics), nxt)
        zeros = jax.tree.map(jnp.zeros_like, running)
        info = dict(
            after.info,
            steps=jnp.where(done, 0, own["steps"] + 1),
            truncation=own["truncated"].astype(jnp.float32),
            final_obs=nxt.obs,
            episode_metrics=_select(done, running, own["episode_metrics"]),
            running=_select(done, zeros, running),
            episode_done=done.astype(jnp.float32),
            reset_rng=reset_rng,
        )
        return after.replace(done=done.astype(jnp.float32), info=info)


def wrap_for_training(env: Env, episode_length: int | None = None, features: bool = False,
                      starts: Optional[dict[str, Any]] = None, start_share: float = 0.0,
                      command: bool = False) -> BatchedEnv:
    if features and env.feature_size <= 0:
        raise ValueError(f"{type(env).__name__} has no motion features (Env.feature_size is 0)")
    if command and not env.command_labels:
        raise ValueError(f"{type(env).__name__} takes no command (Env.command_labels is empty)")
    return BatchedEnv(env, episode_length or env.episode_length, features, starts, start_share, command)


def termination(state: State) -> jax.Array:
    """1.0 where the episode ended by a fall or blow-up (no bootstrap), 0.0 on truncation."""
    return state.done * (1.0 - state.info["truncation"])
