"""GAE against a plain Python loop written straight from the definition."""

import numpy as np

from wildrobot.algos.gae import compute_gae


def gae_reference(rewards, values, next_values, terminations, dones, gamma, lam):
    T, N = rewards.shape
    adv = np.zeros((T, N))
    for n in range(N):
        running = 0.0
        for t in reversed(range(T)):
            bootstrap = 0.0 if terminations[t, n] else next_values[t, n]
            delta = rewards[t, n] + gamma * bootstrap - values[t, n]
            running = delta + (0.0 if dones[t, n] else gamma * lam * running)
            adv[t, n] = running
    return adv, adv + values


def test_gae_matches_python_loop_with_falls_and_time_limits():
    rng = np.random.default_rng(0)
    T, N = 12, 5
    rewards, values, next_values = (rng.normal(size=(T, N)) for _ in range(3))
    terminations = (rng.random((T, N)) < 0.1).astype(np.float32)
    truncations = ((rng.random((T, N)) < 0.1) & (terminations == 0)).astype(np.float32)
    dones = np.maximum(terminations, truncations)
    assert terminations.sum() > 0 and truncations.sum() > 0
    adv, target = compute_gae(rewards, values, next_values, terminations, dones, 0.97, 0.95)
    ref_adv, ref_target = gae_reference(rewards, values, next_values, terminations, dones, 0.97, 0.95)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(target, ref_target, rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_but_a_fall_does_not():
    r = np.array([[1.0]]); v = np.array([[0.0]]); nv = np.array([[10.0]])
    done = np.array([[1.0]])
    adv_trunc, _ = compute_gae(r, v, nv, np.array([[0.0]]), done, 0.5, 0.9)
    adv_fall, _ = compute_gae(r, v, nv, np.array([[1.0]]), done, 0.5, 0.9)
    assert float(adv_trunc[0, 0]) == 1.0 + 0.5 * 10.0
    assert float(adv_fall[0, 0]) == 1.0
