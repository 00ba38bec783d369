"""The MuJoCo C backend (``env.sim.backend=mujoco``, the default on CPU) steps exactly as plain
MuJoCo does, env by env, with per-env randomised model fields and servo kp."""

import copy

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from wildrobot.cli import load_config
from wildrobot.errors import ConfigError
from wildrobot.envs.physics import MujocoPhysics, resolve_backend
from wildrobot.robot import load_robot_description

SUBSTEPS = 4
CONTROL_STEPS = 6
N = 3


@pytest.fixture(scope="module")
def phys():
    return MujocoPhysics(load_robot_description())


@pytest.fixture(scope="module")
def batch_inputs(phys):
    """Three envs that differ in every randomised model field, servo kp and targets."""
    m = phys.mj_model
    f32 = lambda x: np.asarray(x, np.float32)
    friction = np.stack([f32(m.geom_friction)] * N)
    friction[:, :, 0] = f32([[0.4], [0.8], [1.2]])
    mass_scale = f32([0.9, 1.0, 1.1])[:, None]
    model = phys.model.replace(
        geom_friction=friction,
        body_mass=f32(m.body_mass)[None] * mass_scale,
        body_inertia=f32(m.body_inertia)[None] * mass_scale[:, :, None],
        dof_frictionloss=f32(m.dof_frictionloss)[None] * f32([0.5, 1.0, 2.0])[:, None],
    )
    data = jax.tree.map(lambda x: jnp.broadcast_to(x, (N, *x.shape)), phys.home_data)
    t = np.arange(CONTROL_STEPS)[:, None, None] * 0.02
    home = f32(phys.desc.home)
    ctrl = f32(home + 0.2 * np.sin(2 * np.pi * 2.0 * t + np.arange(N)[None, :, None] + np.arange(m.nu)))
    kp = f32([[0.8], [1.0], [1.25]]) * np.ones((N, m.nu), np.float32)
    return model, data, ctrl, kp


@pytest.fixture(scope="module")
def stepped(phys, batch_inputs):
    model, data, ctrl, kp = batch_inputs

    @jax.jit
    def rollout(model, data, ctrls, kp):
        one = jax.vmap(lambda m_, d, c, k: phys.step(m_, d, c, SUBSTEPS, k))
        return jax.lax.scan(lambda d, c: (one(model, d, c, kp), d.qpos), data, ctrls)[0]

    return rollout, jax.device_get(rollout(model, data, ctrl, kp))


def plain_mujoco(phys, model, i, kp=None):
    """Env ``i`` of the batch as a plain MjModel (its model fields, servo gains scaled by ``kp``) and an
    MjData at the home state."""
    m = copy.copy(phys.mj_model)
    for field in ("geom_friction", "body_mass", "body_inertia", "dof_frictionloss"):
        getattr(m, field)[...] = np.asarray(getattr(model, field)[i], np.float64)
    if kp is not None:
        m.actuator_gainprm[:, 0] *= kp  # the servos of this env: gain kp * the model's
        m.actuator_biasprm[:, 1] *= kp
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:], d.qacc_warmstart[:] = (np.asarray(getattr(phys.home_data, f), np.float64)
                                                 for f in ("qpos", "qvel", "qacc_warmstart"))
    return m, d


def test_each_env_steps_as_plain_mujoco_with_its_own_model_fields_and_kp(phys, batch_inputs, stepped):
    model, _, ctrl, kp = batch_inputs
    _, out = stepped
    assert not np.allclose(out.qpos[0], out.qpos[2], atol=1e-3)  # the envs' models and targets differ
    for i in range(N):
        m, d = plain_mujoco(phys, model, i, kp[i])
        for c in ctrl[:, i]:
            d.ctrl[:] = c
            for _ in range(SUBSTEPS):
                mujoco.mj_step(m, d)
            # the env's state is float32 between control steps
            for f in ("qpos", "qvel", "qacc_warmstart"):
                getattr(d, f)[:] = getattr(d, f).astype(np.float32)
        np.testing.assert_allclose(out.qpos[i], d.qpos, atol=1e-6)
        np.testing.assert_allclose(out.qvel[i], d.qvel, atol=1e-5)
        np.testing.assert_allclose(out.xmat[i], d.xmat.reshape(-1, 3, 3), atol=1e-6)
        np.testing.assert_allclose(out.actuator_force[i], d.actuator_force, rtol=1e-5, atol=1e-5)
        # the foot force read is each foot's summed normal contact force, as mj_contactForce gives
        per_foot, f6 = np.zeros(len(phys.foot_geoms)), np.zeros(6)
        for k in range(d.ncon):
            mujoco.mj_contactForce(m, d, k, f6)
            for foot, geoms in enumerate(phys.foot_geoms):
                per_foot[foot] += f6[0] * bool({d.contact[k].geom1, d.contact[k].geom2} & set(geoms))
        assert per_foot.sum() > 0.5 * phys.total_mass * 9.81  # standing on its feet: the read is not vacuous
        np.testing.assert_allclose(out.foot_force[i], per_foot, rtol=1e-4, atol=1e-3)


def test_steps_are_pure_functions_of_their_inputs(batch_inputs, stepped):
    rollout, out = stepped
    again = jax.device_get(rollout(*batch_inputs))
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)


def test_a_step_without_kp_after_one_with_scaled_kp_runs_the_models_own_servos(phys, batch_inputs, stepped):
    """The batch keeps the gains of its last call: a step without ``kp_scale`` must put kp back."""
    model, data, ctrl, kp = batch_inputs
    jax.block_until_ready(stepped[0](model, data, ctrl, kp))  # leaves kp scaled by 0.8 and 1.25
    one = jax.jit(jax.vmap(lambda m_, d, c: phys.step(m_, d, c, SUBSTEPS)))
    out = jax.device_get(one(model, data, ctrl[0]))
    m, d = plain_mujoco(phys, model, 2)
    d.ctrl[:] = ctrl[0, 2]
    for _ in range(SUBSTEPS):
        mujoco.mj_step(m, d)
    np.testing.assert_allclose(out.qpos[2], d.qpos, atol=1e-6)


def test_a_blow_up_shows_as_nonfinite_state_not_a_silent_reset(phys, batch_inputs):
    model, data, ctrl, kp = batch_inputs
    data = data.replace(qvel=data.qvel.at[1].set(1e30))  # env 1 explodes, the others must not care
    step = jax.jit(jax.vmap(lambda m_, d, c, k: phys.step(m_, d, c, SUBSTEPS, k)))
    out = step(model, data, ctrl[0], kp)
    finite = np.asarray(jax.vmap(phys.is_finite)(out))
    assert finite.tolist() == [True, False, True]


def test_backend_auto_is_mujoco_c_on_cpu_and_a_wrong_name_is_a_config_error():
    assert resolve_backend("auto") == ("mujoco" if jax.default_backend() == "cpu" else "mjx")
    with pytest.raises(ConfigError, match="env.sim.backend"):
        load_config(["env.sim.backend=warp"])


def test_the_budget_line_names_the_physics_that_runs(tmp_path):
    from conftest import TINY_PPO, make_trainer
    from wildrobot.envs.factory import make_env
    from wildrobot.train.progress import budget_line

    trainer = make_trainer([*TINY_PPO, "env=wildrobot"], tmp_path / "run")
    env = make_env(trainer.cfg.env)
    line = budget_line(trainer.cfg, trainer.make_algorithm(env), 0, env.physics_backend, tmp_path / "run")
    assert ("MuJoCo C physics" if jax.default_backend() == "cpu" else "MJX physics") in line
    assert make_env(load_config(["env=stub"]).env).physics_backend == ""



def test_a_wildrobot_run_resumed_from_its_checkpoint_matches_the_uninterrupted_run(wildrobot_run, tmp_path):
    """The physics state (with the solver's warm start) is in the checkpointed carry and the C
    batch keeps nothing between calls that matters: resume is bit for bit, as on MJX."""
    import shutil

    from conftest import WILDROBOT_OVERRIDES, assert_trees_equal, make_trainer, restore_latest

    one_iteration = wildrobot_run  # the shared 1-iteration run, with a checkpoint
    part = tmp_path / "part"
    shutil.copytree(one_iteration, part)  # resume a copy: other tests read the shared run
    two = [*WILDROBOT_OVERRIDES, "trainer.iterations=2"]
    resumed = make_trainer([*two, f"trainer.resume={part}"], tmp_path / "resumed_hydra_dir")
    assert resumed.run() == 0
    full = make_trainer(two, tmp_path / "full")
    assert full.run() == 0
    a, _, step_a = restore_latest(tmp_path / "full", full)
    b, _, step_b = restore_latest(part, full)
    assert step_a == step_b == 2
    assert_trees_equal(a, b)


def test_resuming_on_the_other_physics_backend_says_how_to_continue(wildrobot_run, tmp_path):
    import shutil

    from conftest import WILDROBOT_OVERRIDES, make_trainer
    from wildrobot.train.checkpoint import CheckpointError

    run = tmp_path / "run"
    shutil.copytree(wildrobot_run, run)
    saved = resolve_backend("auto")
    other = "mjx" if saved == "mujoco" else "mujoco"
    trainer = make_trainer([*WILDROBOT_OVERRIDES, "trainer.iterations=2", f"env.sim.backend={other}",
                            f"trainer.resume={run}"], tmp_path / "hydra_dir")
    with pytest.raises(CheckpointError, match=f"Resume with env.sim.backend={saved}"):
        trainer.run()
