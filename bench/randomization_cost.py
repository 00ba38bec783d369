"""What each per-env model field of domain randomisation costs the batched physics, same run.

    uv run python bench/randomization_cost.py [--num-envs 1024] [--steps 10] [--repeats 7]

Times the bare batched physics (as in bench/env_throughput.py: 4 substeps per control step, chunks
of 64 on CPU) with the model shared by every env, next to the same physics whose model carries
per-env values (sampled as the env samples them) for one randomised item at a time, then for all
of them. kp appears as the model fields MJX would need, to show why the env scales it through the
servo setpoint on MJX (MuJoCo C scales the gains per simulation: ``MujocoPhysics``). Ratios: median over rounds of shared time / variant time (the calls of a
round alternate, so the two ran within seconds of each other).
The last line holds the headline figures as name=value pairs.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
from common import paired_ratio, timed_rounds

from wildrobot.envs import randomize
from wildrobot.envs.physics import physics_steps
from wildrobot.envs.wildrobot import WildRobotEnv
from wildrobot.envs.wildrobot_config import SimConfig, WildRobotEnvConfig
from wildrobot.jax_setup import configure_jax

# item -> the mjx.Model fields it makes per-env
ITEMS = {
    "floor_friction": ["geom_friction"],
    "link_mass": ["body_mass", "body_inertia"],
    "kp_as_model_field": ["actuator_gainprm", "actuator_biasprm"],
    "frictionloss": ["dof_frictionloss"],
}


def with_kp(model, p):
    """The per-env actuator fields a model-side kp randomisation would make."""
    kp = model.actuator_gainprm[:, 0] * p["kp_scale"]
    return model.replace(
        actuator_gainprm=model.actuator_gainprm.at[:, 0].set(kp),
        actuator_biasprm=model.actuator_biasprm.at[:, 1].set(-kp),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num-envs", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10, help="control steps per timed call")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    configure_jax()

    env = WildRobotEnv(WildRobotEnvConfig(sim=SimConfig(backend="mjx")))  # per-env model fields cost MJX only
    phys, cfg = env.physics, env.cfg.randomization
    n, T = args.num_envs, args.steps
    keys = jax.random.split(jax.random.key(0), n)
    params = jax.vmap(lambda k: randomize.sample_params(k, cfg, nbody=phys.mj_model.nbody, nu=env.action_size))(keys)
    data = jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), phys.home_data)
    ctrl = jnp.broadcast_to(jnp.asarray(env.desc.home), (T, n, env.action_size))
    steps = physics_steps(env.cfg.sim.substeps)

    def rollout(fields):
        def control_step(d, c, p):
            randomised = with_kp(randomize.apply_to_model(phys.model, p, cfg, phys.dof_idx), p)
            model = phys.model.replace(**{f: getattr(randomised, f) for f in fields})
            return steps(model, d, c, None)

        @jax.jit
        def run(data, ctrl, params):
            return jax.lax.scan(lambda d, c: (jax.vmap(control_step)(d, c, params), None), data, ctrl)[0]

        return run

    variants = {"shared": [], **ITEMS, "all": [f for fs in ITEMS.values() for f in fs]}
    calls = {name: (rollout(fields), data, ctrl, params) for name, fields in variants.items()}
    t = timed_rounds(calls, repeats=args.repeats)

    print(f"devices={jax.devices()} num_envs={n}")
    figures = {"shared_sps": f"{n * T / min(t['shared']):.0f}"}
    for name in variants:
        if name == "shared":
            continue
        r = paired_ratio(t, slow=name, fast="shared")
        figures[name] = f"{r:.3f}"
        print(f"{name:20s} per-env {'+'.join(variants[name]):75s} speed vs shared model {r:.3f}", flush=True)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
