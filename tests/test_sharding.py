"""trainer.devices: the env batch split over devices (``wildrobot.train.sharding``).

The runs on two devices happen in one subprocess (``python tests/test_sharding.py``) started with
two fake CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``): this test process's
JAX has already started with one. It prints its findings as JSON, which the tests below read.

On several devices PPO shuffles each device's samples among themselves (no sample crosses
devices), so its minibatches differ from one device's. A run on two devices is therefore compared
with a run on one device that shuffles in the same two groups (``algo.shards = 2``): sharding
itself must change nothing but float rounding. With one minibatch the grouping does not matter,
and two devices equal one device as it trains today.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import (TINY_PPO, assert_resume_was_exact, interrupted_and_uninterrupted, make_trainer, run_cli,
                      typed_config)
from wildrobot.algos.ppo import shuffled_minibatches
from wildrobot.config import ConfigError
from wildrobot.train.sharding import grouped_like_devices

TWO_DEVICES = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", PYTHONUNBUFFERED="1")
RUNS = ["trainer.iterations=4", "trainer.log_every=2", "trainer.eval_every=2", "trainer.checkpoint_every=0"]
AMP = ["algo=ppo_amp", "algo.discriminator.hidden_sizes=[16]", "algo.discriminator.batch_size=16",
       "algo.discriminator.replay_size=64", "algo.style_ramp_env_steps=0"]
# The smallest sharded WildRobot: 4 envs on MJX (MuJoCo C cannot be split), 2 iterations of 2 steps.
MJX = ["env=wildrobot", "env.sim.backend=mjx", "algo=ppo", "trainer.num_envs=4", "algo.unroll_length=2",
       "algo.num_minibatches=2", "algo.num_epochs=1", "algo.policy.hidden_sizes=[16]", "algo.value.hidden_sizes=[16]",
       "trainer.iterations=2", "trainer.log_every=1", "trainer.eval_every=0", "trainer.checkpoint_every=0",
       "trainer.progress=false"]


# -- the minibatches --------------------------------------------------------------------------------
def test_one_shard_gives_todays_minibatches_exactly():
    """Today's shuffle: the rollout flattened time-major, one permutation of all of it."""
    key, x = jax.random.key(3), jax.random.normal(jax.random.key(0), (5, 8, 3))
    before = x.reshape(40, 3)[jax.random.permutation(key, 40)].reshape(4, 10, 3)
    np.testing.assert_array_equal(shuffled_minibatches(key, {"x": x}, 4)["x"], before)


@pytest.mark.parametrize("shards,minibatches", [(2, 2), (2, 4), (4, 2)])
def test_each_minibatch_takes_an_equal_slice_of_every_shard(shards, minibatches):
    steps, envs = 6, 8
    sample = np.arange(steps * envs).reshape(steps, envs)  # sample id = t * envs + n
    out = np.asarray(shuffled_minibatches(jax.random.key(1), {"id": jnp.asarray(sample)}, minibatches, shards)["id"])
    assert out.shape == (minibatches, steps * envs // minibatches)
    assert sorted(out.ravel().tolist()) == list(range(steps * envs))  # a permutation of the batch
    per = steps * envs // (minibatches * shards)
    for mb in out:
        shard_of = (mb % envs) // (envs // shards)
        # exactly `per` samples of each shard, the shards' slices one after the other
        assert shard_of.tolist() == [s for s in range(shards) for _ in range(per)]
    orders = [np.concatenate([mb[s * per:(s + 1) * per] for mb in out]) for s in range(shards)]
    assert any(list(o) != sorted(o) for o in orders)  # shuffled, not in order


# -- which leaves are split ---------------------------------------------------------------------------
def test_the_algorithm_says_which_leaves_are_split_not_their_shapes():
    """16 envs next to a hidden layer 16 wide: the layer stays replicated."""
    from jax.sharding import PartitionSpec

    from wildrobot.dispatch import trainer_class
    from wildrobot.envs.factory import make_env
    from wildrobot.train.sharding import carry_shardings

    cfg = typed_config(TINY_PPO + ["trainer.num_envs=16"])
    algo = trainer_class(cfg)(cfg, Path("unused")).make_algorithm(make_env(cfg.env))
    abstract = jax.eval_shape(algo.init, jax.random.key(0))
    mesh = jax.make_mesh((1,), ("envs",), axis_types=(jax.sharding.AxisType.Auto,))
    specs = carry_shardings(algo, abstract, mesh)
    assert {s.spec for s in jax.tree.leaves(specs.env_state)} == {PartitionSpec("envs")}
    assert jax.tree.leaves(abstract.params["policy"])[0].shape[-1] == 16
    for field in ("params", "opt_state", "obs_stats", "key", "iteration"):
        assert {s.spec for s in jax.tree.leaves(getattr(specs, field))} == {PartitionSpec()}, field


# -- refused before anything compiles ------------------------------------------------------------------
@pytest.mark.parametrize("overrides,expected", [
    (["trainer.num_envs=7", "trainer.devices=2"], "trainer.num_envs=6 or 8"),
    (["trainer.num_envs=8", "algo.unroll_length=3", "algo.num_minibatches=8", "trainer.devices=2"],
     "algo.num_minibatches=4 or 6"),
    (["trainer.devices=0"], "'all'"),
    (["trainer.devices=two"], "'all'"),
])
def test_a_batch_that_does_not_split_is_refused_with_the_values_that_do(overrides, expected):
    with pytest.raises(ConfigError, match="trainer.devices") as err:
        typed_config(TINY_PPO + overrides)
    assert expected in str(err.value)


def test_more_devices_than_jax_sees_exits_2_before_compiling(tmp_path):
    res = run_cli(TINY_PPO + ["trainer.devices=2"], cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "JAX sees 1 device" in res.stderr and "xla_force_host_platform_device_count" in res.stderr
    assert "Compiling" not in res.stdout and not list(tmp_path.glob("outputs/*/*/checkpoints"))


# -- on two devices (one subprocess) -----------------------------------------------------------------
@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_devices")
    res = subprocess.run([sys.executable, __file__, str(root)], cwd=root, env=TWO_DEVICES, capture_output=True,
                         text=True, timeout=400)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_two_devices_equal_one_device_with_the_same_shuffle(two_devices):
    """Equal up to float rounding (a sum over two devices adds in another order). With MJX the
    relative difference is the criterion: Adam's first steps are about sign(gradient), so a
    parameter whose gradient is ~0 can move by 2 x the learning rate on rounding alone."""
    for name in ("stub", "amp_one_minibatch"):
        run = two_devices[name]
        assert run["max_diff"] < 1e-6, (name, run)
    assert two_devices["mjx"]["relative"] < 1e-3, two_devices["mjx"]
    for name in ("stub", "amp_one_minibatch", "mjx"):
        run = two_devices[name]
        assert run["trace_count"] == 1, (name, run)


def test_env_leaves_are_split_over_both_devices_and_the_rest_replicated(two_devices):
    for name in ("stub", "amp_one_minibatch", "mjx"):
        layout = two_devices[name]["layout"]
        assert layout["env_leaves"] == ["split"], (name, layout)
        assert layout["other_leaves"] == ["replicated"], (name, layout)
        assert layout["devices"] == 2


def test_resume_on_two_devices_equals_the_uninterrupted_run(two_devices):
    assert two_devices["resume"]["mismatch"] == "", two_devices["resume"]["mismatch"]
    # a checkpoint written on two devices continues on one (a requeued job on a smaller node)
    assert two_devices["resume"]["other_device_count"] == {"iteration": 4, "devices": 1, "finite": True}


def test_a_run_trained_on_two_devices_loads_in_a_one_device_process(two_devices):
    """As evaluation and export load a run trained on a bigger machine."""
    from wildrobot.runs import load_run

    run = load_run(Path(two_devices["root"]) / "resume" / "full")
    assert int(run.state.iteration) == 4
    assert {len(x.sharding.device_set) for x in jax.tree.leaves(run.state)} == {1}


def test_mujoco_c_physics_is_refused_on_two_devices_before_compiling(two_devices):
    refused = two_devices["mujoco_c"]
    assert "env.sim.backend=mjx" in refused["error"] and "trainer.devices=1" in refused["error"]
    assert refused["trace_count"] == 0 and not refused["checkpoints"]


# -- the subprocess -----------------------------------------------------------------------------------
def _layout(carry) -> dict:
    def kind(leaf):
        if leaf.sharding.is_fully_replicated:
            return "replicated"
        shards = leaf.addressable_shards
        return "split" if len(shards) == 2 and shards[0].data.shape[0] * 2 == leaf.shape[0] else "other"

    other = [getattr(carry, f) for f in carry.__dataclass_fields__ if f != "env_state"]
    return {"env_leaves": sorted({kind(x) for x in jax.tree.leaves(carry.env_state) if x.size}),
            "other_leaves": sorted({kind(x) for x in jax.tree.leaves(other)}),
            "devices": len(jax.tree.leaves(carry.params)[0].sharding.device_set)}


def _train(overrides: list[str], run_dir: Path, shards: int = 0):
    """(trainer, final carry) of a run; ``shards``: one device shuffling in that many groups."""
    trainer = make_trainer(overrides, run_dir)
    if shards:
        grouped_like_devices(trainer, shards)
    finished = {}
    trainer.on_finish = lambda carry, metrics: finished.update(carry=carry)
    assert trainer.run() == 0
    return trainer, finished["carry"]


def _difference(a, b) -> dict:
    """The largest difference of parameters and normalisers, and the relative one, |a - b| / |b|."""
    leaves = jax.tree.leaves(jax.device_get((a.params, a.obs_stats, b.params, b.obs_stats)))
    n = len(leaves) // 2
    x, y = (np.concatenate([np.ravel(v) for v in half]) for half in (leaves[:n], leaves[n:]))
    return {"max_diff": float(np.max(np.abs(x - y))), "relative": float(np.linalg.norm(x - y) / np.linalg.norm(y))}


def _compare(root: Path, name: str, overrides: list[str], one_device_shards: int) -> dict:
    sharded, carry = _train(overrides + ["trainer.devices=2"], root / f"{name}_two")
    _, single = _train(overrides, root / f"{name}_one", shards=one_device_shards)
    return {**_difference(carry, single), "trace_count": sharded.trace_count, "layout": _layout(carry)}


def main(root: Path) -> None:
    assert jax.device_count() == 2, "start with XLA_FLAGS=--xla_force_host_platform_device_count=2"
    out = {"root": str(root), "stub": _compare(root, "stub", TINY_PPO + RUNS, one_device_shards=2),
           "amp_one_minibatch": _compare(root, "amp", TINY_PPO + RUNS + AMP + ["algo.num_minibatches=1"],
                                         one_device_shards=0)}

    two = TINY_PPO + ["trainer.devices=2"]
    full = interrupted_and_uninterrupted(two, root / "resume")
    try:
        assert_resume_was_exact(root / "resume", full)  # restored onto one device, as evaluation loads a run
        mismatch = ""
    except AssertionError as e:  # reported to its own test, not as the fixture's error
        mismatch = str(e) or "the resumed run differs from the uninterrupted one"
    # the same run continued on one device from its checkpoint at iteration 2
    shutil.copytree(root / "resume" / "part", root / "other")
    shutil.rmtree(root / "other" / "checkpoints" / "latest" / "4")
    _, carry = _train(TINY_PPO + ["trainer.iterations=4", "trainer.log_every=2", "trainer.devices=1",
                                  f"trainer.resume={root / 'other'}"], root / "other_hydra_dir")
    out["resume"] = {"mismatch": mismatch, "other_device_count": {
        "iteration": int(carry.iteration), "devices": len(jax.tree.leaves(carry.env_state)[0].sharding.device_set),
        "finite": all(bool(np.all(np.isfinite(x))) for x in jax.tree.leaves(jax.device_get(carry.params)))}}

    refused = make_trainer(["env=wildrobot", "env.sim.backend=mujoco", *MJX[2:], "trainer.devices=2"],
                           root / "mujoco_c")
    try:
        refused.start()
        error = ""
    except ConfigError as e:
        error = str(e)
    out["mujoco_c"] = {"error": error, "trace_count": refused.trace_count,
                       "checkpoints": (root / "mujoco_c" / "checkpoints").exists()}

    out["mjx"] = _compare(root, "mjx", MJX, one_device_shards=2)
    print(json.dumps(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
