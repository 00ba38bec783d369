"""Batched WildRobot env steps/s next to the bare batched physics of the same model, same run.

    uv run python bench/env_throughput.py --num-envs 256 1024 4096 --steps 20 [--backend auto|mjx|mujoco] [--parts]

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
With ``--parts``, the env is also timed with one part of it switched off at a time (observation
noise, pushes, servo kp randomisation, all domain randomisation, all three), in the same rounds:
where the env's time over the bare physics goes.
The last line holds the headline figures as name=value pairs.
"""

from __future__ import annotations

import argparse
import copy
import jax
import jax.numpy as jnp
from common import bare_physics_rollout, paired_ratio, random_action_rollout, random_actions, timed_rounds

from wildrobot.envs.wildrobot import WildRobotEnv
from wildrobot.envs.wildrobot_config import WildRobotEnvConfig
from wildrobot.envs.physics import default_chunk
from wildrobot.envs.wrappers import wrap_for_training
from wildrobot.jax_setup import configure_jax


def _switch_off(*paths: str):
    def off(cfg: WildRobotEnvConfig) -> None:
        for path in paths:
            *parents, leaf = path.split(".")
            target = cfg
            for name in parents:
                target = getattr(target, name)
            setattr(target, leaf, False)
    return off


PARTS = {  # --parts: the env with one part switched off
    "noise": _switch_off("noise.enabled"),
    "pushes": _switch_off("push.enabled"),
    "kp": _switch_off("randomization.kp_scale.enabled"),
    "randomization": _switch_off("randomization.enabled"),
    "all_three": _switch_off("noise.enabled", "push.enabled", "randomization.enabled"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num-envs", type=int, nargs="+", default=[256, 1024, 4096])
    ap.add_argument("--steps", type=int, default=20, help="control steps per timed call")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-randomization", action="store_true", help="DR, pushes and noise off")
    ap.add_argument("--backend", default="auto", help="physics backend (env.sim.backend): auto, mjx or mujoco")
    ap.add_argument("--parts", action="store_true", help="also time the env with each part switched off")
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
    parts = {}  # name: (rollout, reset) of the env with that part switched off
    if args.parts:
        for name, off in PARTS.items():
            part_cfg = copy.deepcopy(cfg)
            off(part_cfg)
            part = wrap_for_training(WildRobotEnv(part_cfg))
            parts[name] = (jax.jit(random_action_rollout(part, T)), jax.jit(part.reset))
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
                **{f"no_{name}": (roll, part_reset(jax.random.split(jax.random.key(0), n)), key)
                   for name, (roll, part_reset) in parts.items()},
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
        for name in parts:
            side = f"no_{name}"
            figures[f"ratio_{side}_{n}"] = f"{paired_ratio(t, slow=side, fast='bare'):.3f}"
            print(f"  without {name}: {n * T / min(t[side]):.0f} env steps/s, ratio to the bare physics "
                  f"{figures[f'ratio_{side}_{n}']}; the whole env runs at {paired_ratio(t, slow='env', fast=side):.3f} "
                  f"of this speed", flush=True)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
