"""Sim-to-sim: the exported policy in plain MuJoCo (C) sees what the env shows it and behaves as
in MJX."""

from __future__ import annotations

import dataclasses

import jax
import mujoco
import numpy as np
import pytest



@pytest.fixture(scope="module")
def wr_loaded(wildrobot_run):
    from wildrobot.runs import load_run

    return load_run(wildrobot_run)


@pytest.fixture(scope="module")
def wr_export(wr_loaded, tmp_path_factory):
    from wildrobot.export import export

    return export(wr_loaded, tmp_path_factory.mktemp("wr_export") / "policy.onnx")


def test_plain_mujoco_observation_equals_the_env_observation_at_reset(wr_loaded):
    from wildrobot.envs.factory import evaluation_config
    from wildrobot.envs.wildrobot import WildRobotEnv

    cfg = evaluation_config(wr_loaded.cfg.env)
    cfg = dataclasses.replace(cfg, reset=dataclasses.replace(cfg.reset, joint_noise=0.0, random_heading=False),
                              obs=dataclasses.replace(cfg.obs, gait_frequency_per_yaw_rate=1.5, gait_frequency_yaw_from=0.1))
    env = WildRobotEnv(cfg)
    command = jax.numpy.array([0.2, 0.0, 0.5])
    expected = env.set_command(env.reset(jax.random.key(0)), command).obs["actor"]

    model = env.mj_model
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, env.desc.home_keyframe))
    mujoco.mj_forward(model, data)
    observer = env.mujoco_observer()
    observer.reset(command)
    actual, q, fallen = observer.observe(data)
    np.testing.assert_allclose(actual, np.asarray(expected), atol=1e-5)
    assert not fallen and q["base_height"] > 0.3
    # the observer's gait clock runs as the env's: at this turn's frequency, one step per ctrl call
    steps = 10
    for _ in range(steps):
        observer.ctrl(np.zeros(env.action_size))
    actual, _, _ = observer.observe(data)
    clock = env.observation["actor"].slice("gait_phase")
    phase = 2 * np.pi * (cfg.obs.gait_frequency + 1.5 * (0.5 - 0.1)) * steps * env.dt
    np.testing.assert_allclose(actual[clock], [np.sin(phase), np.cos(phase)], atol=1e-5)


def test_onnx_policy_in_mujoco_c_behaves_as_the_jax_policy_in_mjx(wr_loaded, wr_export):
    from wildrobot.sim2sim import compare

    commands = np.array([[0.0, 0.0, 0.0], [0.2, 0.0, 0.5]], np.float32)
    c_runs, mjx = compare(wr_loaded, wr_export[0], commands, steps=50)
    pc = mjx.per_command()
    for i, ep in enumerate(c_runs):
        assert ep.fell == bool(pc["fall"][i] > 0), (ep, pc)
        assert ep.steps == 50 and not ep.fell  # a one-iteration policy stays near home: it stands
        assert abs(ep.vx_error - pc["tracking/vx_error"][i]) < 0.05
        assert abs(ep.yaw_rate_error - pc["tracking/yaw_rate_error"][i]) < 0.05
