"""PPO: the loss against a hand-computed example, learning the stub task, compiling once."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import TINY_PPO, make_trainer
from wildrobot.algos.ppo import gaussian_log_prob, ppo_loss
from wildrobot.config import PPOConfig


def test_ppo_loss_matches_hand_computation():
    cfg = PPOConfig(clip_epsilon=0.2, value_loss_coef=0.5, entropy_coef=0.01, normalize_advantages=False)
    # One action dimension, std 1 (log_std 0); the "networks" return fixed outputs.
    new_mean = jnp.array([[0.1], [-0.2]])
    actions = jnp.array([[0.5], [0.0]])
    old_log_prob = gaussian_log_prob(actions, jnp.zeros((2, 1)), jnp.zeros(1))
    batch = {
        "actor": jnp.zeros((2, 1)), "critic": jnp.zeros((2, 1)), "action": actions,
        "action_mean": jnp.zeros((2, 1)), "log_std": jnp.zeros((2, 1)), "log_prob": old_log_prob,
        "value": jnp.array([0.4, 0.3]), "advantage": jnp.array([1.0, -1.0]), "target": jnp.array([1.0, -0.5]),
    }
    params = {"policy": None, "log_std": jnp.zeros(1), "value": None}
    total, m = ppo_loss(params, batch, lambda p, x: new_mean, lambda p, x: jnp.array([0.5, 0.0]), cfg)

    # By hand: ratio = exp(-(a - m_new)^2 / 2 + (a - m_old)^2 / 2)
    r1 = math.exp(-0.5 * 0.4**2 + 0.5 * 0.5**2)  # 1.0460, inside the clip range
    r2 = math.exp(-0.5 * 0.2**2 + 0.0)  # 0.9802
    policy_loss = -0.5 * (min(r1 * 1.0, min(max(r1, 0.8), 1.2) * 1.0) + min(r2 * -1.0, min(max(r2, 0.8), 1.2) * -1.0))
    # Value: v = 0.5 (old 0.4, target 1.0): clipped v = 0.5 -> err 0.25; v = 0.0 (old 0.3, target -0.5):
    # clipped v = 0.1 -> err max(0.25, 0.36) = 0.36.
    value_loss = 0.5 * (0.25 + 0.36) / 2
    entropy = 0.5 * math.log(2 * math.pi * math.e)
    assert float(m["loss/policy"]) == pytest.approx(policy_loss, rel=1e-5)
    assert float(m["loss/value"]) == pytest.approx(value_loss, rel=1e-5)
    assert float(m["loss/entropy"]) == pytest.approx(entropy, rel=1e-5)
    assert float(total) == pytest.approx(policy_loss + 0.5 * value_loss - 0.01 * entropy, rel=1e-5)
    assert float(m["ppo/clip_fraction"]) == 0.0


def test_clipping_stops_the_gradient_outside_the_trust_region():
    cfg = PPOConfig(clip_epsilon=0.1, normalize_advantages=False, entropy_coef=0.0)
    actions = jnp.array([[1.0]])
    batch = {
        "actor": jnp.zeros((1, 1)), "critic": jnp.zeros((1, 1)), "action": actions,
        "action_mean": jnp.zeros((1, 1)), "log_std": jnp.zeros((1, 1)),
        "log_prob": gaussian_log_prob(actions, jnp.zeros((1, 1)), jnp.zeros(1)),
        "value": jnp.zeros(1), "advantage": jnp.array([1.0]), "target": jnp.zeros(1),
    }

    def loss_of_mean(mu):
        params = {"policy": mu, "log_std": jnp.zeros(1), "value": None}
        return ppo_loss(params, batch, lambda p, x: p, lambda p, x: jnp.zeros(1), cfg)[0]

    inside = jax.grad(loss_of_mean)(jnp.array([[0.05]]))  # ratio ~1.05: gradient flows
    outside = jax.grad(loss_of_mean)(jnp.array([[0.5]]))  # ratio ~1.46 > 1.1 with A > 0: clipped
    assert float(jnp.abs(inside).sum()) > 0
    assert float(jnp.abs(outside).sum()) == 0.0


@pytest.fixture(scope="module")
def stub_run(tmp_path_factory):
    """One real training run on the stub env, shared by the tests below."""
    run_dir = tmp_path_factory.mktemp("ppo_stub") / "run"
    trainer = make_trainer(
        ["env=stub", "algo=ppo", "trainer.num_envs=64", "algo.unroll_length=16", "trainer.iterations=40",
         "trainer.log_every=10", "trainer.eval_every=20", "trainer.checkpoint_every=20", "trainer.progress=false"],
        run_dir,
    )
    code = trainer.run()
    return trainer, run_dir, code


def test_ppo_learns_the_stub_task(stub_run):
    trainer, _, code = stub_run
    assert code == 0
    m = trainer.final_metrics
    # A random policy earns about 20 per 100-step episode; tracking the command earns close to 100.
    assert m["eval/return"] > 85.0, m
    assert m["eval/fall_rate"] == 0.0
    assert m["ppo/explained_variance"] > 0.5


def test_chunk_compiles_once(stub_run):
    trainer, _, _ = stub_run
    assert trainer.trace_count == 1  # 4 chunks ran, one trace


def test_best_and_latest_checkpoints_are_kept(stub_run):
    _, run_dir, _ = stub_run
    assert sorted(int(p.name) for p in (run_dir / "checkpoints/latest").iterdir() if p.name.isdigit()) == [20, 40]
    assert len([p for p in (run_dir / "checkpoints/best").iterdir() if p.name.isdigit()]) == 1
