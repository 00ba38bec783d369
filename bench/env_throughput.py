"""Batched WildRobot env steps/s next to the bare batched physics of the same model, same run.

    uv run python bench/env_throughput.py --num-envs 256 1024 4096 --steps 20 [--backend auto|mjx|mujoco]

Env side: ``wrap_for_training(env)`` (vmapped step with observations, rewards, domain
randomisation, pushes, noise, and the auto-reset that calls ``reset`` for every env every step),
scanned over ``--steps`` control steps with random actions. Bare side: the same model, the same
substeps of the physics per control step (``physics.step``: MJX in chunks on CPU, or MuJoCo C), nothing else,
from the env's own reset states towards the servo targets of the same random actions, so that
both sides ask the solver for the same work (MJX's Newton loop stops early once a chunk
converges). For reference, also a bare side that holds every robot still at home.
The timed calls of the two sides alternate; steps/s are the best of ``--repeats`` calls, the ratio
is the median over rounds of bare time / env time of calls made back to back (it follows a machine
whose speed drifts between minutes better than the ratio of the bests, which is printed too).
The last line holds the headline figures as name=value pairs.
"""

from __future__ import annotations

import argparse
import jax
import jax.numpy as jnp
from common import bare_physics_rollout, paired_ratio, random_action_rollout, random_actions, timed_rounds

from wildrobot.envs.wildrobot import WildRobotEnv
from wildrobot.envs.wildrobot_config import WildRobotEnvConfig
from wildrobot.envs.physics import default_chunk
from wildrobot.envs.wrappers import wrap_for_training
from wildrobot.jax_setup import configure_jax


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num-envs", type=int, nargs="+", default=[256, 1024, 4096])
    ap.add_argument("--steps", type=int, default=20, help="control steps per timed call")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-randomization", action="store_true", help="DR, pushes and noise off")
    ap.add_argument("--backend", default="auto", help="physics backend (env.sim.backend): auto, mjx or mujoco")
    args = ap.parse_args()

    configure_jax()

    cfg = WildRobotEnvConfig()
    cfg.sim.backend = args.backend
    if args.no_randomization:
        cfg.randomization.enabled = cfg.push.enabled = cfg.noise.enabled = False
    env = WildRobotEnv(cfg)
    chunk = default_chunk()
    batched = wrap_for_training(env)
    phys, substeps, T = env.physics, cfg.sim.substeps, args.steps

    # as in training: physics in chunks on CPU (physics.vmap_in_chunks)
    env_rollout = jax.jit(random_action_rollout(batched, T))

    bare_rollout = bare_physics_rollout(lambda d, c: phys.step(phys.model, d, c, substeps))

    reset = jax.jit(batched.reset)
    figures = {}
    print(
        f"devices={jax.devices()} substeps={substeps} dt={env.dt} "
        f"randomization={not args.no_randomization} backend={phys.backend} chunk={chunk if phys.backend == 'mjx' and chunk else 'none'}"
    )
    for n in args.num_envs:
        state = reset(jax.random.split(jax.random.key(0), n))
        key = jax.random.key(1)
        # the env_rollout's own actions (same keys, same draws) as servo targets
        actions = jax.vmap(lambda k: random_actions(k, n, env.action_size))(jax.random.split(key, T))
        walk_ctrl = env.servo_targets(actions)
        home_data = jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), phys.home_data)
        home_ctrl = jnp.broadcast_to(jnp.asarray(env.desc.home), (T, n, env.action_size))
        t = timed_rounds(
            {
                "env": (env_rollout, state, key),
                "bare": (bare_rollout, state.data, walk_ctrl),
                "bare_still": (bare_rollout, home_data, home_ctrl),
                "reset": (reset, jax.random.split(jax.random.key(2), n)),
            },
            repeats=args.repeats,
        )
        env_sps, bare_sps, still_sps = (n * T / min(t[k]) for k in ("env", "bare", "bare_still"))
        ratio = paired_ratio(t, slow="env", fast="bare")
        figures[f"ratio_{n}"] = f"{ratio:.3f}"
        figures[f"env_sps_{n}"] = f"{env_sps:.0f}"
        figures[f"bare_sps_{n}"] = f"{bare_sps:.0f}"
        print(
            f"num_envs={n}: env {env_sps:.0f} steps/s, bare physics {bare_sps:.0f} steps/s (best of {args.repeats}); "
            f"ratio {ratio:.3f} (median of back-to-back pairs; ratio of the bests {env_sps / bare_sps:.3f}); "
            f"bare, robots still at home: {still_sps:.0f} steps/s, ratio {paired_ratio(t, slow='env', fast='bare_still'):.3f}; "
            f"batched reset alone {min(t['reset']) * 1e3:.1f} ms",
            flush=True,
        )
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
