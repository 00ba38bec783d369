"""Batched WildRobot env steps/s next to the bare batched mjx.step of the same model, same run.

    uv run python bench/env_throughput.py --num-envs 256 1024 4096 --steps 20

Env side: ``wrap_for_training(env)`` (vmapped step with observations, rewards, domain
randomisation, pushes, noise, and the auto-reset that calls ``reset`` for every env every step),
scanned over ``--steps`` control steps with random actions. Bare side: the same model, the same
substeps of ``mjx.step`` per control step, under vmap + scan, nothing else. The last line holds the
headline figures as name=value pairs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from mujoco import mjx

from wildrobot.envs.wildrobot import WildRobotEnv
from wildrobot.envs.wildrobot_config import WildRobotEnvConfig
from wildrobot.envs.wrappers import batch_map, default_chunk, wrap_for_training


def _timed(fn, *args, repeats: int):
    out = fn(*args)  # compile
    jax.block_until_ready(out)
    out = fn(*args)  # a second call: the outputs' exact types can differ from the inputs'
    jax.block_until_ready(out)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num-envs", type=int, nargs="+", default=[256, 1024, 4096])
    ap.add_argument("--steps", type=int, default=20, help="control steps per timed call")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--chunk",
        type=int,
        default=0,
        help="envs vmapped at once, as in training (0: the default, 64 on CPU, all on GPU); see docs/benchmarks.md",
    )
    ap.add_argument("--no-randomization", action="store_true", help="DR, pushes and noise off")
    args = ap.parse_args()

    cache = os.environ.get("WILDROBOT_JAX_CACHE", str(Path.home() / ".cache" / "wildrobot" / "jax"))
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)

    cfg = WildRobotEnvConfig()
    if args.no_randomization:
        cfg.randomization.enabled = cfg.push.enabled = cfg.noise.enabled = False
    env = WildRobotEnv(cfg)
    chunk = args.chunk if args.chunk else default_chunk()
    batched = dataclasses.replace(wrap_for_training(env), chunk=chunk)
    phys, substeps, T = env.physics, cfg.sim.substeps, args.steps

    step_batch = batched.step  # chunked like training: see wrappers.batch_map

    @jax.jit
    def env_rollout(state, key):
        def body(s, k):
            a = jax.random.uniform(k, (s.reward.shape[0], env.action_size), minval=-1.0, maxval=1.0)
            return step_batch(s, a), None

        return jax.lax.scan(body, state, jax.random.split(key, T))[0]

    @jax.jit
    def bare_rollout(data, ctrl):
        def ctl(d, c):
            d = d.replace(ctrl=c)
            return jax.lax.fori_loop(0, substeps, lambda _, x: mjx.step(phys.model, x), d)

        return jax.lax.scan(lambda d, c: (batch_map(ctl, d, c, chunk=chunk), None), data, ctrl)[0]

    reset = jax.jit(batched.reset)
    figures = {}
    print(
        f"devices={jax.devices()} substeps={substeps} dt={env.dt} "
        f"randomization={not args.no_randomization} chunk={chunk or 'none'}"
    )
    for n in args.num_envs:
        state = reset(jax.random.split(jax.random.key(0), n))
        t_env = _timed(env_rollout, state, jax.random.key(1), repeats=args.repeats)
        data = jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), phys.home_data)
        ctrl = jnp.broadcast_to(jnp.asarray(env.desc.home), (T, n, env.action_size))
        t_bare = _timed(bare_rollout, data, ctrl, repeats=args.repeats)
        t_reset = _timed(reset, jax.random.split(jax.random.key(2), n), repeats=args.repeats)
        env_sps, bare_sps = n * T / t_env, n * T / t_bare
        figures[f"ratio_{n}"] = f"{env_sps / bare_sps:.3f}"
        figures[f"env_sps_{n}"] = f"{env_sps:.0f}"
        figures[f"bare_sps_{n}"] = f"{bare_sps:.0f}"
        print(
            f"num_envs={n}: env {env_sps:.0f} steps/s, bare mjx.step {bare_sps:.0f} steps/s, "
            f"ratio {env_sps / bare_sps:.3f}; batched reset alone {t_reset * 1e3:.1f} ms",
            flush=True,
        )
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
