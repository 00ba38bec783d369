"""The ecosystem both ways, with the real packages (dev dependencies, pinned in pyproject.toml):
our envs under Brax's and MuJoCo Playground's own wrappers (and Brax's PPO loss), Playground's envs
and any registered env under our trainers, and the auto-reset that must start a new episode."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wildrobot.envs.stub import StubEnv
from wildrobot.envs.stub_config import StubEnvConfig

ROOT = Path(__file__).resolve().parents[1]


def brax_wrap(env, episode_length):
    from brax.envs.wrappers import training as brax_training

    return brax_training.EvalWrapper(brax_training.wrap(env, episode_length=episode_length))


def playground_wrap(env, episode_length):
    from brax.envs.wrappers import training as brax_training
    from mujoco_playground._src.wrapper import wrap_for_brax_training

    return brax_training.EvalWrapper(wrap_for_brax_training(env, episode_length=episode_length))


def rollout(wrapped, keys, actions):
    """``len(actions)`` steps in one scan (an env step that dropped a metric key a wrapper added, as
    Brax's evaluation wrapper's ``reward``, would not even trace: the carry of the episode wrapper's
    scan would change); per step: the command, done and truncation."""

    def body(state, action):
        nxt = wrapped.step(state, action)
        return nxt, (nxt.info["command"], nxt.done, nxt.info["truncation"])

    state = wrapped.reset(keys)
    return jax.jit(lambda s, a: jax.lax.scan(body, s, a))(state, actions)


@pytest.mark.parametrize("wrap", [brax_wrap, playground_wrap], ids=["brax", "playground"])
def test_an_outside_auto_reset_starts_a_new_episode_of_our_env(wrap):
    """Brax's and Playground's auto-reset put back only the first physics state and observation; the
    env notices and draws a new episode (here: the command), and a time limit is a truncation."""
    env = StubEnv(StubEnvConfig(max_speed=100.0))  # no falls: every episode ends at the time limit
    n, length = 4, 5
    wrapped = wrap(env, length)
    # Brax's wrappers size their counters by rng.shape[:-1]: raw uint32 keys, as Brax users make them
    _, (command, done, truncation) = rollout(wrapped, jax.random.split(jax.random.PRNGKey(0), n),
                                                    jnp.zeros((3 * length, n, env.action_size)))
    done, truncation = np.asarray(done), np.asarray(truncation)
    ends = np.zeros(3 * length, bool)
    ends[length - 1 :: length] = True
    assert np.all(done[ends] == 1) and np.all(done[~ends] == 0)
    assert np.all(truncation[ends] == 1)  # time limits are truncations, not falls
    command = np.asarray(command)
    for episode in range(3):
        steps = command[episode * length + (episode > 0) : (episode + 1) * length]
        assert np.all(steps == steps[:1])  # one command for an episode ...
    first, second = command[length - 1], command[length + 1]
    assert np.all(np.any(first != second, axis=-1))  # ... and a new one after the auto-reset


def test_a_wrappers_metric_survives_our_envs_step():
    env = StubEnv(StubEnvConfig())
    state = env.reset(jax.random.key(3))
    stepped = env.step(state.replace(metrics={**state.metrics, "wrapper/extra": jnp.float32(7.0)}),
                       jnp.zeros(env.action_size))
    assert float(stepped.metrics["wrapper/extra"]) == 7.0
    assert set(state.metrics) <= set(stepped.metrics)


@pytest.fixture(scope="module")
def wildrobot_under_brax():
    """WildRobot (MuJoCo C) under Brax's training wrappers with a 3-step time limit."""
    from brax.envs.wrappers import training as brax_training

    from wildrobot.cli import load_config
    from wildrobot.envs.factory import make_env

    env = make_env(load_config(["env=wildrobot", "env.sim.backend=mujoco"]).env)
    return env, brax_training.wrap(env, episode_length=3)


def test_brax_auto_reset_redraws_wildrobots_episode_state(wildrobot_under_brax):
    env, wrapped = wildrobot_under_brax
    n = 4
    state = jax.jit(wrapped.reset)(jax.random.split(jax.random.PRNGKey(1), n))
    step = jax.jit(wrapped.step)
    infos, action_rate = [], []
    for _ in range(4):  # the 3rd step ends the episode; the 4th begins the next one
        state = step(state, jnp.full((n, env.action_size), 0.3))  # one action, held
        infos.append(jax.tree.map(np.asarray, state.info))
        action_rate.append(np.asarray(state.metrics["reward/action_rate"]))
    assert np.all(np.asarray(state.info["step"]) == 1)  # the episode restarted ...
    fresh = jax.vmap(env.advance_clock)(jnp.zeros(n), jnp.asarray(infos[3]["command"]))
    np.testing.assert_allclose(infos[3]["clock"], np.asarray(fresh), atol=1e-6)  # ... and its gait clock
    assert np.all(infos[2]["clock"] > infos[3]["clock"] + 1e-3)  # (three steps on before the restart)
    assert np.all(infos[2]["truncation"] == 1)
    before, after = infos[2], infos[3]
    assert np.all(np.any(before["command"] != after["command"], axis=-1))
    # a new push timer (a fresh draw may equal the old countdown by chance: one in a few hundred)
    assert np.sum(before["push_countdown"] - 1 != after["push_countdown"]) >= n - 1
    for name, draw in before["dr"].items():  # new randomisation draws (those that vary)
        if np.ptp(draw) > 0:
            assert np.any(draw != after["dr"][name]), name
    # the previous action starts again from zero: the held action costs an action-rate penalty again
    assert np.all(action_rate[2] == 0) and np.all(action_rate[3] < 0) and np.all(action_rate[0] < 0)


def test_brax_ppo_loss_trains_wildrobot(wildrobot_under_brax):
    """A few updates of Brax's own PPO loss on rollouts of our env under Brax's wrappers (Brax's
    ``ppo.train`` itself needs jax < 0.10; docs/environment.md)."""
    import optax
    from brax.training import acting
    from brax.training.acme import running_statistics
    from brax.training.agents.ppo import losses, networks

    env, wrapped = wildrobot_under_brax
    n = 4
    nets = networks.make_ppo_networks(env.observation_size, env.action_size,
                                      preprocess_observations_fn=running_statistics.normalize,
                                      policy_hidden_layer_sizes=(32,), value_hidden_layer_sizes=(32,),
                                      policy_obs_key="actor", value_obs_key="critic")
    key = jax.random.PRNGKey(2)
    obs_spec = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype),
                            jax.eval_shape(wrapped.reset, jax.random.split(key, n)).obs)
    normalizer = running_statistics.init_state(obs_spec)
    params = losses.PPONetworkParams(policy=nets.policy_network.init(key), value=nets.value_network.init(key))
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)
    make_policy = networks.make_inference_fn(nets)

    @jax.jit
    def update(params, opt_state, env_state, key):
        k_unroll, k_loss = jax.random.split(key)
        policy = make_policy((normalizer, params.policy))
        env_state, data = acting.generate_unroll(wrapped, env_state, policy, k_unroll, unroll_length=4,
                                                 extra_fields=("truncation",))
        data = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), data)  # [envs, time]
        (loss, metrics), grads = jax.value_and_grad(losses.compute_ppo_loss, has_aux=True)(
            params, normalizer, data, k_loss, nets)
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, env_state, loss

    env_state = jax.jit(wrapped.reset)(jax.random.split(key, n))
    start = params
    for i in range(2):
        params, opt_state, env_state, loss = update(params, opt_state, env_state, jax.random.fold_in(key, i))
        assert np.isfinite(float(loss))
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), params, start)
    assert max(jax.tree.leaves(moved)) > 0


def test_our_state_speaks_brax():
    env = StubEnv(StubEnvConfig())
    state = env.reset(jax.random.key(0))
    assert state.pipeline_state is state.data
    moved = state.replace(pipeline_state={"position": jnp.ones(2), "velocity": jnp.zeros(2)})
    np.testing.assert_array_equal(moved.data["position"], 1.0)


def test_our_own_wrapper_never_restarts_an_episode_by_the_mark():
    """Our training wrapper starts episodes itself: its step is the env's ``step_in_episode``, and a
    state whose physics was changed from outside is stepped as it is."""
    env = StubEnv(StubEnvConfig())
    state = env.reset(jax.random.key(0))
    moved = state.replace(data=dict(state.data, position=jnp.array([3.0, 0.0])))
    kept = env.step_in_episode(moved, jnp.zeros(2))
    np.testing.assert_array_equal(kept.info["command"], state.info["command"])
    redrawn = env.step(moved, jnp.zeros(2))  # the public step takes it for an outside auto-reset
    assert np.any(np.asarray(redrawn.info["command"]) != np.asarray(state.info["command"]))


def test_a_blow_up_is_not_taken_for_an_outside_restart():
    """Physics that became NaN differs from itself; the check must not read it as an auto-reset.
    A finite state put back over it is one."""
    from wildrobot.envs.core import EPISODE_MARK

    env = StubEnv(StubEnvConfig())
    state = env.reset(jax.random.key(0))
    nan = jnp.full(2, jnp.nan)
    blown = state.replace(data=dict(state.data, position=nan), info=dict(state.info, **{EPISODE_MARK: nan}))
    kept = env.step(blown, jnp.zeros(2))
    np.testing.assert_array_equal(kept.info["command"], state.info["command"])
    restored = blown.replace(data=state.data)  # an auto-reset's first state, over the blown-up mark
    redrawn = env.step(restored, jnp.zeros(2))
    assert np.any(np.asarray(redrawn.info["command"]) != np.asarray(state.info["command"]))


def test_our_training_wrapper_resets_only_on_steps_where_an_episode_ended():
    """An env whose reset is expensive pays for it only when some env finished."""
    from wildrobot.envs.wrappers import wrap_for_training

    calls = []

    class Counting(StubEnv):
        def reset(self, key):
            jax.debug.callback(lambda: calls.append(1))
            return super().reset(key)

    env = Counting(StubEnvConfig(max_speed=100.0))
    wrapped = wrap_for_training(env, episode_length=3)
    n = 2
    state = jax.jit(wrapped.reset)(jax.random.split(jax.random.key(0), n))
    jax.effects_barrier()
    calls.clear()
    step = jax.jit(wrapped.step)
    for i in range(6):
        state = step(state, jnp.zeros((n, 2)))
        jax.effects_barrier()
        assert len(calls) == (i + 1) // 3, f"after step {i + 1}"  # one batched reset per episode end


# -- outside envs under our trainers -----------------------------------------------------------
@pytest.fixture
def registry_snapshot():
    from wildrobot.envs import registry

    saved = dict(registry._ENVS)
    yield registry
    registry._ENVS.clear()
    registry._ENVS.update(saved)


@dataclasses.dataclass
class MyStubConfig(StubEnvConfig):
    name: str = "mystub"


def test_a_registered_env_is_an_env_option(registry_snapshot):
    from wildrobot.cli import load_config
    from wildrobot.envs.factory import make_env

    registry_snapshot.register_env("mystub", MyStubConfig, StubEnv)
    cfg = load_config(["env=mystub", "env.dt=0.05", "trainer.num_envs=4"])
    assert isinstance(cfg.env, MyStubConfig) and cfg.env.dt == 0.05
    assert isinstance(make_env(cfg.env), StubEnv)
    with pytest.raises(ValueError, match="already registered"):
        registry_snapshot.register_env("mystub", MyStubConfig, lambda c: StubEnv(c))
    with pytest.raises(ValueError, match="defaults to 'mystub'"):
        registry_snapshot.register_env("other", MyStubConfig, StubEnv)


def test_an_entry_point_registers_an_env(registry_snapshot, monkeypatch):
    from importlib import metadata

    class EntryPoint:
        def load(self):
            return lambda: registry_snapshot.register_env("mystub", MyStubConfig, StubEnv)

    monkeypatch.setattr(metadata, "entry_points",
                        lambda group: [EntryPoint()] if group == registry_snapshot.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry_snapshot, "_plugins_loaded", False)
    assert "mystub" in registry_snapshot.env_entries()


def test_playground_config_errors_come_before_anything_loads():
    from wildrobot.cli import load_config
    from wildrobot.errors import ConfigError

    with pytest.raises(ConfigError, match="is not one of MuJoCo Playground's envs"):
        load_config(["env=playground", "env.task=NoSuchTask"])
    with pytest.raises(ConfigError, match="env.impl"):
        load_config(["env=playground", "env.impl=cuda"])


def test_a_playground_env_trains_from_the_command_line(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "run.py", "env=playground", "env.task=CartpoleBalance", "env.episode_length=40",
         "trainer.num_envs=16", "trainer.iterations=4", "trainer.log_every=2", "trainer.eval_every=4",
         "trainer.checkpoint_every=4", "trainer.progress=false", "algo.num_eval_envs=4", "algo.eval_steps=40",
         f"hydra.run.dir={run_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mirror loss is off" in proc.stdout
    assert re.search(r"\| return -?\d", proc.stdout)  # 40-step episodes ended within the run
    assert any((run_dir / "checkpoints").iterdir())


def test_brax_ppo_train_trains_our_env_once_device_put_replicated_is_given_back():
    """Brax 0.14.2's own ``ppo.train`` (its pmap loop, wrappers, evaluator) on our env and the
    pinned jax, which lacks ``jax.device_put_replicated`` until ``give_back_device_put_replicated``."""
    import functools

    from brax.envs.wrappers import training as brax_training
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo

    from wildrobot.jax_setup import give_back_device_put_replicated

    give_back_device_put_replicated()
    replicated = jax.device_put_replicated({"w": jnp.arange(3.0)}, jax.local_devices())
    assert replicated["w"].shape == (jax.local_device_count(), 3)
    evaluations = []
    factory = functools.partial(ppo_networks.make_ppo_networks, policy_obs_key="actor", value_obs_key="critic",
                                policy_hidden_layer_sizes=(8,), value_hidden_layer_sizes=(8,))
    _, params, _ = ppo.train(
        environment=StubEnv(StubEnvConfig(episode_length=20)), num_timesteps=320, num_evals=2, episode_length=20,
        num_envs=8, batch_size=8, num_minibatches=2, unroll_length=5, num_updates_per_batch=1, num_eval_envs=4,
        network_factory=factory, wrap_env_fn=brax_training.wrap, seed=0,
        progress_fn=lambda step, metrics: evaluations.append((int(step), float(metrics["eval/episode_reward"]))))
    assert [step for step, _ in evaluations] == [0, 320]  # before training and after its 320 env steps
    assert all(np.isfinite(r) for _, r in evaluations)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(params))
