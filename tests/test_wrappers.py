"""Auto-reset, truncation vs termination, and the finished episode's statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wildrobot.envs.core import TRAINING_STEPS
from wildrobot.envs.stub import StubEnv
from wildrobot.envs.stub_config import StubEnvConfig
from wildrobot.envs.wrappers import termination, wrap_for_training


@pytest.fixture(scope="module")
def batched():
    env = wrap_for_training(StubEnv(StubEnvConfig(episode_length=5)))
    return env, jax.jit(env.reset), jax.jit(env.step)


def test_time_limit_is_truncation_not_termination(batched):
    env, reset, step = batched
    state = reset(jax.random.split(jax.random.key(0), 3))
    state = state.replace(info=dict(state.info, command=jnp.zeros((3, 2))))
    state = state.replace(data={**state.data, "velocity": jnp.zeros((3, 2))})
    for i in range(5):
        state = step(state, jnp.zeros((3, 2)))
        expect = 1.0 if i == 4 else 0.0
        np.testing.assert_array_equal(state.done, expect)
        np.testing.assert_array_equal(state.info["truncation"], expect)
        np.testing.assert_array_equal(termination(state), 0.0)
    np.testing.assert_array_equal(state.info["episode_metrics"]["length"], 5.0)
    np.testing.assert_array_equal(state.info["steps"], 0)


def test_fall_terminates_resets_and_keeps_episode_stats(batched):
    env, reset, step = batched
    state = reset(jax.random.split(jax.random.key(1), 2))
    # Env 0 is pushed past max_speed; env 1 is left alone.
    fast = state.data["velocity"].at[0].set(jnp.array([10.0, 0.0]))
    state = state.replace(data={**state.data, "velocity": fast})
    before = state.info["reset_rng"]
    state = step(state, jnp.zeros((2, 2)))
    np.testing.assert_array_equal(state.done, [1.0, 0.0])
    np.testing.assert_array_equal(termination(state), [1.0, 0.0])
    assert float(state.info["episode_metrics"]["fall"][0]) == 1.0
    assert float(state.info["episode_metrics"]["length"][0]) == 1.0
    assert float(state.info["episode_metrics"]["return"][0]) == pytest.approx(float(state.reward[0]))
    # The final observation is the fallen state, the current one a fresh episode.
    assert float(state.info["final_obs"]["actor"][0, 0]) == pytest.approx(10.0)
    assert abs(float(state.obs["actor"][0, 0])) <= 0.5
    assert not bool(jnp.all(jax.random.key_data(state.info["reset_rng"]) == jax.random.key_data(before)))


def test_physics_vmapped_in_chunks_equals_one_vmap_with_shared_and_per_env_arguments():
    from wildrobot.envs.physics import vmap_in_chunks

    def fn(shared, per_env, empty):
        return {"y": jnp.sin(per_env) * shared["gain"], "empty": empty}

    shared = {"gain": jnp.array([2.0, 3.0])}  # unbatched, like a model every env shares
    x = jnp.arange(24.0).reshape(12, 2)
    empty = jnp.zeros((12, 0))  # mjx.Data has such leaves (e.g. act)
    whole = jax.vmap(fn, in_axes=(None, 0, 0))(shared, x, empty)
    chunked = jax.jit(jax.vmap(vmap_in_chunks(fn, chunk=5), in_axes=(None, 0, 0)))(shared, x, empty)  # 12 -> 3 x 4
    np.testing.assert_allclose(whole["y"], chunked["y"], rtol=1e-6)
    assert chunked["empty"].shape == (12, 0)
    # per-env values of a model field (domain randomisation) batch through the chunks too
    gains = jnp.arange(24.0).reshape(12, 2)
    per_env = jax.vmap(vmap_in_chunks(fn, chunk=5), in_axes=({"gain": 0}, 0, 0))({"gain": gains}, x, empty)
    np.testing.assert_allclose(per_env["y"], jnp.sin(x) * gains, rtol=1e-6)
    # unbatched calls run fn as it is
    np.testing.assert_allclose(vmap_in_chunks(fn, chunk=5)(shared, x[0], empty[0])["y"], jnp.sin(x[0]) * 2.0 * jnp.array([1.0, 1.5]))


@pytest.mark.parametrize("finished", [[], [3], [0, 5, 6], list(range(8))])
def test_resetting_only_the_finished_envs_equals_resetting_the_whole_batch(finished):
    """The auto-reset makes new episodes only for the envs that finished when they are few (a
    gather, reset and scatter); what comes out is what a reset of the whole batch gives."""
    import dataclasses

    env = StubEnv(StubEnvConfig(episode_length=50))
    some = wrap_for_training(env)
    some = dataclasses.replace(some, few_resets=3 / 8)  # up to 3 of the 8 envs: gathered
    whole = dataclasses.replace(some, few_resets=0.0)  # always the whole batch
    state = jax.jit(some.reset)(jax.random.split(jax.random.key(2), 8))
    fast = state.data["velocity"].at[jnp.asarray(finished, jnp.int32)].set(jnp.array([10.0, 0.0]))
    state = state.replace(data={**state.data, "velocity": fast})
    a, b = jax.jit(some.step)(state, jnp.zeros((8, 2))), jax.jit(whole.step)(state, jnp.zeros((8, 2)))
    np.testing.assert_array_equal(a.done, np.isin(np.arange(8), finished).astype(np.float32))
    plain = lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(plain(x), plain(y)), a, b)
    # the finished envs start again (a new episode's observation), the others go on
    if finished:
        assert float(jnp.max(jnp.abs(a.obs["actor"][jnp.asarray(finished), 0]))) <= 0.5


class _StubWithClock(StubEnv):
    """The stub with a training curriculum's clock in its info (as WildRobot with env.push.grow_to)."""

    def reset(self, key):
        state = super().reset(key)
        return state.replace(info=dict(state.info, **{TRAINING_STEPS: jnp.zeros((), jnp.float32)}))


def test_the_curriculum_clock_counts_the_batch_env_steps_across_episodes():
    """An env that keeps info["training_steps"] gets the env steps of the whole batch: each step adds
    the batch's size, a slot whose episode ended keeps its clock, the env's own step leaves it; an env
    without the key gets none."""
    env = _StubWithClock(StubEnvConfig(episode_length=4))
    batched = wrap_for_training(env)
    state = jax.jit(batched.reset)(jax.random.split(jax.random.key(3), 3))
    np.testing.assert_array_equal(state.info[TRAINING_STEPS], 0.0)
    step = jax.jit(batched.step)
    ended = np.zeros(3, int)
    for i in range(10):  # episodes of 4 steps: two time limits and a fall on the way
        if i == 5:
            state = state.replace(data={**state.data, "velocity": state.data["velocity"].at[1].set(jnp.array([10.0, 0.0]))})
        state = step(state, jnp.zeros((3, 2)))
        ended += np.asarray(state.done).astype(int)
        np.testing.assert_array_equal(state.info[TRAINING_STEPS], 3.0 * (i + 1))
    # slots 0 and 2: time limits after steps 4 and 8; slot 1: the limit at 4, the fall at step 6, then a
    # new episode's limit at step 10 (by hand: 2 + 3 + 2 = 7 ends)
    np.testing.assert_array_equal(ended, [2, 3, 2])
    one = env.reset(jax.random.key(0))
    assert float(env.step(one, jnp.zeros(2)).info[TRAINING_STEPS]) == 0.0  # an evaluation's clock stays at 0
    plain = wrap_for_training(StubEnv(StubEnvConfig(episode_length=4)))
    assert TRAINING_STEPS not in jax.jit(plain.step)(plain.reset(jax.random.split(jax.random.key(3), 3)),
                                                     jnp.zeros((3, 2))).info
