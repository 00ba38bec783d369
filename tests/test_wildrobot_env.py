"""Behaviour of the WildRobot env: interface, standing, falling, blow-ups, DR, commands, quaternions.

One env (default config: DR, pushes and noise on) and its compiled functions are shared by the
module; every batch has N envs and every rollout STEPS steps, so each function compiles once.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wildrobot.envs.verify import Rollout
from wildrobot.envs.wildrobot import WildRobotEnv
from wildrobot.envs.wildrobot_config import ResetConfig, WildRobotEnvConfig
from wildrobot.envs.wrappers import wrap_for_training
from wildrobot.errors import ConfigError

N = 8


@pytest.fixture(scope="module")
def env():
    return WildRobotEnv(WildRobotEnvConfig())


@pytest.fixture(scope="module")
def roll(env):
    return Rollout(env, num_envs=N)


@pytest.fixture(scope="module")
def start(roll):
    return roll.reset(jax.random.split(jax.random.key(0), N))


@pytest.fixture(scope="module")
def wrapped(env):
    w = wrap_for_training(env, features=True)  # with algo=ppo_amp's state features
    return w, jax.jit(w.reset), jax.jit(w.step)


def _env(state, i):
    return jax.tree.map(lambda x: x[i], state)


def _pushes_off(state):
    """The states with the random pushes held off."""
    return state.replace(info=dict(state.info, push_countdown=jnp.full_like(state.info["push_countdown"], 1 << 30)))


def _same_start(state):
    """Every env starts from env 0's state (then per-env edits isolate one cause each)."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x[0], x.shape), state)


def test_sizes_follow_the_robot_description(env, start):
    n = env.desc.num_joints
    assert env.action_size == n
    assert env.observation_size == {"actor": 11 + 3 * n, "critic": 11 + 3 * n + 12}
    assert start.obs["actor"].shape == (N, 11 + 3 * n)
    assert start.info["command"].shape == (N, 3)
    assert env.dt == pytest.approx(0.02)
    assert env.episode_length == 1000


def test_reset_and_step_states_have_identical_structure(env, roll, start):
    nxt, _ = roll.run(start, jnp.zeros((roll.steps, N, env.action_size)))
    assert jax.tree.structure(nxt) == jax.tree.structure(start)
    for a, b in zip(jax.tree.leaves(nxt), jax.tree.leaves(start)):
        assert a.shape == b.shape and a.dtype == b.dtype
    keys = set(start.metrics)
    for k in ("nonfinite", "fall", "tracking/vx_error", "tracking/yaw_rate_error", "reward/tracking_lin_vel"):
        assert k in keys
    assert all(v.shape == (N,) and v.dtype == jnp.float32 for v in nxt.metrics.values())
    # the reported velocities are the ones the tracking errors measure (no resampling within the roll)
    for i, name in enumerate(("vx", "vy", "yaw_rate")):
        np.testing.assert_allclose(np.abs(nxt.info["command"][:, i] - nxt.metrics[f"velocity/{name}"]),
                                   nxt.metrics[f"tracking/{name}_error"], atol=1e-6)


def test_stands_at_home_with_zero_action_for_two_seconds(env, roll, start):
    final, out = roll.run(roll.hold_pushes(start), jnp.zeros((roll.steps, N, env.action_size)))
    assert roll.steps * env.dt >= 2.0
    assert not np.any(out["done_any"])
    h = np.asarray(final.metrics["base_height"])
    assert np.all(h > 0.43), h
    # still standing where it was put: no walking off under DR (friction down to 0.4)
    drift = np.linalg.norm(np.asarray(final.data.qpos[:, :2] - start.data.qpos[:, :2]), axis=-1)
    assert np.all(drift < 0.05), drift


def test_a_strong_push_makes_it_fall_and_terminate(env, roll, start):
    p = env.physics
    pushed = start.replace(data=start.data.replace(qvel=start.data.qvel.at[:, p.root_dof].set(-3.0)))
    final, out = roll.run(roll.hold_pushes(pushed), jnp.zeros((roll.steps, N, env.action_size)))
    assert np.all(out["done_any"])
    assert np.all(out["obs_finite"]) and np.all(out["metrics_finite"])
    # the episodes ended in a fall (it lies there still), not in a blow-up
    np.testing.assert_array_equal(np.asarray(final.metrics["fall"]), 1.0)
    np.testing.assert_array_equal(np.asarray(final.metrics["nonfinite"]), 0.0)


def test_random_pushes_kick_on_their_timer(env, roll, start):
    s = roll.hold_pushes(_same_start(start))
    s = s.replace(info=dict(s.info, push_countdown=s.info["push_countdown"].at[1].set(1)))
    final, _ = roll.run(s, jnp.zeros((roll.steps, N, env.action_size)))
    q = np.asarray(final.data.qpos)
    assert not np.allclose(q[1], q[0], atol=1e-4)  # pushed env moved differently
    np.testing.assert_allclose(q[2:], np.broadcast_to(q[0], q[2:].shape), atol=1e-5)


def test_nan_injection_resets_only_that_env(env, wrapped):
    w, reset, step = wrapped
    state = reset(jax.random.split(jax.random.key(1), N))
    actions = jnp.zeros((N, env.action_size))
    clean = step(state, actions)
    bad = state.replace(data=state.data.replace(qvel=state.data.qvel.at[3, 0].set(jnp.nan)))
    out = step(bad, actions)
    assert float(out.done[3]) == 1.0 and float(out.metrics["nonfinite"][3]) == 1.0
    assert float(out.reward[3]) == 0.0
    assert all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves((out.obs, out.metrics, out.reward)))
    assert np.isfinite(np.asarray(out.data.qpos[3])).all()  # replaced by a fresh episode
    assert float(out.info["episode_metrics"]["nonfinite"][3]) == 1.0
    others = np.array([i for i in range(N) if i != 3])
    # the pre-reset observation a discriminator scores (s') is finite too: the blow-up's features zeroed
    final = out.info["final_obs"]
    assert np.isfinite(np.asarray(final["features"])).all() and np.isfinite(np.asarray(final["actor"])).all()
    np.testing.assert_array_equal(np.asarray(final["features"][3]), 0.0)
    assert np.abs(np.asarray(final["features"][others])).sum() > 0  # the others' are not
    for a, b in zip(jax.tree.leaves(clean.data), jax.tree.leaves(out.data)):
        np.testing.assert_array_equal(np.asarray(a)[others], np.asarray(b)[others])
    np.testing.assert_array_equal(np.asarray(out.done)[others], 0.0)


def test_domain_randomisation_changes_each_episode_and_every_item_acts(env, roll, start):
    dr = {k: np.asarray(v) for k, v in start.info["dr"].items()}
    for k in ("floor_friction", "mass_scale", "kp_scale", "frictionloss_scale", "joint_offset"):
        flat = dr[k].reshape(N, -1)
        assert len({row.tobytes() for row in flat}) == N, k  # resampled per episode
    assert 0 < dr["delay"].sum() < N

    # one cause per env, same start, same non-zero action: env 0 nominal, env 7 nominal again
    s = roll.hold_pushes(_same_start(start))
    nominal = {
        "floor_friction": jnp.ones(N),
        "mass_scale": jnp.ones_like(s.info["dr"]["mass_scale"]),
        "kp_scale": jnp.ones_like(s.info["dr"]["kp_scale"]),
        "frictionloss_scale": jnp.ones_like(s.info["dr"]["frictionloss_scale"]),
        "joint_offset": jnp.zeros_like(s.info["dr"]["joint_offset"]),
        "delay": jnp.zeros(N),
    }
    d = dict(nominal)
    d["floor_friction"] = d["floor_friction"].at[1].set(0.1)
    d["mass_scale"] = d["mass_scale"].at[2].set(1.3)
    d["kp_scale"] = d["kp_scale"].at[3].set(0.7)
    d["frictionloss_scale"] = d["frictionloss_scale"].at[4].set(5.0)
    d["joint_offset"] = d["joint_offset"].at[5].set(0.05)
    d["delay"] = d["delay"].at[6].set(1.0)
    s = s.replace(info=dict(s.info, dr=d))
    # a sideways slide so that friction matters, and a step-like action so that delay matters
    s = s.replace(data=s.data.replace(qvel=s.data.qvel.at[:, env.physics.root_dof + 1].set(0.6)))
    actions = jnp.broadcast_to(jnp.linspace(-0.5, 0.5, env.action_size), (roll.steps, N, env.action_size))
    final, _ = roll.run(s, actions)
    q = np.asarray(final.data.qpos)
    np.testing.assert_array_equal(q[7], q[0])
    for i, item in enumerate(("floor_friction", "mass_scale", "kp_scale", "frictionloss_scale", "joint_offset", "delay"), 1):
        assert np.abs(q[i] - q[0]).max() > 1e-4, f"randomising {item} changed nothing"


def test_commands_resample_on_schedule_unless_fixed(env, wrapped):
    """Every ``resample_steps`` steps of an episode (not before, not after), and never for a command
    that ``set_command`` fixed (env 0)."""
    w, reset, step = wrapped
    r = env._resample_steps
    assert r == round(env.cfg.command.resample_interval_s / env.dt) > 2
    s = _pushes_off(reset(jax.random.split(jax.random.key(5), N)))
    sentinel = np.array([9.0, 9.0, 9.0], np.float32)  # outside every range: the sampler never draws it
    fixed = np.array([0.3, 0.0, -0.5], np.float32)
    command = np.tile(sentinel, (N, 1))
    command[0] = fixed
    one = env.set_command(_env(s, 0), jnp.asarray(fixed))
    info = jax.tree.map(lambda full, x: full.at[0].set(x), s.info, one.info)
    s = s.replace(info=dict(info, command=jnp.asarray(command), step=jnp.full_like(s.info["step"], r - 2)))
    zero = jnp.zeros((N, env.action_size))
    before = step(s, zero)  # episode step r - 1
    at = step(before, zero)  # step r: resampled
    after = step(at, zero)  # step r + 1
    for t, state in ((r - 1, before), (r, at), (r + 1, after)):
        np.testing.assert_array_equal(np.asarray(state.info["step"]), t)  # no episode ended on the way
    np.testing.assert_array_equal(np.asarray(before.info["command"]), command)
    cmd = np.asarray(at.info["command"])
    np.testing.assert_array_equal(cmd[0], fixed)
    assert np.all(cmd[1:] != sentinel)
    np.testing.assert_array_equal(np.asarray(after.info["command"]), cmd)
    lo = np.array([env.cfg.command.vx[0], env.cfg.command.vy[0], env.cfg.command.yaw_rate[0]])
    hi = np.array([env.cfg.command.vx[1], env.cfg.command.vy[1], env.cfg.command.yaw_rate[1]])
    assert np.all((cmd >= lo - 1e-6) & (cmd <= hi + 1e-6))
    assert len({row.tobytes() for row in cmd[1:]}) > 1  # drawn per env


def test_quaternion_order_at_the_env_boundary(env, wrapped, start):
    w, reset, step = wrapped
    q = np.asarray(start.data.qpos[:, 3:7])  # (w, x, y, z): heading-only rotations
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(q[:, 1:3], 0.0, atol=1e-7)
    np.testing.assert_allclose(np.asarray(start.obs["critic"][:, :3]), [[0, 0, -1]] * N, atol=1e-6)
    # tilt every robot by +30 deg of roll about x: gravity in the IMU frame is (0, -sin, -cos)
    state = reset(jax.random.split(jax.random.key(2), N))
    roll30 = jnp.array([np.cos(np.pi / 12), np.sin(np.pi / 12), 0.0, 0.0])
    qpos = state.data.qpos.at[:, 3:7].set(roll30).at[:, 2].add(0.05)
    state = state.replace(data=state.data.replace(qpos=qpos))
    out = step(state, jnp.zeros((N, env.action_size)))
    # the critic's noise-free copy (the actor's is noisy)
    np.testing.assert_allclose(np.asarray(out.obs["critic"][:, :3]), [[0, -0.5, -np.sqrt(3) / 2]] * N, atol=0.03)


def test_reward_is_the_clipped_sum_of_the_logged_terms(env, wrapped):
    """Env 0 is tipped past the fall limit and env 1 tilted (within it) and thrown upwards, both with a
    command far from what they do: their penalties outweigh the income. Env 0's reward is then the
    fall penalty alone (added after the clip), env 1's exactly 0; the others' the plain sum."""
    w, reset, step = wrapped
    p = env.physics
    state = _pushes_off(reset(jax.random.split(jax.random.key(3), N)))

    def rolled(deg):
        return jnp.array([np.cos(np.radians(deg) / 2), np.sin(np.radians(deg) / 2), 0.0, 0.0])

    quat = slice(p.root_qpos + 3, p.root_qpos + 7)
    qpos = state.data.qpos.at[0, quat].set(rolled(80.0)).at[1, quat].set(rolled(40.0))
    qpos = qpos.at[:2, p.root_qpos + 2].add(0.05)
    qvel = state.data.qvel.at[1, p.root_dof + 2].set(1.5)
    command = state.info["command"].at[:2].set(jnp.array([0.8, 0.0, 1.0]))
    state = state.replace(data=state.data.replace(qpos=qpos, qvel=qvel), info=dict(state.info, command=command))
    out = step(state, jax.random.uniform(jax.random.key(4), (N, env.action_size), minval=-1, maxval=1))
    after = [f"reward/{t}" for t in env.cfg.reward.unclipped_terms]
    assert after == ["reward/termination"] and after[0] in out.metrics
    terms = sum(np.asarray(v) for k, v in out.metrics.items() if k.startswith("reward/") and k not in after)
    fall, reward = np.asarray(out.metrics["fall"]), np.asarray(out.reward)
    np.testing.assert_array_equal(fall, [1.0] + [0.0] * (N - 1))
    np.testing.assert_array_equal(np.asarray(out.metrics["nonfinite"]), 0.0)
    assert terms[0] < -0.02 and terms[1] < -0.02 and np.all(terms[2:] > 0), terms  # the state is as meant
    fall_penalty = env.cfg.reward.weights.termination * env.dt  # -1 per fall, per second of control
    assert fall_penalty < 0
    np.testing.assert_allclose(np.asarray(out.metrics["reward/termination"]), [fall_penalty] + [0.0] * (N - 1))
    assert reward[0] == pytest.approx(fall_penalty, rel=1e-6)
    assert reward[1] == 0.0
    np.testing.assert_allclose(reward[2:], terms[2:], rtol=1e-5, atol=1e-7)
    expected = np.maximum(terms, 0.0) + sum(np.asarray(out.metrics[k]) for k in after)
    np.testing.assert_allclose(reward, expected, rtol=1e-5, atol=1e-7)


def test_the_fall_penalty_counts_after_the_clip_at_zero():
    """A plain-Python reference: penalties that outweigh the income clip to 0, and the fall's penalty,
    added after the clip, still counts; inside the clip (unclipped_terms=[]) it is lost."""
    from wildrobot.envs.rewards import total
    from wildrobot.envs.wildrobot_config import RewardConfig

    terms = {"tracking_lin_vel": jnp.float32(0.03), "orientation": jnp.float32(-0.05),
             "termination": jnp.float32(-4.0)}
    assert float(total(terms, RewardConfig())) == pytest.approx(max(0.03 - 0.05, 0.0) - 4.0)
    assert float(total(terms, RewardConfig(unclipped_terms=[]))) == pytest.approx(0.0)
    assert float(total(terms, RewardConfig(clip_at_zero=False))) == pytest.approx(0.03 - 0.05 - 4.0)
    income = {"tracking_lin_vel": jnp.float32(0.03), "termination": jnp.float32(0.0)}
    assert float(total(income, RewardConfig())) == pytest.approx(0.03)


def test_growing_pushes_follow_the_training_clock_and_an_evaluation_draws_the_configured_kicks():
    """env.push.grow_to: the largest kick grows linearly from velocity's high end to grow_to between
    grow_steps (a plain-Python reference), kicks are drawn up to it, and the env keeps the clock in
    its info only when asked (its default state is unchanged)."""
    from wildrobot.envs import randomize
    from wildrobot.envs.core import TRAINING_STEPS
    from wildrobot.envs.wildrobot_config import PushConfig

    cfg = PushConfig(velocity=[0.1, 0.5], grow_to=0.7, grow_steps=[10e6, 16e6])

    def reference(steps):
        share = min(max((steps - 10e6) / 6e6, 0.0), 1.0)
        return 0.5 + 0.2 * share

    for steps in (0.0, 9.9e6, 10e6, 12e6, 13e6, 16e6, 40e6):
        assert float(randomize.push_top(cfg, jnp.float32(steps))) == pytest.approx(reference(steps), abs=1e-6)
    assert randomize.push_top(PushConfig(), jnp.float32(40e6)) == 0.5  # no curriculum: the configured end
    assert randomize.push_top(cfg, None) == 0.5  # no clock (an env outside wrap_for_training)
    keys = jax.random.split(jax.random.key(4), 4000)
    speeds = np.linalg.norm(np.asarray(jax.vmap(lambda k: randomize.push_kick(k, cfg, 0.7))(keys)), axis=1)
    assert speeds.min() >= 0.1 and speeds.max() <= 0.7 and np.mean(speeds > 0.5) == pytest.approx(1 / 3, abs=0.03)
    same = jax.vmap(lambda k: randomize.push_kick(k, cfg, 0.5))(keys)
    np.testing.assert_array_equal(same, jax.vmap(lambda k: randomize.push_kick(k, PushConfig()))(keys))

    grown = WildRobotEnv(WildRobotEnvConfig(push=cfg))
    info = jax.eval_shape(grown.reset, jax.random.key(0)).info
    assert info[TRAINING_STEPS].shape == () and TRAINING_STEPS not in jax.eval_shape(
        WildRobotEnv(WildRobotEnvConfig()).reset, jax.random.key(0)).info


def test_an_unknown_unclipped_term_is_refused_with_the_names():
    from wildrobot.errors import ConfigError

    cfg = WildRobotEnvConfig()
    bad = dataclasses.replace(cfg, reward=dataclasses.replace(cfg.reward, unclipped_terms=["falls"]))
    with pytest.raises(ConfigError, match=r"unclipped_terms.*termination.*'falls' is not one"):
        bad.validate()


def test_feet_phase_reads_the_soles_centre_or_lowest_point_as_configured():
    """A foot pitched in swing: centre at the clock's 25 mm peak, lowest point 12 mm lower. The
    centre (the default) meets the target; the lowest point (the clearance the gait metrics read)
    pays what a 12 mm shortfall costs, exp(-0.012^2 / sigma)."""
    from wildrobot.envs.rewards import feet_phase
    from wildrobot.envs.wildrobot_config import RewardConfig

    c = {"moving": jnp.float32(1.0), "phase": jnp.array([np.pi / 2, -np.pi / 2]),
         "foot_height": jnp.array([0.025, 0.0]), "sole_height": jnp.array([0.013, 0.0])}
    centre = RewardConfig(swing_height=0.025, feet_phase_sigma=0.0008)
    lowest = dataclasses.replace(centre, feet_phase_point="lowest")
    assert centre.feet_phase_point == "centre"
    assert float(feet_phase(c, centre)) == pytest.approx(1.0)
    assert float(feet_phase(c, lowest)) == pytest.approx(np.exp(-0.012**2 / 0.0008), rel=1e-4)


def test_the_mirror_maps_a_motion_onto_its_mirror_image():
    """Two robots from home: one with a command and random actions, the other with the mirrored
    command and mirrored actions. Every observation of the second is the mirror of the first's
    (the gait clock aside: both clocks run in step, so it is checked on its own). The clock steps
    faster on this turn (``obs.gait_frequency_per_yaw_rate``), the same for the mirrored turn."""
    cfg = WildRobotEnvConfig()
    cfg = dataclasses.replace(
        cfg, reset=ResetConfig(joint_noise=0.0, random_heading=False),
        obs=dataclasses.replace(cfg.obs, gait_frequency_per_yaw_rate=1.5, gait_frequency_yaw_from=0.1),
        **{g: dataclasses.replace(getattr(cfg, g), enabled=False) for g in ("randomization", "push", "noise")})
    env = WildRobotEnv(cfg)
    mirror, steps = env.mirror, 25
    roll = Rollout(env, num_envs=2, steps=steps)
    start = _same_start(roll.reset(jax.random.split(jax.random.key(0), 2)))
    command = jnp.array([0.2, 0.1, 0.4])
    start = jax.vmap(env.set_command)(start, jnp.stack([command, command * jnp.array([1.0, -1.0, -1.0])]))
    actions = 0.4 * jax.random.normal(jax.random.key(1), (steps, env.action_size))
    final, out = roll.run(start, jnp.stack([actions, mirror.action(actions)], axis=1))
    assert not np.any(out["done_any"])

    clock = [b for b in env.observation_layout if b["name"] == "gait_phase"][0]
    motion = np.ones(env.observation_size["actor"], bool)
    motion[clock["start"]:clock["start"] + clock["size"]] = False
    for state in (start, final):
        obs = np.asarray(state.obs["actor"])
        np.testing.assert_allclose(obs[1][motion], np.asarray(mirror.actor_obs(obs[0]))[motion], atol=2e-3)
    obs = np.asarray(final.obs["actor"])
    assert np.abs(obs[1] - obs[0])[motion].max() > 0.05  # the two motions do differ
    # both clocks ran at the turn's frequency, 2 Hz + 1.5 Hz per rad/s beyond 0.1 rad/s ...
    phase = 2 * np.pi * (cfg.obs.gait_frequency + 1.5 * (0.4 - 0.1)) * steps * env.dt
    np.testing.assert_allclose(obs[:, ~motion], [[np.sin(phase), np.cos(phase)]] * 2, atol=1e-4)
    # ... and the gait clock's mirror is the other foot's clock: half a period later
    np.testing.assert_allclose(np.asarray(mirror.actor_obs(obs[0]))[~motion],
                               [np.sin(phase + np.pi), np.cos(phase + np.pi)], atol=1e-4)


def test_the_gait_clock_runs_at_the_commands_frequency():
    """``gait_frequency`` against its formula, and ``advance_clock`` as the phase a step on, wrapped."""
    cfg = WildRobotEnvConfig()
    env = WildRobotEnv(dataclasses.replace(cfg, obs=dataclasses.replace(
        cfg.obs, gait_frequency=1.5, gait_frequency_per_yaw_rate=2.0, gait_frequency_yaw_from=0.1)))
    commands = jnp.array([[0.2, 0.0, 0.0], [0.0, 0.1, -0.1], [0.1, 0.0, 0.5], [0.0, 0.0, -0.3]])
    expected = [1.5, 1.5, 1.5 + 2.0 * 0.4, 1.5 + 2.0 * 0.2]
    np.testing.assert_allclose(np.asarray(env.gait_frequency(commands)), expected, rtol=1e-6)
    clock = jnp.float32(2 * np.pi - 0.01)
    for command, f in zip(commands, expected):
        step = 2 * np.pi * f * env.dt
        np.testing.assert_allclose(float(env.advance_clock(clock, command)), step - 0.01, atol=1e-5)
    with pytest.raises(ConfigError, match="gait_frequency_per_yaw_rate"):
        dataclasses.replace(cfg, obs=dataclasses.replace(cfg.obs, gait_frequency_per_yaw_rate=-1.0)).validate()
