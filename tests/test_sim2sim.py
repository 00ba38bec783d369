"""Sim-to-sim: the exported policy in plain MuJoCo (C) sees what the env shows it and behaves as
in MJX."""

from __future__ import annotations

import dataclasses
import json

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
    """The command-line comparison end to end. A one-iteration policy acts near 0, so both robots
    stand: this cannot catch a deployment mismatch (the lockstep test below does); it checks that
    both simulators start from the same state and report alike."""
    from wildrobot.sim2sim import compare

    commands = np.array([[0.0, 0.0, 0.0], [0.2, 0.0, 0.5]], np.float32)
    c_runs, mjx = compare(wr_loaded, wr_export[0], commands, steps=50, record=True)
    pc = mjx.per_command()
    for i, ep in enumerate(c_runs):
        # the same start: the home keyframe facing +x at rest, no reset joint noise
        np.testing.assert_allclose(ep.qpos[0], mjx.recording["qpos"][0, i], atol=1e-6, err_msg=f"command {i}")
        np.testing.assert_allclose(ep.qvel[0], mjx.recording["qvel"][0, i], atol=1e-6, err_msg=f"command {i}")
        assert ep.fell == bool(pc["fall"][i] > 0), (ep, pc)
        assert ep.steps == 50 and not ep.fell and not ep.nonfinite  # a one-iteration policy stays near home: it stands
        assert abs(ep.vx_error - pc["tracking/vx_error"][i]) < 0.05
        assert abs(ep.yaw_rate_error - pc["tracking/yaw_rate_error"][i]) < 0.05


# ------------------------------------------------------------------------------------------------
# Lockstep: the env and plain MuJoCo C, driven by one fixed action sequence from one start state.
# The env runs MuJoCo C too (backend "mujoco"), so the two differ only in the env keeping its state
# in float32 between control steps (MjData keeps float64): a relative rounding of ~6e-8 per step,
# carried through STEPS steps of a robot that stands and moves its joints, stays orders of
# magnitude below TOL. A deployment mismatch moves a whole block by far more than TOL: a block out
# of place, a sign flipped, a previous action or an older frame from a neighbouring step (the
# actions below change by more than 0.1 every step), a gait clock a step early or late.
HISTORY = 2
STEPS = 10
TOL = 1e-4
COMMAND = np.array([0.2, 0.0, 0.5], np.float32)


@pytest.fixture(scope="module")
def history_env():
    """WildRobot with two older frames in its observation, a clock that depends on the command,
    MuJoCo C physics; randomisation, pushes and sensor noise off, reset joint noise and random
    heading on (so the start differs from the observer's reference reset)."""
    from wildrobot.envs.factory import evaluation_config
    from wildrobot.envs.wildrobot import WildRobotEnv
    from wildrobot.envs.wildrobot_config import WildRobotEnvConfig

    cfg = evaluation_config(WildRobotEnvConfig())
    assert cfg.reset.joint_noise > 0 and cfg.reset.random_heading
    cfg = dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, backend="mujoco"),
                              obs=dataclasses.replace(cfg.obs, history=HISTORY, gait_frequency_per_yaw_rate=1.5,
                                                      gait_frequency_yaw_from=0.1))
    return WildRobotEnv(cfg)


@pytest.fixture(scope="module")
def lockstep(history_env):
    """(start state, actions, the env's states, the MuJoCo C episode with its observations)."""
    from wildrobot.sim2sim import run_mujoco

    env = history_env
    start = env.set_command(jax.jit(env.reset)(jax.random.key(7)), COMMAND)
    n = env.action_size
    actions = (0.6 * np.sin(0.9 * np.arange(STEPS)[:, None] + np.arange(n)[None, :])).astype(np.float32)
    step = jax.jit(env.step_in_episode)
    states = [start]
    for a in actions:
        states.append(step(states[-1], a))
    played = iter(actions)
    episode = run_mujoco(env, lambda obs: next(played), COMMAND, STEPS, record=True,
                         start=(np.asarray(start.data.qpos), np.asarray(start.data.qvel)))
    return start, actions, states, episode


def _frames(obs: np.ndarray, env) -> np.ndarray:
    return np.asarray(obs).reshape(1 + HISTORY, env.observation["actor"].frame_size)


def test_set_command_puts_the_command_into_every_older_frame_at_the_start(history_env, lockstep):
    env = history_env
    start, _, states, _ = lockstep
    cmd = env.observation["actor"].slice("command")
    frames = _frames(start.obs["actor"], env)
    for k, frame in enumerate(frames):
        np.testing.assert_allclose(frame[cmd], COMMAND, err_msg=f"frame t-{k}")
    # the older frames are copies of the first frame, in the observation and in the env's history
    np.testing.assert_array_equal(frames[1:], np.broadcast_to(frames[0], frames[1:].shape))
    np.testing.assert_array_equal(np.asarray(start.info["obs_history"]), frames[1:])
    # later, a new command reaches the current frame; the older frames keep what the policy saw
    later = env.set_command(states[1], COMMAND * 0.5)
    before, after = _frames(states[1].obs["actor"], env), _frames(later.obs["actor"], env)
    np.testing.assert_allclose(after[0, cmd], COMMAND * 0.5)
    np.testing.assert_array_equal(after[1:], before[1:])
    history, history_before = np.asarray(later.info["obs_history"]), np.asarray(states[1].info["obs_history"])
    np.testing.assert_array_equal(history[1:], history_before[1:])
    np.testing.assert_array_equal(history[0], after[0])


def test_the_first_plain_mujoco_observation_has_older_frames_equal_to_its_current_one(history_env, lockstep):
    frames = _frames(lockstep[3].observations[0], history_env)
    np.testing.assert_array_equal(frames[1:], np.broadcast_to(frames[0], frames[1:].shape))
    np.testing.assert_allclose(frames[0][history_env.observation["actor"].slice("command")], COMMAND)


def test_plain_mujoco_and_the_env_observe_the_same_in_lockstep(history_env, lockstep):
    """sim2sim's MuJoCo C loop (``run_mujoco``: the env's observation code on a plain MjData, its
    own bookkeeping of previous action, gait clock and older frames, the servo targets) against the
    env's own steps, observation by observation."""
    env = history_env
    _, actions, states, episode = lockstep
    assert episode.steps == STEPS and not episode.fell and not episode.nonfinite
    # the test's power: consecutive actions differ, and the robot moves
    assert np.abs(np.diff(actions, axis=0)).max(axis=1).min() > 0.1
    joints = env.observation["actor"].slice("joint_pos")
    assert np.abs(episode.observations[-1][joints] - episode.observations[0][joints]).max() > 0.05
    expected = np.stack([np.asarray(s.obs["actor"]) for s in states])
    layout = env.observation_layout
    for t, (c_obs, env_obs) in enumerate(zip(episode.observations, expected)):
        gap = np.abs(c_obs - env_obs)
        bad = [b["name"] for b in layout if gap[b["start"]:b["start"] + b["size"]].max() > TOL]
        assert not bad, f"step {t}: blocks {bad} differ by more than {TOL}"
    np.testing.assert_allclose(episode.qpos[-1], np.asarray(states[-1].data.qpos), atol=TOL)


def test_a_blow_up_in_mujoco_c_ends_the_episode_instead_of_resetting_the_simulation(history_env):
    """sim2sim runs the env's model, and an MJX env's model (sim2sim's env) has MuJoCo's automatic
    reset on (only the env's MuJoCo C physics switches it off): a diverged state must end the
    episode rather than restart silently from the model's default pose."""
    from wildrobot.envs.physics import make_physics
    from wildrobot.sim2sim import run_mujoco

    autoreset = int(mujoco.mjtDisableBit.mjDSBL_AUTORESET)

    class AsMjxEnv:  # the env, with the model an MJX env has
        def __init__(self, env):
            self._env, self.mj_model = env, make_physics(env.desc, "mjx").mj_model

        def __getattr__(self, name):
            return getattr(self._env, name)

    env = AsMjxEnv(history_env)
    assert not env.mj_model.opt.disableflags & autoreset
    model = env.mj_model
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, env.desc.home_keyframe))
    qvel = data.qvel.copy()
    qvel[env.physics.root_dof] = 1e11  # past MuJoCo's divergence check (mjMAXVAL 1e10)
    episode = run_mujoco(env, lambda obs: np.zeros(env.action_size), COMMAND, 5, start=(data.qpos.copy(), qvel))
    assert episode.nonfinite and episode.fell and episode.steps == 1, episode
    assert np.isfinite(episode.vx_error) and np.isfinite(episode.yaw_rate_error)
    assert not env.mj_model.opt.disableflags & autoreset  # the env's own model is left as it was


def test_an_observation_rebuilt_from_the_sidecar_equals_the_env_observation(history_env, lockstep, wr_loaded):
    """A robot runtime written from the export sidecar alone: raw readings of a plain MuJoCo C
    simulation (the IMU's orientation quaternion as a BNO085 gives it, its angular velocity, joint
    angles and velocities), the sidecar's layout, home, max joint speed, gait clock, history rule
    and action mapping, driven by the lockstep's actions, sees what the env shows its policy."""
    from wildrobot.export import sidecar

    env = history_env
    start, actions, states, _ = lockstep
    meta = json.loads(json.dumps(sidecar(dataclasses.replace(wr_loaded, env=env), "policy.onnx")))  # as read from disk
    robot, act, ob, dt = meta["robot"], meta["action"], meta["observation"], meta["control"]["dt"]
    assert meta["control"]["substeps"] * meta["control"]["physics_timestep"] == pytest.approx(dt)

    model = env.mj_model
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = np.asarray(start.data.qpos), np.asarray(start.data.qvel)
    mujoco.mj_forward(model, data)
    qadr = [model.joint(j).qposadr[0] for j in robot["joint_names"]]
    dadr = [model.joint(j).dofadr[0] for j in robot["joint_names"]]
    actuators = [model.actuator(j).id for j in act["joint_names"]]
    imu = model.site(robot["imu_site"]).id
    home = np.asarray(robot["home"])
    lo, hi = np.asarray(act["joint_range"]).T

    def bno085_quaternion():  # (i, j, k, real)
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, data.site_xmat[imu])
        return np.array([q[1], q[2], q[3], q[0]])

    def gravity():
        i, j, k, w = bno085_quaternion()
        w, x, y, z = w, i, j, k  # reordered to (w, x, y, z)
        rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
        return rot.T @ np.array([0.0, 0.0, -1.0])

    def gyro():
        v = np.zeros(6)
        mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_SITE, imu, v, 1)  # local frame: (angular, linear)
        return v[:3]

    def frequency(command):
        turn = max(0.0, abs(command[2]) - ob["gait_frequency_yaw_from"])
        return ob["gait_frequency"] + ob["gait_frequency_per_yaw_rate"] * turn

    phase, prev, older = 0.0, np.zeros(len(home)), None
    for t in range(STEPS + 1):
        frame = {"gravity": gravity(), "gyro": gyro(), "joint_pos": data.qpos[qadr] - home,
                 "joint_vel": data.qvel[dadr] / robot["max_joint_speed"], "prev_action": prev, "command": COMMAND,
                 "gait_phase": np.array([np.sin(phase), np.cos(phase)])}
        older = [frame] * ob["history"] if older is None else older  # history_start: copies of the first frame
        obs = np.zeros(meta["input"]["shape"][1])
        for block in ob["layout"]:
            name, _, age = block["name"].partition("[t-")
            source = frame if not age else older[int(age.rstrip("]")) - 1]
            obs[block["start"]:block["start"] + block["size"]] = source[name]
        np.testing.assert_allclose(obs, np.asarray(states[t].obs["actor"]), atol=TOL, rtol=0, err_msg=f"step {t}")
        if t == STEPS:
            break
        older = [frame] + older[:-1]
        a = actions[t]
        data.ctrl[actuators] = np.clip(home + np.asarray(act["scale"]) * np.clip(a, -1.0, 1.0), lo, hi)
        mujoco.mj_step(model, data, nstep=meta["control"]["substeps"])
        phase = (phase + 2 * np.pi * dt * frequency(COMMAND)) % (2 * np.pi)
        prev = np.clip(a, -1.0, 1.0)



def test_an_onnx_policy_of_another_observation_size_or_no_file_is_refused_before_it_runs(wr_loaded, wr_export,
                                                                                          history_env, tmp_path, capsys):
    from wildrobot.sim2sim import check_onnx_fits, main

    onnx_path = wr_export[0] if isinstance(wr_export, tuple) else wr_export
    check_onnx_fits(onnx_path, wr_loaded.env)  # the run's own export fits
    with pytest.raises(ValueError, match=rf"observation of {history_env.observation['actor'].size} "):
        check_onnx_fits(onnx_path, history_env)  # a policy without history, for an env with it
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not an ONNX policy"):
        check_onnx_fits(tmp_path / "junk.onnx", wr_loaded.env)
    assert main([str(wr_loaded.run_dir), "--onnx", str(tmp_path / "missing.onnx")]) == 2
    assert "no such file" in capsys.readouterr().err
