"""PPO+AMP (wildrobot.algos.amp): its math against hand computations, the replay buffer, the
features and reference starts of the training wrapper, feature parity on both physics backends, a
discriminator that learns to tell a fixed policy from the reference, a style learned on the stub
env, exact resume, a bad dataset refused before compiling, and the command line end to end."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import (TINY_PPO, assert_resume_was_exact, interrupted_and_uninterrupted, make_trainer, run_cli,
                      typed_config)
from wildrobot.algos.amp import (SCORE_BLOCK, command_coverage, discriminator_loss, replay_insert, replay_sample,
                                 style_reward)

TINY_AMP = [o.replace("algo=ppo", "algo=ppo_amp") for o in TINY_PPO] + [
    "algo.discriminator.hidden_sizes=[16]", "algo.discriminator.batch_size=16", "algo.discriminator.replay_size=256",
    # the style reward at full weight from the first of these few iterations
    "algo.style_reward_weight=1", "algo.style_ramp_env_steps=0",
]


# -- the math ---------------------------------------------------------------------------------------
def _linear(params, x):
    layer = params["params"]["Dense_0"]
    return x @ layer["kernel"][:, 0] + layer["bias"][0]


def test_discriminator_loss_matches_a_hand_computation():
    w, b = np.array([0.5, -1.0, 2.0]), 0.25
    params = {"params": {"Dense_0": {"kernel": jnp.asarray(w[:, None], jnp.float32), "bias": jnp.asarray([b], jnp.float32)}}}
    ref = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -1.0]])
    pol = np.array([[2.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    total, m = discriminator_loss(params, _linear, jnp.asarray(ref, jnp.float32), jnp.asarray(pol, jnp.float32),
                                  gradient_penalty=10.0, logit_regularization=0.05)
    d_ref = [sum(wi * xi for wi, xi in zip(w, x)) + b for x in ref]
    d_pol = [sum(wi * xi for wi, xi in zip(w, x)) + b for x in pol]
    lsq = 0.5 * (sum((d - 1) ** 2 for d in d_ref) / 2 + sum((d + 1) ** 2 for d in d_pol) / 3)
    w2 = sum(wi * wi for wi in w)  # a linear D's input gradient is w everywhere
    expected = lsq + 0.5 * 10.0 * w2 + 0.05 * w2
    assert math.isclose(float(m["amp/least_squares"]), lsq, rel_tol=1e-6)
    assert math.isclose(float(m["amp/gradient_penalty"]), w2, rel_tol=1e-6)
    assert math.isclose(float(total), expected, rel_tol=1e-6)
    assert math.isclose(float(m["amp/accuracy_reference"]), sum(d > 0 for d in d_ref) / 2, rel_tol=1e-6)
    assert math.isclose(float(m["amp/accuracy_policy"]), sum(d < 0 for d in d_pol) / 3, rel_tol=1e-6)


def test_gradient_penalty_of_an_mlp_matches_finite_differences():
    from wildrobot.algos.networks import MLP

    net = MLP((8, 8), 1, "relu")
    params = net.init(jax.random.key(0), jnp.zeros(4))
    apply = lambda p, x: net.apply(p, x)[..., 0]  # noqa: E731
    rng = np.random.default_rng(0)
    ref, pol = rng.normal(size=(5, 4)), 3.0 + 2.0 * rng.normal(size=(5, 4))
    _, m = discriminator_loss(params, apply, jnp.asarray(ref, jnp.float32), jnp.asarray(pol, jnp.float32), 1.0, 0.0)
    f = lambda x: float(apply(params, jnp.asarray(x, jnp.float64 if jax.config.x64_enabled else jnp.float32)))  # noqa: E731
    h = 1e-2

    def mean_squared_gradient(samples):
        squares = []
        for x in samples:
            g = [(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(4)]
            squares.append(sum(gi * gi for gi in g))
        return np.mean(squares)

    on_reference, on_policy = mean_squared_gradient(ref), mean_squared_gradient(pol)
    assert math.isclose(float(m["amp/gradient_penalty"]), on_reference, rel_tol=2e-2)
    # the penalty is taken on the reference samples only: the policy's differ enough to tell
    assert not math.isclose(on_policy, on_reference, rel_tol=1e-1)


@pytest.mark.parametrize("d", [-3.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0])
def test_style_reward_formula_at_known_scores(d):
    assert math.isclose(float(style_reward(jnp.float32(d))), max(0.0, 1.0 - 0.25 * (d - 1.0) ** 2), abs_tol=1e-7)


def test_style_reward_is_one_for_the_reference_target_and_zero_for_the_policy_target():
    assert float(style_reward(jnp.float32(1.0))) == 1.0 and float(style_reward(jnp.float32(-1.0))) == 0.0


def test_command_coverage_matches_a_plain_python_reference():
    rng = np.random.default_rng(0)
    commands = rng.uniform(-0.6, 0.6, (4, 5, 3)).astype(np.float32)
    clips = rng.uniform(-0.3, 0.3, (6, 3)).astype(np.float32)
    widths = np.array([0.1, 0.2, 0.15], np.float32)
    got = np.asarray(command_coverage(jnp.asarray(commands), jnp.asarray(clips), jnp.asarray(widths)))
    for index in np.ndindex(commands.shape[:-1]):
        c = commands[index].tolist()
        want = max(math.exp(-0.5 * sum(((c[i] - clip[i]) / widths[i]) ** 2 for i in range(3))) for clip in clips.tolist())
        assert got[index] == pytest.approx(want, rel=1e-5, abs=1e-12)
    at_a_clip = command_coverage(jnp.asarray(clips), jnp.asarray(clips), jnp.asarray(widths))
    np.testing.assert_allclose(np.asarray(at_a_clip), 1.0)


def test_replay_buffer_keeps_ring_order_and_samples_only_filled_slots():
    replay = jnp.full((5, 1), -1.0)
    replay, nxt, count = replay_insert(replay, jnp.int32(0), jnp.int32(0), jnp.array([[1.0], [2.0], [3.0]]))
    assert (int(nxt), int(count)) == (3, 3)
    drawn = replay_sample(jax.random.key(0), replay, count, 2000)
    assert set(np.asarray(drawn)[:, 0].tolist()) == {1.0, 2.0, 3.0}  # never an empty slot (-1)
    replay, nxt, count = replay_insert(replay, nxt, count, jnp.array([[4.0], [5.0], [6.0], [7.0]]))
    assert np.asarray(replay)[:, 0].tolist() == [6.0, 7.0, 3.0, 4.0, 5.0]  # the oldest two overwritten
    assert (int(nxt), int(count)) == (2, 5)
    replay, nxt, count = replay_insert(replay, nxt, count, jnp.arange(8.0)[:, None] + 10)
    assert sorted(np.asarray(replay)[:, 0].tolist()) == [13.0, 14.0, 15.0, 16.0, 17.0]  # the newest five


# -- the training wrapper: features and reference starts ----------------------------------------------
def _stub():
    from wildrobot.envs.factory import make_env

    return make_env(typed_config(TINY_PPO).env)


def test_features_of_the_last_transition_are_the_pre_reset_state():
    from wildrobot.envs.wrappers import wrap_for_training

    env = wrap_for_training(_stub(), features=True)
    state = jax.jit(env.reset)(jax.random.split(jax.random.key(0), 2))
    state = state.replace(data=dict(state.data, velocity=jnp.array([[5.0, 0.0], [0.1, 0.0]])))  # env 0 is too fast
    nxt = jax.jit(env.step)(state, jnp.zeros((2, 2)))
    assert np.asarray(nxt.done).tolist() == [1.0, 0.0]
    np.testing.assert_allclose(np.asarray(nxt.info["final_obs"]["features"][0]), [5.0, 0.0])  # before the reset
    np.testing.assert_allclose(np.asarray(nxt.obs["features"]), np.asarray(nxt.data["velocity"]))  # after it


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_reference_starts_take_their_share_of_resets(share):
    from wildrobot.envs.wrappers import wrap_for_training

    stub = _stub()
    transitions, starts = stub.synthetic_reference()
    env = wrap_for_training(stub, features=True, starts=starts, start_share=share)
    state = jax.jit(env.reset)(jax.random.split(jax.random.key(1), 64))
    velocity = np.asarray(state.data["velocity"])
    from_reference = np.array([np.min(np.linalg.norm(starts["velocity"] - v, axis=-1)) < 1e-6 for v in velocity])
    assert from_reference.all() if share == 1.0 else not from_reference.any()
    if share == 1.0:  # with the clip's command
        np.testing.assert_array_equal(np.asarray(state.info["command"]), 0.0)


def test_the_command_observation_is_the_command_each_state_follows():
    """``wrap_for_training(..., command=True)``: ``obs["command"]`` after a reset, a reference start
    (the clip's command), a command changed in an episode, and an auto-reset (``final_obs`` keeps the
    ended episode's)."""
    from wildrobot.envs.wrappers import wrap_for_training

    stub = _stub()
    _, starts = stub.synthetic_reference()
    starts = dict(starts, command=np.full_like(starts["command"], 0.25))
    env = wrap_for_training(stub, features=True, starts=starts, start_share=0.5, command=True)
    state = jax.jit(env.reset)(jax.random.split(jax.random.key(2), 16))
    command = np.asarray(state.obs["command"])
    np.testing.assert_array_equal(command, np.asarray(state.info["command"]))
    at_clip = np.all(command == 0.25, axis=-1)
    assert 0 < at_clip.sum() < 16  # reference starts with the clip's command, and the env's own draws
    fell, kept = int(np.flatnonzero(~at_clip)[0]), int(np.flatnonzero(at_clip)[0])  # a drawn command falls
    changed = state.replace(
        info=dict(state.info, command=state.info["command"].at[kept].set(jnp.array([0.1, -0.2]))),
        data=dict(state.data, velocity=state.data["velocity"].at[fell].set(jnp.array([5.0, 0.0]))))
    nxt = jax.jit(env.step)(changed, jnp.zeros((16, 2)))
    assert float(nxt.done[fell]) == 1.0 and float(nxt.done[kept]) == 0.0  # it started again
    np.testing.assert_array_equal(np.asarray(nxt.obs["command"]), np.asarray(nxt.info["command"]))
    np.testing.assert_allclose(np.asarray(nxt.obs["command"][kept]), [0.1, -0.2])
    np.testing.assert_array_equal(np.asarray(nxt.info["final_obs"]["command"][fell]), command[fell])
    assert not np.array_equal(np.asarray(nxt.obs["command"][fell]), command[fell])  # the new episode's
    with pytest.raises(ValueError, match="takes no command"):
        wrap_for_training(_NoCommand(stub), command=True)


class _NoCommand:
    """An env that takes no command (for the wrapper's refusal)."""

    def __init__(self, env):
        self.env = env
        self.command_labels = ()
        self.episode_length = env.episode_length


# -- feature parity on the robot ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def builtin_reference():
    """The shipped gait library seen through the MuJoCo C env's features."""
    from wildrobot.envs.factory import make_env
    from wildrobot.train.reference import load_reference

    cfg = typed_config(["env=wildrobot", "algo=ppo_amp", "env.sim.backend=mujoco"])
    env = make_env(cfg.env)
    return cfg, env, load_reference(cfg, env)


@pytest.mark.parametrize("backend", ["mujoco", "mjx"])
def test_a_reference_frame_set_into_the_physics_gives_the_dataset_features(builtin_reference, backend):
    from wildrobot.envs.factory import make_env
    from wildrobot.train.reference import PARITY_TOLERANCE, feature_parity

    cfg, _, reference = builtin_reference
    env = make_env(typed_config(["env=wildrobot", "algo=ppo_amp", f"env.sim.backend={backend}"]).env)
    assert env.physics_backend == backend
    error = feature_parity(env, reference, frames=16)
    assert error <= PARITY_TOLERANCE
    # and the check can fail: features of the wrong frames are far off
    shifted = dataclasses.replace(reference, start_features=np.roll(reference.start_features, 7, axis=0))
    assert feature_parity(env, shifted, frames=16) > 100 * PARITY_TOLERANCE


def test_the_reference_gives_its_clips_commands(builtin_reference):
    _, _, reference = builtin_reference
    commands = reference.commands
    expected = {tuple(np.round(np.asarray(clip.command, np.float64), 6)) for clip in reference.clips}
    assert commands.shape == (len(expected), 3) and len(expected) == len(reference.clips)
    assert {tuple(np.round(c.astype(np.float64), 6)) for c in commands} == expected
    assert (0.0, 0.0, 0.0) in expected and (0.3, 0.0, -0.1) in expected
    silent = dataclasses.replace(reference, clips=(*reference.clips[:-1], reference.clips[-1].replace(command=None)))
    assert silent.commands is None  # a clip that does not say which command it realises


def test_style_command_widths_reach_the_algorithm_through_the_trainer(tmp_path):
    from wildrobot.envs.factory import make_env

    trainer = make_trainer(TINY_AMP + ["algo.style_command_widths=[0.3,0.3]"], tmp_path / "run")
    algo = trainer.make_algorithm(make_env(trainer.cfg.env))
    assert algo.env.with_command
    np.testing.assert_array_equal(np.asarray(algo.clip_commands), np.zeros((1, 2)))  # the synthetic style's
    plain = make_trainer(TINY_AMP, tmp_path / "plain")
    assert not plain.make_algorithm(make_env(plain.cfg.env)).env.with_command and plain.cfg.algo.style_command_widths == []


def test_builtin_library_has_walking_clips_with_their_commands(builtin_reference):
    _, env, reference = builtin_reference
    assert len(reference.clips) >= 5 and reference.transitions.shape[1:] == (2, env.feature_size)
    assert math.isclose(float(reference.weights.sum()), 1.0, rel_tol=1e-5)
    assert np.max(reference.starts["command"][:, 0]) >= 0.2  # walking forward, not only standing


def test_a_reference_start_sets_the_gait_clock_to_the_clips_phase(builtin_reference):
    """The env's clock lifts foot k while sin(phase + k pi) > 0: a reference start at the middle of a
    foot's swing in its clip finds that foot's clock at the top of its swing (within a control step: the
    swing's middle frame), the clock at the frame's phase,
    and a start in a standing clip (no phase) at the clock's 0. Either way the episode's step count
    starts at 0, so its first command is kept the whole resampling interval."""
    from wildrobot.motions.checks import _phases

    cfg, env, reference = builtin_reference
    starts = reference.starts
    per_step = 2 * np.pi * cfg.env.obs.gait_frequency * env.dt

    @jax.jit
    def begin(key, frame):  # the clock's phase of each foot as the env's rewards read it
        state = env.reset_from(key, frame)
        return state, env.quantities(state.data, state.info)["phase"]

    key = jax.random.key(0)
    checked = 0
    for clip_end, clip in zip(np.cumsum([c.num_frames for c in reference.clips]), reference.clips):
        assert clip.fps == pytest.approx(1 / env.dt)  # the shipped clips are at the env's rate: rows are frames
        first = clip_end - clip.num_frames
        contact = clip.foot_contact > 0.5
        swings = [(foot, (a + b - 1) // 2) for foot in range(2) for a, b in _phases(~contact[:, foot])
                  if 0 < a and b < clip.num_frames]
        phases = starts["phase"][first:clip_end]
        if not swings:
            assert np.isnan(phases).all()
            state, _ = begin(key, {k: v[first] for k, v in starts.items()})
            assert int(state.info["step"]) == 0 and float(state.info["clock"]) == 0.0
            continue
        assert np.isfinite(phases).all()
        for foot, mid in swings[:2]:
            state, phase = begin(key, {k: v[first + mid] for k, v in starts.items()})
            assert int(state.info["step"]) == 0  # the clock is set, not the step count
            assert float(state.info["clock"]) == pytest.approx(np.mod(starts["phase"][first + mid], 2 * np.pi), abs=1e-5)
            clock = float(phase[foot])  # this foot's phase, where rewards.feet_phase lifts it by sin(phase)
            assert math.cos(clock - np.pi / 2) > math.cos(1.01 * per_step), (clip.name, foot, mid)
            checked += 1
    assert checked >= 20


def test_gait_phase_of_a_made_up_contact_pattern():
    """Swings of 10 frames every 20, alternating feet: the first foot's swing centres at pi / 2, the
    second's at 3 pi / 2, 2 pi / 40 a frame between and beyond them; no swings: NaN."""
    from wildrobot.motions.checks import gait_phase

    frames = 100
    contact = np.ones((frames, 2))
    for start in range(5, frames - 10, 20):  # swings [5, 15) foot 0, [25, 35) foot 1, ...
        contact[start:start + 10, (start // 20) % 2] = 0
    expected = np.mod(np.pi / 2 + 2 * np.pi * (np.arange(frames) - 9.5) / 40, 2 * np.pi)
    np.testing.assert_allclose(gait_phase(contact), expected, atol=1e-9)
    # the other foot first: shifted by half a cycle
    np.testing.assert_allclose(gait_phase(contact[:, ::-1]), np.mod(expected + np.pi, 2 * np.pi), atol=1e-9)
    assert np.isnan(gait_phase(np.ones((frames, 2)))).all()
    # a swing cut by the clip's end is not read (the phase runs on from the swings before it) ...
    cut = contact.copy()
    cut[95:, 1] = 0
    np.testing.assert_allclose(gait_phase(cut), expected, atol=1e-9)
    # ... except in a loop, where it runs on across the seam: one cycle of 40 frames, its second
    # swing across the seam (frames 35-39 and 0-4 lift foot 1, centred on frame -0.5)
    one = np.ones((40, 2))
    one[15:25, 0] = 0
    one[35:, 1] = one[:5, 1] = 0
    looped = np.mod(np.pi / 2 + 2 * np.pi * (np.arange(40) - 19.5) / 40, 2 * np.pi)
    np.testing.assert_allclose(gait_phase(one, loop=True), looped, atol=1e-9)
    assert np.isnan(gait_phase(one)).all()  # not a loop: one whole swing, no phase
    # both feet in the air together (a hop): no alternating phase
    hop = np.ones((frames, 2))
    hop[10:20] = hop[50:60] = 0
    assert np.isnan(gait_phase(hop)).all()


# -- learning -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stub_amp():
    """PPOAMP on the stub with its synthetic style, initialised, and one rollout of a fixed policy."""
    from wildrobot.envs.wrappers import wrap_for_training
    from wildrobot.algos.amp import PPOAMP

    cfg = typed_config(TINY_AMP + ["trainer.num_envs=32", "algo.reference_start_share=0",
                               "algo.discriminator.learning_rate=1e-3", "algo.discriminator.batch_size=64"])
    stub = _stub()
    transitions, _ = stub.synthetic_reference()
    algo = PPOAMP(cfg.algo, wrap_for_training(stub, features=True), 32, 10, transitions)
    state = jax.jit(algo.init)(jax.random.key(0))
    _, traj, _ = jax.jit(algo.rollout)(state, jax.random.key(1))
    return algo, state, traj


def test_discriminator_separates_a_fixed_policy_and_its_reward_changes(stub_amp):
    algo, state, traj = stub_amp

    @jax.jit
    def train(state):
        state, shaped, _ = algo.shape_rewards(state, traj)
        amp, metrics = jax.lax.scan(lambda a, _: algo.auxiliary_step(a), state.amp, None, length=200)
        return state.replace(amp=amp), shaped["reward"], jax.tree.map(lambda m: m[-1], metrics)

    trained, before, metrics = train(state)
    # (a few of the random policy's velocities lie among the reference's: those stay ambiguous)
    assert float(metrics["amp/accuracy_reference"]) > 0.9 and float(metrics["amp/accuracy_policy"]) > 0.75
    assert float(metrics["amp/score_reference"]) - float(metrics["amp/score_policy"]) > 1.0
    _, after, _ = jax.jit(algo.shape_rewards)(trained, traj)
    # the same rollout, judged by the trained discriminator, earns less style reward
    assert float(jnp.mean(after["reward"])) < float(jnp.mean(before)) - 1e-3


def test_a_centred_style_reward_has_zero_mean_over_the_rollout(stub_amp):
    import copy

    algo, state, traj = stub_amp
    centred = copy.copy(algo)
    centred.cfg = dataclasses.replace(algo.cfg, center_style_reward=True)
    _, shaped, metrics = jax.jit(centred.shape_rewards)(state, traj)
    style = np.asarray(shaped["reward"]) - algo.cfg.task_reward_weight * np.asarray(traj["reward"])
    assert abs(style.mean()) < 1e-6 and style.std() > 0
    assert float(metrics["amp/style_reward"]) > 0  # the logged style reward is the uncentred one


@pytest.mark.parametrize("steps,envs", [(1, 5), (2, SCORE_BLOCK), (3, SCORE_BLOCK - 324)],
                         ids=["under_a_block", "whole_blocks", "last_block_padded"])
def test_scoring_a_rollout_in_blocks_gives_the_scores_of_one_pass(stub_amp, steps, envs):
    """``PPOAMP.score`` (blocks of SCORE_BLOCK rows on the CPU, the last one padded) against D on every
    row at once."""
    algo, state, _ = stub_amp
    x = jax.random.normal(jax.random.key(3), (steps, envs, 2 * algo.feature_size))
    scored = jax.jit(algo.score)(state.amp.params, x)
    assert scored.shape == x.shape[:-1]
    np.testing.assert_allclose(np.asarray(scored), np.asarray(algo.apply_discriminator(state.amp.params, x)),
                               rtol=1e-5, atol=1e-6)


def test_the_style_weight_ramps_in_over_its_env_steps(stub_amp):
    import copy

    algo, state, traj = stub_amp
    ramped = copy.copy(algo)
    ramped.cfg = dataclasses.replace(algo.cfg, style_ramp_env_steps=10 * algo.env_steps_per_iteration)
    shape = jax.jit(ramped.shape_rewards)
    task = algo.cfg.task_reward_weight * np.asarray(traj["reward"])
    styles = []
    for it in (0, 5, 10, 20):
        _, shaped, metrics = shape(state.replace(iteration=jnp.asarray(it, jnp.int32)), traj)
        assert float(metrics["amp/style_weight"]) == pytest.approx(algo.cfg.style_reward_weight * min(1.0, it / 10))
        styles.append(np.asarray(shaped["reward"]) - task)
    np.testing.assert_allclose(styles[0], 0.0, atol=1e-7)  # the task alone at first
    np.testing.assert_allclose(styles[1], 0.5 * styles[2], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(styles[3], styles[2], rtol=1e-6)
    # counted in env steps: a batch four times larger ramps in a quarter of the iterations
    wider = copy.copy(ramped)
    wider.env_steps_per_iteration = 4 * algo.env_steps_per_iteration
    shares = [float(wider.style_ramp(jnp.asarray(it, jnp.int32))) for it in (0, 1, 2, 3, 10)]
    assert shares == pytest.approx([0.0, 0.4, 0.8, 1.0, 1.0])
    _, full, _ = jax.jit(algo.shape_rewards)(state, traj)  # no ramp: the full weight from the start
    np.testing.assert_allclose(np.asarray(full["reward"]) - task, styles[2], rtol=1e-5, atol=1e-7)


def test_the_style_weight_falls_off_with_the_commands_distance_from_the_clips(stub_amp):
    """``algo.style_command_widths``: each transition's style term times the coverage of the command it
    followed (the wrapper's ``obs["command"]``), the task reward untouched."""
    from wildrobot.algos.amp import PPOAMP
    from wildrobot.envs.wrappers import wrap_for_training

    algo, _, _ = stub_amp
    cfg = dataclasses.replace(algo.cfg, style_command_widths=[0.2, 0.2])
    clip_commands = np.array([[0.5, 0.0], [0.0, 0.0]], np.float32)
    by_command = PPOAMP(cfg, wrap_for_training(_stub(), features=True, command=True), 32, 10,
                        np.asarray(algo.reference), reference_commands=clip_commands)
    state = jax.jit(by_command.init)(jax.random.key(0))  # the wrapper's observations with the command
    _, traj, _ = jax.jit(by_command.rollout)(state, jax.random.key(1))
    command = np.asarray(traj["obs"]["command"])
    assert command.shape == (*traj["reward"].shape, 2)
    # the command each action was chosen for: the one in the policy's own observation
    np.testing.assert_array_equal(command, np.asarray(traj["obs"]["actor"])[..., _stub().observation["actor"].slice("command")])
    coverage = np.asarray(command_coverage(jnp.asarray(command), jnp.asarray(clip_commands), jnp.asarray([0.2, 0.2])))
    assert coverage.min() < 0.2 and coverage.max() > 0.8  # the stub's commands lie near and far from the clips
    task = algo.cfg.task_reward_weight * np.asarray(traj["reward"])
    _, everywhere, _ = jax.jit(algo.shape_rewards)(state, traj)
    _, weighted, metrics = jax.jit(by_command.shape_rewards)(state, traj)
    np.testing.assert_allclose(np.asarray(weighted["reward"]) - task,
                               coverage * (np.asarray(everywhere["reward"]) - task), rtol=1e-4, atol=1e-7)
    assert float(metrics["amp/command_coverage"]) == pytest.approx(coverage.mean(), rel=1e-5)


def test_style_command_widths_are_refused_without_a_width_per_command_or_the_clips_commands(stub_amp):
    from wildrobot.algos.amp import PPOAMP
    from wildrobot.envs.wrappers import wrap_for_training
    from wildrobot.errors import ConfigError

    algo, _, _ = stub_amp
    training = wrap_for_training(_stub(), features=True, command=True)
    three = dataclasses.replace(algo.cfg, style_command_widths=[0.1, 0.1, 0.15])
    with pytest.raises(ConfigError, match=r"has 3 widths; this env's command has 2 components \(vx, vy\)"):
        PPOAMP(three, training, 32, 10, np.asarray(algo.reference), reference_commands=np.zeros((1, 2)))
    two = dataclasses.replace(algo.cfg, style_command_widths=[0.1, 0.1])
    with pytest.raises(ConfigError, match="this dataset gives none"):
        PPOAMP(two, training, 32, 10, np.asarray(algo.reference))
    with pytest.raises(ConfigError, match="command=True"):
        PPOAMP(two, wrap_for_training(_stub(), features=True), 32, 10, np.asarray(algo.reference),
               reference_commands=np.zeros((1, 2)))
    with pytest.raises(ConfigError, match="algo.style_command_widths"):
        typed_config(TINY_AMP + ["algo.style_command_widths=[0.1,0]"])


def test_a_reward_scale_scales_the_style_reward_as_the_task_reward(stub_amp):
    """``algo.reward_scale`` multiplies the rollout's env reward (PPO) and the style term alike, so the
    blend keeps its balance."""
    import copy

    algo, state, traj = stub_amp
    scaled = copy.copy(algo)
    scaled.cfg = dataclasses.replace(algo.cfg, reward_scale=0.1)
    task = algo.cfg.task_reward_weight * np.asarray(traj["reward"])
    _, full, _ = jax.jit(algo.shape_rewards)(state, traj)
    # the rollout a scale of 0.1 collects: the same transitions with a tenth of the env reward
    _, tenth, _ = jax.jit(scaled.shape_rewards)(state, dict(traj, reward=0.1 * traj["reward"]))
    style = np.asarray(full["reward"]) - task
    assert np.abs(style).max() > 1e-4
    np.testing.assert_allclose(np.asarray(tenth["reward"]), 0.1 * np.asarray(full["reward"]), rtol=1e-5, atol=1e-8)


def _velocity_distance(overrides, tmp_path):
    trainer = make_trainer(overrides, tmp_path / "run")
    trainer.on_finish = lambda carry, metrics: setattr(trainer, "carry", carry)
    assert trainer.run() == 0
    v = np.asarray(trainer.carry.env_state.data["velocity"])
    return float(np.mean(np.linalg.norm(v - np.array([0.5, 0.0]), axis=-1)))


STYLE_ONLY = ["env=stub", "algo=ppo_amp", "trainer.num_envs=64", "algo.unroll_length=16", "algo.num_minibatches=4",
              "algo.num_epochs=2", "algo.policy.hidden_sizes=[32]", "algo.value.hidden_sizes=[32]",
              "trainer.progress=false", "trainer.log_every=50", "trainer.eval_every=0", "trainer.checkpoint_every=0",
              "algo.discriminator.hidden_sizes=[32]", "algo.discriminator.batch_size=128",
              "algo.discriminator.replay_size=4096", "algo.task_reward_weight=0", "algo.reference_start_share=0",
              "algo.symmetry_coef=0", "algo.discriminator.learning_rate=1e-3", "algo.learning_rate=1e-3",
              "algo.lr_schedule=constant", "algo.style_reward_weight=1", "algo.style_ramp_env_steps=0"]


def test_amp_learns_the_reference_style_on_the_stub(tmp_path):
    """Style reward only: the synthetic reference moves at (0.5, 0) m/s, while the random commands
    (and the start) spread the velocities; AMP alone must bring the policy to the reference's."""
    before = _velocity_distance(STYLE_ONLY + ["trainer.iterations=1"], tmp_path / "a")
    after = _velocity_distance(STYLE_ONLY + ["trainer.iterations=200"], tmp_path / "b")
    assert before > 0.4
    assert after < 0.25 and after < 0.5 * before


# -- the run: resume, tools, errors, command line -----------------------------------------------------
@pytest.fixture(scope="module")
def amp_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("amp_resume")
    return root, interrupted_and_uninterrupted(TINY_AMP, root)


def test_amp_resume_matches_an_uninterrupted_run_bit_for_bit(amp_runs):
    state = assert_resume_was_exact(*amp_runs)
    assert int(state.amp.replay_count) > 0  # the buffer, discriminator and normaliser are in the checkpoint


def test_amp_logs_its_curves_and_evaluates_with_the_tools(amp_runs):
    from wildrobot.eval import evaluate_policy
    from wildrobot.runs import load_run
    from wildrobot.train.logging import read_scalars

    root, _ = amp_runs
    scalars = read_scalars(root / "full" / "tensorboard")
    for tag in ("amp/score_reference", "amp/score_policy", "amp/accuracy", "amp/gradient_penalty", "reward/style",
                "reward/task", "amp/style_reward", "eval/return"):
        assert tag in scalars and all(np.isfinite(v) for _, v in scalars[tag]), tag
    from wildrobot.plot import make_plots

    written = {p.name for p in make_plots([str(root / "full")], out=root / "plots")}
    assert "motion_style.png" in written and (root / "plots" / "motion_style.png").stat().st_size > 10_000
    loaded = load_run(root / "full")
    assert loaded.cfg.algo.name == "ppo_amp" and loaded.step == 4
    res = evaluate_policy(loaded, steps=5)
    assert res.per_episode["length"].shape[0] == len(loaded.env.evaluation_commands)
    from wildrobot.export import check_against_jax, export

    onnx_path, _, _ = export(loaded, root / "policy.onnx")  # the actor alone: the discriminator stays behind
    assert check_against_jax(loaded, onnx_path, samples=64) < 1e-4


def test_a_bad_dataset_stops_the_run_before_compiling_with_the_loaders_message(tmp_path):
    from wildrobot.motions.clip import read_clip, save_clip
    from wildrobot.motions.features import BUILTIN_DATASET

    clip = read_clip(next(BUILTIN_DATASET.parent.glob("walk_*.npz")))
    bad = clip.replace(joint_names=tuple(n if n != clip.joint_names[0] else "elbow" for n in clip.joint_names))
    save_clip(tmp_path / "bad" / "bad.npz", bad)
    res = run_cli(["env=wildrobot", "algo=ppo_amp", f"algo.motion_dataset={tmp_path / 'bad'}", "trainer.num_envs=2"],
                  cwd=tmp_path)
    assert res.returncode == 2
    assert "algo.motion_dataset" in res.stderr and "lacks the robot's joint(s)" in res.stderr and "elbow" in res.stderr
    assert "Compiling" not in res.stdout


def test_the_stub_refuses_a_motion_file(tmp_path):
    from wildrobot.errors import ConfigError

    with pytest.raises(ConfigError, match="stub env reads no motion files"):
        make_trainer(TINY_AMP + ["algo.motion_dataset=some/folder"], tmp_path / "run").run()


def test_cli_trains_ppo_amp_on_wildrobot_end_to_end(tmp_path):
    res = run_cli(["env=wildrobot", "algo=ppo_amp", "trainer.num_envs=2", "algo.unroll_length=2",
                   "algo.num_minibatches=1", "algo.num_epochs=1", "algo.policy.hidden_sizes=[16]",
                   "algo.value.hidden_sizes=[16]", "trainer.iterations=2", "trainer.log_every=1",
                   "trainer.eval_every=0", "trainer.checkpoint_every=1", "trainer.progress=true",
                   "algo.discriminator.hidden_sizes=[16]", "algo.discriminator.batch_size=16",
                   "algo.discriminator.replay_size=64", "hydra.run.dir=run"], cwd=tmp_path, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Training ppo_amp on wildrobot" in res.stdout and "style" in res.stdout
    assert (tmp_path / "run" / "checkpoints" / "latest" / "2").is_dir()


def test_verify_checks_the_dataset_and_feature_parity(tmp_path):
    res = run_cli(["env=wildrobot", "algo=ppo_amp", "trainer=verify", "trainer.num_envs=2"], cwd=tmp_path, timeout=400)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "reference dataset" in res.stdout and "feature parity" in res.stdout


def test_a_relative_dataset_is_recorded_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer = make_trainer(["env=wildrobot", "algo=ppo_amp", "algo.motion_dataset=motions/walk"], tmp_path / "run")
    assert trainer.cfg.algo.motion_dataset == str(tmp_path / "motions" / "walk")
    assert Path(trainer.cfg.algo.motion_dataset).is_absolute()


def test_gait_next_to_the_reference_is_logged_at_each_evaluation(tmp_path):
    overrides = ["env=wildrobot", "algo=ppo_amp", "trainer.num_envs=2", "algo.unroll_length=2", "algo.num_minibatches=1",
                 "algo.num_epochs=1", "algo.policy.hidden_sizes=[16]", "algo.value.hidden_sizes=[16]",
                 "trainer.iterations=1", "trainer.log_every=1", "trainer.eval_every=1", "trainer.checkpoint_every=1",
                 "trainer.progress=false", "algo.num_eval_envs=2", "algo.eval_steps=5",
                 "algo.discriminator.hidden_sizes=[16]", "algo.discriminator.batch_size=16",
                 "algo.discriminator.replay_size=64"]
    trainer = make_trainer(overrides, tmp_path / "run")
    assert trainer.run() == 0
    m = trainer.final_metrics
    assert m["gait/dtw"] > 0 and np.isfinite(m["gait/dtw"])
    for key in ("gait/cadence_ratio", "gait/stride_ratio", "gait/clearance_ratio"):
        # an untrained policy mostly stands: its ratios are finite and >= 0; < 2 is a loose bound (it has
        # no gait to step faster, longer or higher than the clips')
        assert key in m and np.isfinite(m[key]) and 0 <= m[key] < 2, (key, m[key])


@pytest.mark.parametrize("overrides", [["algo=ppo_amp"], ["experiment=amp_walk"]])
def test_ppo_amp_on_wildrobot_matches_the_env_to_the_shipped_clips(overrides):
    """algo=ppo_amp on env=wildrobot (conf/algo_env/ppo_amp_wildrobot.yaml), and the preset over it,
    set the env's gait clock, swing height and pelvis height to those of the shipped reference clips
    (what they were generated with, and what they hold)."""
    from wildrobot.motions.clip import read_clip
    from wildrobot.motions.features import BUILTIN_DATASET
    from wildrobot.motions.generator import GaitSettings

    cfg = typed_config(overrides)
    assert cfg.algo.name == "ppo_amp"
    # the ramp the recipe was measured with: 500 iterations of trainer=default's 512 envs, 250 of the preset's 1024
    iterations = {512: 500, 1024: 250}[cfg.trainer.num_envs]
    assert cfg.algo.style_ramp_env_steps == iterations * cfg.trainer.num_envs * cfg.algo.unroll_length
    gait = GaitSettings()
    assert cfg.env.obs.gait_frequency == pytest.approx(1 / (2 * gait.step_time), rel=1e-3)
    assert cfg.env.reward.swing_height == pytest.approx(gait.swing_height)
    heights = [read_clip(p).root_pos[:, 2].mean() for p in BUILTIN_DATASET.parent.glob("walk_*.npz")]
    assert cfg.env.reward.base_height_target == pytest.approx(float(np.mean(heights)), abs=2e-3)
    # the feet-phase width scales with the swing height squared: not lifting costs as at the env's default
    env = typed_config([]).env.reward
    scaled = env.feet_phase_sigma * (cfg.env.reward.swing_height / env.swing_height) ** 2
    assert cfg.env.reward.feet_phase_sigma == pytest.approx(scaled, rel=0.05)
    # ... and reads the soles' lowest points, whose peak is the clearance the clips hold and are judged by
    assert cfg.env.reward.feet_phase_point == "lowest"
    # no term pulls towards the home pose, which neither the walking clips nor the standing one hold
    from wildrobot.robot import load_robot_description

    desc, stand = load_robot_description(), read_clip(BUILTIN_DATASET.parent / "stand.npz")
    home = dict(zip(desc.joint_names, desc.home))
    assert max(abs(q - home[name]) for name, q in zip(stand.joint_names, stand.joint_pos.mean(axis=0))) > 0.1
    assert cfg.env.reward.weights.pose == 0 and cfg.env.reward.weights.stand_still == 0
    # the clips it was measured with (the whole library, turning clips included), found among the
    # shipped datasets from any working directory
    from wildrobot.motions.clip import dataset_files
    from wildrobot.motions.features import SHIPPED
    from wildrobot.train.reference import dataset_path

    assert dataset_path(cfg) == SHIPPED / "walk" / "manifest.yaml"
    commands = [read_clip(p).command for p, _ in dataset_files(dataset_path(cfg))]
    assert len(commands) == 16 and any(c[2] for c in commands)  # 16 clips, turning ones among them
    # algo=ppo_amp: the clock steps at the clips' cadence on every command a clip shows, faster on
    # turns past the library's fastest, up to the env's own clock on the evaluation's fastest turns;
    # there the style term fades (no clip shows that gait)
    from wildrobot.envs.factory import make_env

    obs, wr_env = cfg.env.obs, make_env(cfg.env)
    assert obs.gait_frequency_yaw_from >= max(abs(c[2]) for c in commands) > 0
    fastest = max(abs(c[2]) for c in wr_env.evaluation_commands)
    at_fastest = float(wr_env.gait_frequency(jnp.array([0.0, 0.0, fastest])))
    if overrides == ["experiment=amp_walk"]:  # the preset keeps the clock and style term it was measured with
        assert obs.gait_frequency_per_yaw_rate == 0 and cfg.algo.style_command_widths == []
    else:
        assert at_fastest == pytest.approx(typed_config([]).env.obs.gait_frequency, rel=0.01)
        assert len(cfg.algo.style_command_widths) == 3
    assert sorted(p for p, _ in dataset_files(dataset_path(cfg))) == sorted(p for p, _ in dataset_files(BUILTIN_DATASET))
    # the optimiser AMP was measured with, whatever algo=ppo's has become since; the preset's batch
    assert (cfg.algo.learning_rate, cfg.algo.lr_schedule, cfg.algo.desired_kl, cfg.algo.num_minibatches) == (
        pytest.approx(1e-3), "adaptive_kl", pytest.approx(0.01), 8)
    # the discriminator batch: 512 since 2026-12-05 (0.90 x PPO's speed), the preset's figures with 1024
    assert cfg.algo.discriminator.batch_size == (1024 if overrides == ["experiment=amp_walk"] else 512)
    if overrides == ["experiment=amp_walk"]:
        assert (cfg.trainer.num_envs, cfg.trainer.iterations) == (1024, 1000)
    # only AMP on WildRobot: PPO keeps the env's own gait terms, and AMP on another env its own config
    assert typed_config([]).algo.name == "ppo"
    assert typed_config([]).env.obs.gait_frequency == pytest.approx(2.0)
    assert typed_config(["env=stub", "algo=ppo_amp"]).env == typed_config(["env=stub"]).env
