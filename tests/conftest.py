"""Shared test setup: a persistent compilation cache, Hydra composition helpers, and the short
real training runs that the evaluation, export, sim-to-sim and resume tests read (each trained
once per test session, by a session-scoped fixture)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
os.environ.setdefault("WILDROBOT_JAX_CACHE", str(Path.home() / ".cache" / "wildrobot" / "jax"))

from wildrobot.jax_setup import configure_jax  # noqa: E402

configure_jax()


def compose(overrides: list[str]):
    """The DictConfig ``run.py`` would see for these overrides."""
    from wildrobot.cli import compose_config

    return compose_config(overrides)


def typed_config(overrides: list[str]):
    from wildrobot.cli import load_config

    return load_config(overrides)


# The smallest PPO-on-stub setting that still exercises every part of an iteration.
TINY_PPO = [
    "env=stub",
    "algo=ppo",
    "trainer.num_envs=8",
    "algo.unroll_length=8",
    "algo.num_minibatches=2",
    "algo.num_epochs=2",
    "algo.policy.hidden_sizes=[16]",
    "algo.value.hidden_sizes=[16]",
    "algo.num_eval_envs=4",
    "trainer.progress=false",
]

STUB_OVERRIDES = [*TINY_PPO, "trainer.iterations=20", "trainer.log_every=10", "trainer.eval_every=10",
                  "trainer.checkpoint_every=10"]

# The smallest WildRobot run that writes a checkpoint: one PPO iteration on two envs (the cost is
# compiling the env's programs, not training).
WILDROBOT_OVERRIDES = [
    "env=wildrobot", "algo=ppo", "trainer.num_envs=2", "algo.unroll_length=2", "algo.num_minibatches=1",
    "algo.num_epochs=1", "algo.policy.hidden_sizes=[16]", "algo.value.hidden_sizes=[16]", "trainer.iterations=1",
    "trainer.log_every=1", "trainer.eval_every=0", "trainer.checkpoint_every=1", "trainer.progress=false",
]


def skip_without_rendering() -> None:
    """Skip a rendering test on a machine with no headless OpenGL, unless ``WILDROBOT_REQUIRE_GL`` is
    set (CI, which installs Mesa's EGL): there a broken renderer fails rather than skips."""
    from wildrobot.render import gl_backend, no_backend_reason

    if gl_backend() is None:
        if os.environ.get("WILDROBOT_REQUIRE_GL"):
            pytest.fail(f"WILDROBOT_REQUIRE_GL is set, but {no_backend_reason()}")
        pytest.skip(f"rendering not tested: {no_backend_reason()}")


def run_cli(args: list[str], cwd: Path, timeout: float = 240, **kwargs):
    import subprocess

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


@pytest.fixture
def tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_trainer(overrides: list[str], run_dir: Path, **kwargs):
    from wildrobot.dispatch import trainer_class

    cfg = typed_config(overrides)
    return trainer_class(cfg)(cfg, run_dir, search_root=run_dir.parent, **kwargs)


def _trained(tmp_path_factory, name: str, overrides: list[str]) -> Path:
    run_dir = tmp_path_factory.mktemp(name) / "run"
    assert make_trainer(overrides, run_dir).run() == 0
    return run_dir


@pytest.fixture(scope="session")
def stub_run(tmp_path_factory) -> Path:
    """A 20-iteration PPO run on the stub env, with latest and best checkpoints (read-only: copy it to change it)."""
    return _trained(tmp_path_factory, "stub_run", STUB_OVERRIDES)


@pytest.fixture(scope="session")
def wildrobot_run(tmp_path_factory) -> Path:
    """A one-iteration PPO run on WildRobot with its checkpoint (read-only: copy it to change it)."""
    return _trained(tmp_path_factory, "wildrobot_run", WILDROBOT_OVERRIDES)


def assert_trees_equal(a, b):
    """Bit-for-bit equal pytrees (typed PRNG keys compared by their data)."""
    import jax
    import numpy as np

    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        if jax.numpy.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


RESUME_CADENCE = ["trainer.log_every=2", "trainer.checkpoint_every=2", "trainer.eval_every=2"]


def interrupted_and_uninterrupted(overrides: list[str], root: Path):
    """Under ``root``: ``full``, an uninterrupted 4-iteration run, and ``part``, a run stopped after
    2 iterations then resumed to 4 (from another Hydra directory); returns the full run's trainer."""
    full = make_trainer(overrides + RESUME_CADENCE + ["trainer.iterations=4"], root / "full")
    assert full.run() == 0
    assert make_trainer(overrides + RESUME_CADENCE + ["trainer.iterations=2"], root / "part").run() == 0
    resumed = make_trainer(overrides + RESUME_CADENCE + ["trainer.iterations=4", f"trainer.resume={root / 'part'}"],
                           root / "resumed_hydra_dir")
    assert resumed.run() == 0
    return full


def assert_resume_was_exact(root: Path, full):
    """The final states of ``interrupted_and_uninterrupted``'s two runs are equal bit for bit; returns it."""
    a, _, step_a = restore_latest(root / "full", full)
    b, _, step_b = restore_latest(root / "part", full)
    assert step_a == step_b == 4
    assert_trees_equal(a, b)
    return a


def assert_params_close(a, b, rtol: float = 1e-5, atol: float = 1e-6):
    """Two carries' parameters equal within float tolerance (a run split over devices or processes
    against one device grouping its minibatches the same way)."""
    import jax
    import numpy as np

    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def assert_equals_one_process_on_two_devices(run_dir: Path, overrides: list[str], workdir: Path, env=None):
    """The run in ``run_dir`` (split over two processes) against the same overrides run by one
    process splitting the batch over two fake CPU devices: the final parameters agree."""
    import subprocess

    env = dict(env if env is not None else os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    single = subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides, f"hydra.run.dir={workdir / 'single'}"],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    reference = make_trainer(TINY_PPO, workdir / "unused")
    a, _, step_a = restore_latest(run_dir, reference)
    b, _, step_b = restore_latest(workdir / "single", reference)
    assert step_a == step_b
    assert_params_close(a, b)


def restore_latest(run_dir: Path, trainer, step=None):
    """The carry saved under ``run_dir`` (newest or ``step``), restored onto the trainer's init."""
    import jax

    from wildrobot.envs.factory import make_env
    from wildrobot.train.checkpoint import Checkpointer

    algo = trainer.make_algorithm(make_env(trainer.cfg.env))
    abstract = jax.eval_shape(algo.init, jax.random.key(trainer.cfg.seed))
    ckpt = Checkpointer(run_dir / "checkpoints", keep=100)
    try:
        return ckpt.restore_newest(abstract, step=step)
    finally:
        ckpt.close()
