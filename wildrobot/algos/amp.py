"""Adversarial Motion Priors (Peng et al. 2021) on top of PPO, through PPO's extension points: no
second copy of PPO's rollout, loss, update or evaluation.

A discriminator D scores transitions (s, s') of the env's state features (``Env.state_features``,
the function reference frames go through too), normalised by a running normaliser:

- loss: least squares with targets +1 for reference transitions and -1 for the policy's,
  ``0.5 * (E_ref[(D - 1)^2] + E_pol[(D + 1)^2])``, plus ``w/2 * E_ref[|grad_x D|^2]`` (gradient
  penalty on reference samples), plus ``logit_regularization * |W_out|^2``; AdamW adds weight decay;
- style reward: ``r_style = scale * dt * max(0, 1 - (D(s, s') - 1)^2 / 4)``, blended with the task
  reward as ``task_weight * r_task + style_weight * r_style`` before GAE (``shape_rewards``), with
  the discriminator and normaliser that judged the rollout (those before this iteration's update);
- negatives: a ring buffer of past policy transitions in the carry (``replay``), sampled only
  where filled; positives: the dataset's transitions, by their weights;
- schedule: ``updates_per_minibatch`` discriminator updates after each PPO minibatch
  (``auxiliary_step``); the normaliser and the buffer take each rollout once, after its reward.

Everything is in the carry (``AMPState``), so a checkpoint resumes exactly as PPO's does.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from wildrobot.algos.amp_config import PPOAMPConfig
from wildrobot.algos.networks import MLP
from wildrobot.algos.normalize import RunningStats, init_stats, normalize, update_stats
from wildrobot.algos.ppo import PPO, PPOState
from wildrobot.envs.core import Env
from wildrobot.envs.wrappers import COMMAND, FEATURES, BatchedEnv
from wildrobot.errors import ConfigError


SCORE_BLOCK = 1024  # rows of a rollout the discriminator scores at a time (``PPOAMP.score``)


@flax.struct.dataclass
class DiscriminatorState:
    params: dict
    opt_state: Any
    stats: RunningStats  # running mean / variance of the state features (policy and reference)
    replay: jax.Array  # (replay_size, 2, F): past policy transitions (s, s'), raw features
    replay_next: jax.Array  # int32: the slot the next transition is written to
    replay_count: jax.Array  # int32: how many slots hold a transition
    key: jax.Array


@flax.struct.dataclass
class AMPState(PPOState):
    amp: DiscriminatorState


# -- the math, as pure functions (tests/test_amp.py checks each against a hand computation) ---------
def style_reward(d: jax.Array) -> jax.Array:
    """max(0, 1 - (d - 1)^2 / 4): 1 at the reference target d = +1, 0 at the policy target d = -1."""
    return jnp.maximum(0.0, 1.0 - 0.25 * (d - 1.0) ** 2)


def command_coverage(command: jax.Array, clip_commands: jax.Array, widths: jax.Array) -> jax.Array:
    """How near each command (..., C) lies to the reference's commands (K, C), in (0, 1]:
    exp(-1/2 min_k sum(((command - clip_commands[k]) / widths)^2)), 1 at a clip's command."""
    z = (command[..., None, :] - clip_commands) / widths
    return jnp.exp(-0.5 * jnp.min(jnp.sum(z * z, axis=-1), axis=-1))


def output_kernel(params: dict) -> jax.Array:
    """The weights of the discriminator's last (linear) layer, which logit regularisation shrinks."""
    layers = params["params"]
    return layers[f"Dense_{len(layers) - 1}"]["kernel"]


def discriminator_loss(params: dict, apply: Callable, reference: jax.Array, policy: jax.Array,
                       gradient_penalty: float, logit_regularization: float) -> tuple[jax.Array, dict]:
    """The discriminator's loss on normalised inputs ``reference`` and ``policy`` (B, 2F): half the
    least squares (targets +1 / -1), plus ``gradient_penalty``/2 times the mean squared input gradient
    at the reference samples (against the halved fit: the paper's weight is twice ``gradient_penalty``),
    plus ``logit_regularization`` times the output layer's squared weights."""
    # D's input gradient at each reference sample from the same forward pass as its scores: the
    # samples are independent, so the gradient of sum(D) with respect to row i is grad D(x_i)
    d_ref, pull_back = jax.vjp(lambda x: apply(params, x), reference)
    d_pol = apply(params, policy)
    least_squares = 0.5 * (jnp.mean((d_ref - 1.0) ** 2) + jnp.mean((d_pol + 1.0) ** 2))
    (grads,) = pull_back(jnp.ones_like(d_ref))
    penalty = jnp.mean(jnp.sum(grads**2, axis=-1))
    logit = jnp.sum(output_kernel(params) ** 2)
    total = least_squares + 0.5 * gradient_penalty * penalty + logit_regularization * logit
    metrics = {
        "amp/loss": total,
        "amp/least_squares": least_squares,
        "amp/gradient_penalty": penalty,
        "amp/score_reference": jnp.mean(d_ref),
        "amp/score_policy": jnp.mean(d_pol),
        "amp/accuracy_reference": jnp.mean((d_ref > 0).astype(jnp.float32)),
        "amp/accuracy_policy": jnp.mean((d_pol < 0).astype(jnp.float32)),
    }
    return total, metrics


def replay_insert(replay: jax.Array, next_slot: jax.Array, count: jax.Array, items: jax.Array):
    """``items`` (n, ...) written into the ring buffer ``replay`` from ``next_slot`` on, wrapping round
    (the newest ``len(replay)`` when there are more); returns (replay, next_slot, count)."""
    size = replay.shape[0]
    if items.shape[0] > size:
        items = items[-size:]
    n = items.shape[0]
    slots = (next_slot + jnp.arange(n)) % size
    return replay.at[slots].set(items), (next_slot + n) % size, jnp.minimum(count + n, size)


def replay_sample(key: jax.Array, replay: jax.Array, count: jax.Array, batch: int) -> jax.Array:
    """``batch`` transitions drawn uniformly (with replacement) from the filled slots only."""
    return replay[jax.random.randint(key, (batch,), 0, jnp.maximum(count, 1))]


class PPOAMP(PPO):
    """PPO whose reward adds a motion-style term from a discriminator trained beside it.

    ``env`` is the batched training env with its features observation (``wrap_for_training(...,
    features=True)``, and ``command=True`` when ``style_command_widths`` is set); ``reference`` the
    dataset's transitions (M, 2, F), ``reference_weights`` their sampling probabilities (M,) and
    ``reference_commands`` the commands its clips realise (K, C), which ``style_command_widths`` needs."""

    def __init__(self, cfg: PPOAMPConfig, env: BatchedEnv, num_envs: int, total_iterations: int,
                 reference: np.ndarray, reference_weights: np.ndarray | None = None, eval_env: Env | None = None,
                 reference_commands: np.ndarray | None = None):
        super().__init__(cfg, env, num_envs, total_iterations, eval_env=eval_env)
        size = env.feature_size
        if not getattr(env, "features", False) or size <= 0:
            raise ConfigError("algo=ppo_amp needs the env's state features in the training env "
                              "(wrap_for_training(env, features=True)) and an env that has them")
        reference = np.asarray(reference, np.float32)
        if reference.ndim != 3 or reference.shape[1:] != (2, size) or len(reference) == 0:
            raise ConfigError(f"the reference transitions have shape {reference.shape}; this env's features need "
                              f"(M, 2, {size}) with M >= 1")
        weights = np.full(len(reference), 1.0 / len(reference)) if reference_weights is None else reference_weights
        self.reference = jnp.asarray(reference)
        cdf = np.cumsum(np.asarray(weights, np.float64))
        self.reference_cdf = jnp.asarray(cdf / cdf[-1], jnp.float32)
        self.feature_size = size
        d = cfg.discriminator
        self.disc_net = MLP(tuple(d.hidden_sizes), 1, d.activation)
        self.disc_optimizer = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm),
                                          optax.adamw(d.learning_rate, weight_decay=d.weight_decay))
        self.style_scale = cfg.style_reward_scale * env.dt  # per second, as the env's terms
        self.clip_commands = self.command_widths = None
        if cfg.style_command_widths:
            labels = env.env.command_labels
            if len(cfg.style_command_widths) != len(labels):
                raise ConfigError(f"algo.style_command_widths={list(cfg.style_command_widths)} has "
                                  f"{len(cfg.style_command_widths)} widths; this env's command has {len(labels)} "
                                  f"components ({', '.join(labels) or 'none'}): give one width each, or [] for "
                                  "the same style weight at every command")
            commands = None if reference_commands is None else np.asarray(reference_commands, np.float32)
            if commands is None or commands.ndim != 2 or commands.shape[1] != len(labels) or len(commands) == 0:
                raise ConfigError("algo.style_command_widths weighs the style reward by the reference's commands, "
                                  f"and this dataset gives none for the env's {len(labels)} components: set "
                                  "algo.style_command_widths=[] or give the clips their `command`")
            if not getattr(env, "with_command", False):
                raise ConfigError("algo.style_command_widths needs the command of each state in the training env "
                                  "(wrap_for_training(env, features=True, command=True))")
            self.clip_commands = jnp.asarray(commands)  # a repeated command changes no minimum
            self.command_widths = jnp.asarray(cfg.style_command_widths, jnp.float32)
        *head, last = self.headline_metrics  # the evaluation stays last
        self.headline_metrics = (*head, ("style", "amp/style_reward", "{:.2f}"),
                                 ("D acc", "amp/accuracy", "{:.2f}"), last)

    # -- the discriminator --------------------------------------------------------------------
    def apply_discriminator(self, params: dict, x: jax.Array) -> jax.Array:
        return self.disc_net.apply(params, x)[..., 0]

    def score(self, params: dict, x: jax.Array) -> jax.Array:
        """D on a whole rollout's inputs (..., 2F). On one CPU device, in blocks of ``SCORE_BLOCK``
        rows (the last one padded): the same scores as one pass, with each block's activations in
        the CPU's cache. Elsewhere in one pass: a GPU would run the blocks one after the other, and
        flattening env-sharded rows would gather them onto every device."""
        lead, rows = x.shape[:-1], int(np.prod(x.shape[:-1]))
        if rows <= SCORE_BLOCK or self.shards > 1 or jax.default_backend() != "cpu":
            return self.apply_discriminator(params, x)
        blocks = -(-rows // SCORE_BLOCK)
        flat = jnp.pad(x.reshape(rows, x.shape[-1]), ((0, blocks * SCORE_BLOCK - rows), (0, 0)))
        d = jax.lax.map(lambda block: self.apply_discriminator(params, block),
                        flat.reshape(blocks, SCORE_BLOCK, x.shape[-1]))
        return d.reshape(-1)[:rows].reshape(lead)

    def discriminator_input(self, stats: RunningStats, s: jax.Array, s_next: jax.Array) -> jax.Array:
        return jnp.concatenate([normalize(stats, s), normalize(stats, s_next)], axis=-1)

    def init(self, key: jax.Array) -> AMPState:
        k_ppo, k_disc, k_amp = jax.random.split(key, 3)
        base = super().init(k_ppo)
        size = self.feature_size
        params = self.disc_net.init(k_disc, jnp.zeros(2 * size))
        amp = DiscriminatorState(
            params=params,
            opt_state=self.disc_optimizer.init(params),
            stats=init_stats(size),
            replay=jnp.zeros((self.cfg.discriminator.replay_size, 2, size), jnp.float32),
            replay_next=jnp.zeros((), jnp.int32),
            replay_count=jnp.zeros((), jnp.int32),
            key=k_amp,
        )
        return AMPState(**{name: getattr(base, name) for name in base.__dataclass_fields__}, amp=amp)

    # -- PPO's extension points -----------------------------------------------------------------
    def shape_rewards(self, state: AMPState, traj: dict) -> tuple[AMPState, dict, dict]:
        """The style reward of the rollout by the discriminator that judged it, blended with the task
        reward; then the rollout's transitions go into the buffer and the normaliser."""
        cfg, amp = self.cfg, state.amp
        s, s_next = traj["obs"][FEATURES], traj["final_obs"][FEATURES]  # (T, N, F); s' before any reset
        d = self.score(amp.params, self.discriminator_input(amp.stats, s, s_next))
        r_style = style_reward(d)
        # weighed by how near the command each transition followed lies to the clips' (style_command_widths)
        coverage = (jnp.ones_like(r_style) if self.clip_commands is None
                    else command_coverage(traj["obs"][COMMAND], self.clip_commands, self.command_widths))
        paid = coverage * r_style
        shaped = paid - jnp.mean(paid) if cfg.center_style_reward else paid
        task = traj["reward"]  # the env's reward times algo.reward_scale (PPO's rollout)
        weight = cfg.style_reward_weight * self.style_ramp(state.iteration)
        # the style reward scaled as the task's, so that a reward scale keeps the blend's balance
        unit = cfg.reward_scale * self.style_scale
        reward = cfg.task_reward_weight * task + weight * unit * shaped

        key, k_ref = jax.random.split(amp.key)
        transitions = jnp.stack([s, s_next], axis=-2).reshape(-1, 2, self.feature_size)
        replay, nxt, count = replay_insert(amp.replay, amp.replay_next, amp.replay_count, transitions)
        reference = self._reference_sample(k_ref, transitions.shape[0])
        stats = update_stats(amp.stats, jnp.concatenate([transitions[:, 0], reference[:, 0]]))
        amp = amp.replace(stats=stats, replay=replay, replay_next=nxt, replay_count=count, key=key)
        metrics = {
            "amp/style_reward": jnp.mean(r_style),
            "amp/score_rollout": jnp.mean(d),
            "reward/task": jnp.mean(task),
            "reward/style": jnp.mean(unit * paid),  # in reward/task's units, before the style weight
            "amp/style_weight": weight,
            "amp/command_coverage": jnp.mean(coverage),
        }
        return state.replace(amp=amp), dict(traj, reward=reward), metrics

    def style_ramp(self, iteration: jax.Array) -> jax.Array:
        """The share of ``style_reward_weight`` applied at ``iteration``: 0 -> 1 over the first
        ``style_ramp_env_steps`` env steps (1 throughout when that is 0), in whole iterations: the share
        of the iteration that starts after ``iteration * env_steps_per_iteration`` steps."""
        if self.cfg.style_ramp_env_steps <= 0:
            return jnp.ones((), jnp.float32)
        ramp_iterations = self.cfg.style_ramp_env_steps / self.env_steps_per_iteration
        return jnp.minimum(1.0, iteration.astype(jnp.float32) / ramp_iterations)

    def auxiliary(self, state: AMPState) -> DiscriminatorState:
        return state.amp

    def auxiliary_step(self, amp: DiscriminatorState) -> tuple[DiscriminatorState, dict]:
        d = self.cfg.discriminator

        def one_update(amp: DiscriminatorState, _):
            key, k_ref, k_pol = jax.random.split(amp.key, 3)
            ref = self._reference_sample(k_ref, d.batch_size)
            pol = replay_sample(k_pol, amp.replay, amp.replay_count, d.batch_size)
            x_ref = self.discriminator_input(amp.stats, ref[:, 0], ref[:, 1])
            x_pol = self.discriminator_input(amp.stats, pol[:, 0], pol[:, 1])
            grads, metrics = jax.grad(discriminator_loss, has_aux=True)(
                amp.params, self.apply_discriminator, x_ref, x_pol, d.gradient_penalty, d.logit_regularization)
            updates, opt_state = self.disc_optimizer.update(grads, amp.opt_state, amp.params)
            params = optax.apply_updates(amp.params, updates)
            metrics["amp/accuracy"] = 0.5 * (metrics["amp/accuracy_reference"] + metrics["amp/accuracy_policy"])
            return amp.replace(params=params, opt_state=opt_state, key=key), metrics

        amp, metrics = jax.lax.scan(one_update, amp, None, length=d.updates_per_minibatch)
        return amp, jax.tree.map(jnp.mean, metrics)

    def with_auxiliary(self, state: AMPState, amp: DiscriminatorState) -> AMPState:
        return state.replace(amp=amp)

    def _reference_sample(self, key: jax.Array, count: int) -> jax.Array:
        """``count`` reference transitions drawn by their weights (inverse CDF)."""
        rows = jnp.searchsorted(self.reference_cdf, jax.random.uniform(key, (count,)), side="right")
        return self.reference[jnp.minimum(rows, len(self.reference) - 1)]
