"""Proximal Policy Optimisation (Schulman et al. 2017), as pure functions over one train state.

One ``iteration`` = roll the batched env forward ``unroll_length`` steps with the current
policy (``lax.scan``), compute GAE, then ``num_epochs`` passes of shuffled minibatch Adam
updates of the clipped surrogate + value loss - entropy bonus. The runner scans a chunk of
iterations inside one ``jit``; nothing here does I/O.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from wildrobot.algos.evaluation import run_episodes
from wildrobot.algos.gae import compute_gae
from wildrobot.algos.networks import MLP
from wildrobot.algos.normalize import init_stats, normalize, update_stats
from wildrobot.algos.ppo_config import PPOConfig
from wildrobot.envs.core import Env, State
from wildrobot.envs.wrappers import BatchedEnv, termination

_LOG_2PI_E = math.log(2.0 * math.pi * math.e)


@flax.struct.dataclass
class PPOState:
    params: dict  # {"policy": ..., "log_std": [A], "value": ...}
    opt_state: Any
    obs_stats: dict  # {"actor": RunningStats, "critic": RunningStats}
    env_state: State
    key: jax.Array
    iteration: jax.Array
    learning_rate: jax.Array  # changes over time with the linear and adaptive_kl schedules


def gaussian_log_prob(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * math.log(2.0 * math.pi), axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    return jnp.sum(log_std + 0.5 * _LOG_2PI_E, axis=-1)


def gaussian_kl(mean_old, log_std_old, mean_new, log_std_new) -> jax.Array:
    """KL(old || new) of diagonal Gaussians, summed over action dimensions."""
    var_old, var_new = jnp.exp(2 * log_std_old), jnp.exp(2 * log_std_new)
    return jnp.sum(log_std_new - log_std_old + (var_old + (mean_old - mean_new) ** 2) / (2 * var_new) - 0.5, axis=-1)


def adapt_learning_rate(lr: jax.Array, kl: jax.Array, desired_kl: float) -> jax.Array:
    """The adaptive-KL rule (Schulman et al. 2017, as in rsl_rl): the rate / 1.5 when the policy's KL
    from the rollout's policy is above twice ``desired_kl``, x 1.5 when below half of it, kept in
    [1e-5, 1e-2]. The update measures the KL of each minibatch at the parameters before its step and
    applies the new rate from the next minibatch on (rsl_rl applies it to the same minibatch's step)."""
    lr = jnp.where(kl > 2.0 * desired_kl, lr / 1.5, jnp.where(kl < 0.5 * desired_kl, lr * 1.5, lr))
    return jnp.clip(lr, 1e-5, 1e-2)


def ppo_loss(params, batch: dict, apply_policy, apply_value, cfg: PPOConfig,
             mirror_action=None) -> tuple[jax.Array, dict]:
    """Clipped surrogate + (optionally clipped) value loss - entropy bonus, on one minibatch;
    with ``mirror_action``, plus ``symmetry_coef`` times the mirror loss of Yu, Turk & Liu (2018):
    the policy's mean action for the mirrored observation should be the mirrored mean action.

    ``batch`` holds normalised observations ("actor", "critic", and "actor_mirrored" for the
    mirror loss), the sampled "action", its behaviour "log_prob", the rollout-time "value", and
    "advantage" and "target" from GAE."""
    mean = apply_policy(params["policy"], batch["actor"])
    log_std = params["log_std"]
    log_prob = gaussian_log_prob(batch["action"], mean, log_std)
    log_ratio = log_prob - batch["log_prob"]
    ratio = jnp.exp(log_ratio)

    adv = batch["advantage"]
    if cfg.normalize_advantages:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip_epsilon, 1 + cfg.clip_epsilon) * adv)
    policy_loss = -jnp.mean(surrogate)

    value = apply_value(params["value"], batch["critic"])
    value_error = (value - batch["target"]) ** 2
    if cfg.clip_value_loss:
        clipped = batch["value"] + jnp.clip(value - batch["value"], -cfg.clip_epsilon, cfg.clip_epsilon)
        value_error = jnp.maximum(value_error, (clipped - batch["target"]) ** 2)
    value_loss = 0.5 * jnp.mean(value_error)

    entropy = jnp.mean(gaussian_entropy(log_std))
    total = policy_loss + cfg.value_loss_coef * value_loss - cfg.entropy_coef * entropy
    symmetry = {}
    if mirror_action is not None:
        mirrored_mean = apply_policy(params["policy"], batch["actor_mirrored"])
        symmetry["loss/symmetry"] = jnp.mean(jnp.sum((mirrored_mean - mirror_action(mean)) ** 2, axis=-1))
        total = total + cfg.symmetry_coef * symmetry["loss/symmetry"]
    metrics = {
        **symmetry,
        "loss/policy": policy_loss,
        "loss/value": value_loss,
        "loss/entropy": entropy,
        "loss/total": total,
        "ppo/approx_kl": jnp.mean((ratio - 1) - log_ratio),
        "ppo/clip_fraction": jnp.mean((jnp.abs(ratio - 1) > cfg.clip_epsilon).astype(jnp.float32)),
        "ppo/kl": jnp.mean(gaussian_kl(batch["action_mean"], batch["log_std"], mean, log_std)),
    }
    return total, metrics


def by_shard(x: jax.Array, shards: int) -> jax.Array:
    """A rollout's samples (T, N, ...) -> (shards, T * N // shards, ...): the N envs as ``shards``
    equal groups of consecutive envs (one per device when the env batch is sharded,
    ``wildrobot.train.sharding``), each group's samples time-major. One group: the rollout
    flattened time-major, (1, T * N, ...)."""
    steps, envs = x.shape[:2]
    x = x.reshape(steps, shards, envs // shards, *x.shape[2:]).swapaxes(0, 1)
    return x.reshape(shards, steps * envs // shards, *x.shape[3:])


def shuffled_minibatches(key: jax.Array, batch: dict, num_minibatches: int, shards: int = 1) -> dict:
    """A rollout's samples (leaves of shape (T, N, ...): T steps of N envs) in a random order, split
    into ``num_minibatches`` minibatches: leaves of shape (num_minibatches, T * N // num_minibatches, ...).

    The samples of each of the ``shards`` groups of envs (``by_shard``) are shuffled among
    themselves and every minibatch takes an equal slice of every group, so that building them moves
    no sample from one device to another. One group: a random permutation of all T * N samples."""
    steps, envs = jax.tree.leaves(batch)[0].shape[:2]
    per_shard = steps * envs // shards
    rows = jnp.broadcast_to(jnp.arange(per_shard), (shards, per_shard))
    order = jax.random.permutation(key, rows, axis=1, independent=True)  # one permutation per group

    def arrange(x: jax.Array) -> jax.Array:
        x = jax.vmap(lambda group, perm: group[perm])(by_shard(x, shards), order)
        x = x.reshape(shards, num_minibatches, per_shard // num_minibatches, *x.shape[2:]).swapaxes(0, 1)
        return x.reshape(num_minibatches, -1, *x.shape[3:])  # each minibatch: the groups' slices, in group order

    return jax.tree.map(arrange, batch)


class PPO:
    """PPO; its extension points (``shape_rewards``, ``auxiliary``, ``auxiliary_step``,
    ``with_auxiliary``) let an algorithm add state and a reward term to it without copying its
    rollout, loss or update (``wildrobot.algos.amp``)."""

    best_metric = "eval/return"
    # The carry's fields whose every leaf has the env batch as its leading axis (the env state, with
    # its observations and per-env episode statistics): what ``wildrobot.train.sharding`` splits
    # over devices with trainer.devices > 1; everything else in the carry is replicated.
    batched_fields: tuple[str, ...] = ("env_state",)

    def __init__(self, cfg: PPOConfig, env: BatchedEnv, num_envs: int, total_iterations: int,
                 eval_env: Env | None = None):
        self.cfg = cfg
        self.env = env
        self.eval_env = eval_env
        self.num_envs = num_envs
        self.total_iterations = total_iterations
        self.env_steps_per_iteration = num_envs * cfg.unroll_length
        self.critic_key = "critic" if cfg.privileged_critic else "actor"
        # The env batch's groups of consecutive envs, one per device (the runner sets it for
        # trainer.devices > 1, before anything is traced): minibatches are shuffled within each.
        self.shards = 1
        self.headline_metrics = (
            ("return", "episode/return", "{:.2f}"),
            ("len", "episode/length", "{:.0f}"),
            *((label, f"env/{key}", fmt) for label, key, fmt in env.headline_metrics),
            ("falls", "episode/fall", "{:.2f}"),
            ("eval", "eval/return", "{:.2f}"),
        )
        self.policy_net = MLP(tuple(cfg.policy.hidden_sizes), env.action_size, cfg.policy.activation, out_scale=0.01)
        self.value_net = MLP(tuple(cfg.value.hidden_sizes), 1, cfg.value.activation)
        self.optimizer = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.scale_by_adam())
        # The mirror loss needs the env's left/right mirror; an env without one (a Playground or
        # registered env) trains without the loss, and the run says so.
        self.mirror = env.mirror if cfg.symmetry_coef > 0 else None
        self.notes: tuple[str, ...] = ()
        if cfg.symmetry_coef > 0 and env.mirror is None:
            self.notes = (f"Note: algo.symmetry_coef={cfg.symmetry_coef} is not applied: this env has no "
                          f"left/right mirror (Env.mirror), so the mirror loss is off.",)

    # -- networks -----------------------------------------------------------------------------
    def apply_policy(self, policy_params, actor_obs: jax.Array) -> jax.Array:
        return self.policy_net.apply(policy_params, actor_obs)

    def apply_value(self, value_params, critic_obs: jax.Array) -> jax.Array:
        return self.value_net.apply(value_params, critic_obs)[..., 0]

    def deterministic_action(self, params: dict, obs_stats: dict, actor_obs: jax.Array) -> jax.Array:
        """The deployable policy: normalise the raw actor observation (as in training), take the mean, clip."""
        if self.cfg.normalize_observations:
            actor_obs = normalize(obs_stats["actor"], actor_obs)
        return jnp.clip(self.apply_policy(params["policy"], actor_obs), -1, 1)

    def _normalized(self, stats: dict, obs: dict) -> dict:
        if not self.cfg.normalize_observations:
            return {"actor": obs["actor"], "critic": obs[self.critic_key]}
        return {
            "actor": normalize(stats["actor"], obs["actor"]),
            "critic": normalize(stats["critic"], obs[self.critic_key]),
        }

    # -- init ---------------------------------------------------------------------------------
    def init(self, key: jax.Array) -> PPOState:
        key, k_policy, k_value, k_env = jax.random.split(key, 4)
        sizes = self.env.observation_size
        critic_size = sizes[self.critic_key]
        params = {
            "policy": self.policy_net.init(k_policy, jnp.zeros(sizes["actor"])),
            "log_std": jnp.full(self.env.action_size, self.cfg.init_log_std, jnp.float32),
            "value": self.value_net.init(k_value, jnp.zeros(critic_size)),
        }
        env_state = self.env.reset(jax.random.split(k_env, self.num_envs))
        return PPOState(
            params=params,
            opt_state=self.optimizer.init(params),
            obs_stats={"actor": init_stats(sizes["actor"]), "critic": init_stats(critic_size)},
            env_state=env_state,
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            learning_rate=jnp.asarray(self.cfg.learning_rate, jnp.float32),
        )

    # -- one iteration ------------------------------------------------------------------------
    def rollout(self, state: PPOState, key: jax.Array) -> tuple[State, dict, dict]:
        params, stats = state.params, state.obs_stats

        def one_step(env_state: State, step_key):
            obs = self._normalized(stats, env_state.obs)
            mean = self.apply_policy(params["policy"], obs["actor"])
            noise = jax.random.normal(step_key, mean.shape)
            action = mean + jnp.exp(params["log_std"]) * noise
            nxt = self.env.step(env_state, jnp.clip(action, -1.0, 1.0))
            transition = {
                "obs": env_state.obs,
                "final_obs": nxt.info["final_obs"],
                "action": action,
                "action_mean": mean,
                "log_prob": gaussian_log_prob(action, mean, params["log_std"]),
                "reward": nxt.reward * self.cfg.reward_scale,
                "done": nxt.done,
                "termination": termination(nxt),
            }
            ended = nxt.info["episode_done"]
            summary = {f"env/{k}": jnp.mean(v) for k, v in nxt.metrics.items()}
            summary["episode/count"] = jnp.sum(ended)
            for k, v in nxt.info["episode_metrics"].items():
                summary[f"episode/{k}"] = jnp.sum(v * ended)
            return nxt, (transition, summary)

        keys = jax.random.split(key, self.cfg.unroll_length)
        env_state, (traj, summary) = jax.lax.scan(one_step, state.env_state, keys)
        # Average per iteration; episode sums become means over the episodes that ended.
        count = jnp.sum(summary["episode/count"])
        metrics = {}
        for k, v in summary.items():
            if k == "episode/count":
                metrics[k] = count
            elif k.startswith("episode/"):
                metrics[k] = jnp.sum(v) / jnp.maximum(count, 1.0)
            else:
                metrics[k] = jnp.mean(v)
        return env_state, traj, metrics

    def iteration(self, state: PPOState) -> tuple[PPOState, dict]:
        key, k_rollout, k_update = jax.random.split(state.key, 3)
        env_state, traj, metrics = self.rollout(state, k_rollout)
        state, update_metrics = self.update(state.replace(env_state=env_state, key=key), traj, k_update)
        return state, {**metrics, **update_metrics}

    # -- extension points: no-ops for PPO itself ---------------------------------------------
    def shape_rewards(self, state: PPOState, traj: dict) -> tuple[PPOState, dict, dict]:
        """(state, trajectory with its rewards reshaped, metrics), before GAE; PPO keeps them."""
        return state, traj, {}

    def auxiliary(self, state: PPOState) -> Any:
        """State of a second learner updated between PPO's minibatches (None: there is none)."""
        return None

    def auxiliary_step(self, aux: Any) -> tuple[Any, dict]:
        """One update of the second learner, after each PPO minibatch."""
        return aux, {}

    def with_auxiliary(self, state: PPOState, aux: Any) -> PPOState:
        return state

    # -- the update ---------------------------------------------------------------------------
    def update(self, state: PPOState, traj: dict, key: jax.Array) -> tuple[PPOState, dict]:
        """GAE on one rollout, then ``num_epochs`` passes of shuffled minibatch updates."""
        cfg = self.cfg
        state, traj, shaping_metrics = self.shape_rewards(state, traj)
        params, stats = state.params, state.obs_stats
        obs = self._normalized(stats, traj["obs"])
        final_obs = self._normalized(stats, traj["final_obs"])
        values = self.apply_value(params["value"], obs["critic"])
        next_values = self.apply_value(params["value"], final_obs["critic"])
        advantages, targets = compute_gae(
            traj["reward"], values, next_values, traj["termination"], traj["done"], cfg.discount, cfg.gae_lambda
        )

        batch = {
            "actor": obs["actor"],
            "critic": obs["critic"],
            "action": traj["action"],
            "action_mean": traj["action_mean"],
            "log_std": jnp.broadcast_to(params["log_std"], traj["action"].shape),
            "log_prob": traj["log_prob"],
            "value": values,
            "advantage": advantages,
            "target": targets,
        }
        if self.mirror is not None:  # mirrored raw observations, normalised like the originals
            mirrored = self.mirror.actor_obs(traj["obs"]["actor"])
            batch["actor_mirrored"] = normalize(stats["actor"], mirrored) if cfg.normalize_observations else mirrored

        lr = self._scheduled_lr(state)
        mirror_action = self.mirror.action if self.mirror is not None else None

        def minibatch_step(carry, mb):
            params, opt_state, lr, aux = carry
            grads, mb_metrics = jax.grad(ppo_loss, has_aux=True)(params, mb, self.apply_policy, self.apply_value, cfg,
                                                                 mirror_action)
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, updates))
            if cfg.lr_schedule == "adaptive_kl":  # sets the rate of the next minibatch's step
                lr = adapt_learning_rate(lr, mb_metrics["ppo/kl"], cfg.desired_kl)
            mb_metrics["optim/grad_norm"] = optax.tree.norm(grads)
            aux, aux_metrics = self.auxiliary_step(aux)
            return (params, opt_state, lr, aux), {**mb_metrics, **aux_metrics}

        def epoch(carry, epoch_key):
            return jax.lax.scan(minibatch_step, carry, shuffled_minibatches(epoch_key, batch, cfg.num_minibatches,
                                                                             self.shards))

        (params, opt_state, lr, aux), update_metrics = jax.lax.scan(
            epoch, (params, state.opt_state, lr, self.auxiliary(state)), jax.random.split(key, cfg.num_epochs)
        )
        metrics = {**shaping_metrics, **jax.tree.map(jnp.mean, update_metrics)}

        # The normaliser moves after the update, so every ratio above used the rollout's statistics.
        # Flattened group by group: a time-major flattening of env-sharded arrays would gather them.
        def flat(x: jax.Array) -> jax.Array:
            return by_shard(x, self.shards).reshape(-1, *x.shape[2:])

        if cfg.normalize_observations:
            stats = {
                "actor": update_stats(stats["actor"], flat(traj["obs"]["actor"])),
                "critic": update_stats(stats["critic"], flat(traj["obs"][self.critic_key])),
            }
        flat_targets = flat(targets)
        metrics["ppo/explained_variance"] = 1.0 - jnp.var(flat_targets - flat(values)) / (jnp.var(flat_targets) + 1e-8)
        metrics["ppo/learning_rate"] = lr
        metrics["ppo/action_std"] = jnp.mean(jnp.exp(params["log_std"]))
        new_state = state.replace(params=params, opt_state=opt_state, obs_stats=stats,
                                  iteration=state.iteration + 1, learning_rate=lr)
        return self.with_auxiliary(new_state, aux), metrics

    def _scheduled_lr(self, state: PPOState) -> jax.Array:
        if self.cfg.lr_schedule == "linear":
            frac = 1.0 - state.iteration.astype(jnp.float32) / self.total_iterations
            return jnp.asarray(self.cfg.learning_rate * jnp.maximum(frac, 0.0), jnp.float32)
        return state.learning_rate  # constant, or adapted by the KL rule

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, state: PPOState, key: jax.Array) -> dict | None:
        """The deterministic policy for one episode on each of ``num_eval_envs`` envs of its own
        (randomisation, pushes and noise off), commands drawn as in training."""
        if self.eval_env is None:
            return None
        steps = self.cfg.eval_steps or self.eval_env.episode_length
        policy = functools.partial(self.deterministic_action, state.params, state.obs_stats)
        totals, _ = run_episodes(self.eval_env, policy, jax.random.split(key, self.cfg.num_eval_envs), steps,
                                 summed=("tracking/",))
        length = jnp.maximum(totals["length"], 1.0)
        out = {"eval/return": jnp.mean(totals["return"]), "eval/length": jnp.mean(totals["length"]),
               "eval/fall_rate": jnp.mean(totals["fall"])}
        out.update({f"eval/{k}": jnp.mean(totals[k] / length) for k in totals if k.startswith("tracking/")})
        return out
