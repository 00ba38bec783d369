"""Quick-verify: cheap checks that an env is sane before spending hours training on it.

``run_checks(env, seed=..., num_envs=...)`` works on any ``Env`` (generic checks) and adds
robot checks when the env is a ``WildRobotEnv`` (standing at home, falling after a strong push).
Every rollout goes through ONE jitted function (a ``lax.scan`` of the vmapped step over a fixed
number of steps), so the whole run compiles the env's step once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from wildrobot.envs.core import Env, State

STAND_SECONDS = 2.0
PUSH_SPEED = 3.0  # m/s, sideways: far beyond what the pose at home can catch


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str


def _finite_tree(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


class Rollout:
    """Jitted batched reset and a fixed-length rollout (``steps`` control steps of ``num_envs``)
    that returns the final state and per-env summaries. Tests share it to compile once."""

    def __init__(self, env: Env, num_envs: int, steps: int | None = None):
        # the robot module is never imported for other envs (it loads MuJoCo and MJX)
        robot_mod = sys.modules.get("wildrobot.envs.wildrobot")
        self.env = env
        self.num_envs = num_envs
        self.is_robot = robot_mod is not None and isinstance(env, robot_mod.WildRobotEnv)
        self.steps = steps or (max(1, int(round(STAND_SECONDS / env.dt))) if self.is_robot else 50)
        self.reset = jax.jit(jax.vmap(env.reset))

        def rollout(state: State, actions: jax.Array):
            def body(s, a):
                s = jax.vmap(env.step_in_episode)(s, a)  # no auto-reset here: episodes run on
                obs_ok = jax.vmap(_finite_tree)(s.obs)
                rew_ok = jax.vmap(_finite_tree)((s.reward, s.metrics))
                return s, (s.done, obs_ok, rew_ok)

            final, (done, obs_ok, rew_ok) = jax.lax.scan(body, state, actions)
            return final, {
                "done_any": jnp.any(done > 0, axis=0),
                "done_values_ok": jnp.all((done == 0) | (done == 1), axis=0),
                "obs_finite": jnp.all(obs_ok, axis=0),
                "metrics_finite": jnp.all(rew_ok, axis=0),
                "first_done": jnp.argmax(done > 0, axis=0),
            }

        self.run = jax.jit(rollout)

    def hold_pushes(self, s: State) -> State:
        """The same states with the robot's random pushes held off for the rollout."""
        if self.is_robot and "push_countdown" in s.info:
            return s.replace(info=dict(s.info, push_countdown=jnp.full_like(s.info["push_countdown"], 1 << 30)))
        return s


def _check(name: str, passed, detail: str) -> CheckResult:
    return CheckResult(name, bool(passed), detail)


def run_checks(env: Env, *, seed: int, num_envs: int) -> list[CheckResult]:
    r = Rollout(env, num_envs)
    is_robot, steps = r.is_robot, r.steps
    results: list[CheckResult] = []
    key = jax.random.key(seed)
    k_reset, k_act, k_other = jax.random.split(key, 3)
    n, a = num_envs, env.action_size

    state = r.reset(jax.random.split(k_reset, n))
    sizes = env.observation_size
    got = {k: tuple(v.shape) for k, v in state.obs.items()}
    want = {k: (n, sizes[k]) for k in sizes}
    shapes_ok = got == want and state.reward.shape == (n,) and state.done.shape == (n,)
    stepped, _ = jax.eval_shape(r.run, state, jnp.zeros((steps, n, a)))
    same_struct = jax.tree.structure(stepped) == jax.tree.structure(state) and all(
        x.shape == y.shape and x.dtype == y.dtype for x, y in zip(jax.tree.leaves(stepped), jax.tree.leaves(state))
    )
    results.append(
        _check(
            "shapes as declared",
            shapes_ok and same_struct,
            f"obs {got} (declared {sizes}), action {a}; reset/step state structure "
            f"{'identical' if same_struct else 'DIFFERS'}",
        )
    )

    # zero and random actions; robot pushes are held off so "zero action" also means "standing"
    hold_pushes = r.hold_pushes
    _, zero = r.run(hold_pushes(state), jnp.zeros((steps, n, a)))
    rand_actions = jax.random.uniform(k_act, (steps, n, a), minval=-1.0, maxval=1.0)
    _, rand = r.run(state, rand_actions)
    for label, out in (("zero", zero), ("random", rand)):
        results.append(
            _check(
                f"observations finite ({label} actions)",
                np.all(out["obs_finite"]),
                f"{int(np.sum(out['obs_finite']))}/{n} envs finite over {steps} steps",
            )
        )
        results.append(
            _check(
                f"reward and every reward term finite ({label} actions)",
                np.all(out["metrics_finite"]),
                f"{int(np.sum(out['metrics_finite']))}/{n} envs finite; terms: "
                + ", ".join(k for k in state.metrics if k.startswith("reward/")),
            )
        )

    other = r.reset(jax.random.split(k_other, n))
    obs_a = np.asarray(jnp.concatenate([state.obs[k] for k in sorted(state.obs)], axis=-1))
    obs_b = np.asarray(jnp.concatenate([other.obs[k] for k in sorted(other.obs)], axis=-1))
    distinct_within = n == 1 or len({row.tobytes() for row in obs_a}) == n
    distinct_across = not np.array_equal(obs_a, obs_b)
    results.append(
        _check(
            "resets distinct across seeds",
            distinct_within and distinct_across,
            f"{len({row.tobytes() for row in obs_a})}/{n} distinct reset observations in a batch; "
            f"another seed gives {'different' if distinct_across else 'THE SAME'} ones",
        )
    )

    done_ok = np.all(zero["done_values_ok"]) and np.all(rand["done_values_ok"])
    results.append(
        _check(
            "terminations reported as 0/1",
            done_ok and state.done.dtype == jnp.float32,
            f"done dtype {state.done.dtype}; random actions ended {int(np.sum(rand['done_any']))}/{n} "
            f"episodes within {steps} steps",
        )
    )

    if is_robot:
        stood = ~zero["done_any"]
        results.append(
            _check(
                f"stands at home with zero action for {STAND_SECONDS:g} s",
                np.all(stood),
                f"{int(np.sum(stood))}/{n} envs stood {steps} steps ({steps * env.dt:g} s) without termination",
            )
        )
        p = env.physics
        qvel = state.data.qvel.at[:, p.root_dof + 1].set(PUSH_SPEED)
        pushed = hold_pushes(state.replace(data=state.data.replace(qvel=qvel)))
        _, out = r.run(pushed, jnp.zeros((steps, n, a)))
        fell = out["done_any"]
        when = np.asarray(out["first_done"])[np.asarray(fell)] * env.dt
        results.append(
            _check(
                "a strong push makes it fall and terminate",
                np.all(fell),
                f"{int(np.sum(fell))}/{n} envs terminated after a {PUSH_SPEED:g} m/s sideways push"
                + (f" (after {when.min():.2f}-{when.max():.2f} s)" if len(when) else ""),
            )
        )
    return results


def format_report(results: list[CheckResult]) -> str:
    width = max(len(r.name) for r in results) if results else 0
    lines = [f"{'PASS' if r.passed else 'FAIL'}  {r.name:<{width}}  {r.detail}" for r in results]
    failed = sum(not r.passed for r in results)
    lines.append(f"quick-verify: {len(results) - failed}/{len(results)} checks passed" + (f", {failed} FAILED" if failed else ""))
    return "\n".join(lines)
