"""Speed and fidelity of MJX solver settings for the WildRobot model, side by side in one run.

    uv run python bench/physics_settings.py [--num-envs 1024] [--steps 10] [--repeats 3]

For each setting: bare batched physics steps/s (control steps of 20 ms, batched as the env is:
chunks of 64 envs on CPU), and its fidelity against a fine reference (1 ms, 50/50 iterations) in
plain MuJoCo: the worst root and joint error of an open-loop stepping motion on the lowest
randomised floor friction (0.4), and the standing wobble (std of the root height) there.
``shipped`` is the MJCF as it is; the others change only what their name says. The last line holds
the headline figures as name=value pairs (speed relative to ``shipped``).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import mujoco
from common import bare_physics_rollout, best_times

from wildrobot.envs.physics import default_chunk, mjx, physics_steps
from wildrobot.jax_setup import configure_jax
from wildrobot.robot import fidelity, load_robot_description

EULERDAMP = int(mujoco.mjtDisableBit.mjDSBL_EULERDAMP)
LOW_FRICTION = 0.4

# name -> model.opt changes; "eulerdamp": True turns Euler's implicit joint damping on.
SETTINGS = {
    "shipped": {},
    "eulerdamp_on": {"eulerdamp": True},
    "ls_iterations_4": {"ls_iterations": 4},
    "ls_iterations_4_sparse_mass_matrix": {"ls_iterations": 4, "jacobian": mujoco.mjtJacobian.mjJAC_SPARSE},
    "4ms_x5": {"timestep": 0.004},
    "previous_4ms_newton3_ls8_dense_eulerdamp": {
        "timestep": 0.004, "iterations": 3, "ls_iterations": 8,
        "jacobian": mujoco.mjtJacobian.mjJAC_DENSE, "eulerdamp": True,
    },
}


def build(base: mujoco.MjModel, change: dict) -> mujoco.MjModel:
    change = dict(change)
    damp = change.pop("eulerdamp", False)
    m = fidelity.with_options(base, **change)
    m.opt.disableflags = (m.opt.disableflags & ~EULERDAMP) if damp else (m.opt.disableflags | EULERDAMP)
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num-envs", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10, help="control steps per timed call")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    configure_jax()

    desc = load_robot_description()
    base = mujoco.MjModel.from_xml_path(desc.mjcf_path)
    n, T, chunk = args.num_envs, args.steps, default_chunk()
    calls, rows = {}, {}
    for name, change in SETTINGS.items():
        m = build(base, change)
        mx = mjx.put_model(m)
        key = m.key(desc.home_keyframe).id
        home = mjx.forward(mx, mjx.make_data(mx).replace(qpos=jnp.asarray(m.key_qpos[key]), ctrl=jnp.asarray(m.key_ctrl[key])))
        data = jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), home)
        ctrl = jnp.broadcast_to(jnp.asarray(m.key_ctrl[key]), (T, n, m.nu))
        steps = physics_steps(fidelity.substeps(m))
        calls[name] = (bare_physics_rollout(lambda d, c, mx=mx, steps=steps: steps(mx, d, c, None)), data, ctrl)
        root, joint = fidelity.stepping_error(m, desc, LOW_FRICTION)
        _, _, wobble = fidelity.stand(fidelity.with_options(m, LOW_FRICTION), desc)
        rows[name] = {"root_mm": 1e3 * root, "joint_rad": joint, "wobble_mm": 1e3 * wobble}
    times = best_times(calls, repeats=args.repeats)

    print(f"devices={jax.devices()} num_envs={n} chunk={chunk or 'none'} friction={LOW_FRICTION}")
    print(f"{'setting':45s} {'steps/s':>8s} {'vs shipped':>10s} {'root err mm':>11s} {'joint err rad':>13s} {'wobble mm':>9s}")
    figures = {}
    for name, r in rows.items():
        sps = n * T / times[name]
        rel = times["shipped"] / times[name]
        print(f"{name:45s} {sps:8.0f} {rel:10.2f} {r['root_mm']:11.2f} {r['joint_rad']:13.4f} {r['wobble_mm']:9.3f}")
        figures[f"{name}_sps"] = f"{sps:.0f}"
        if name != "shipped":
            figures[f"{name}_speed"] = f"{rel:.2f}"
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
