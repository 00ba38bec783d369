"""The runner's background compile: the compiled program is the jitted one, traced once; an error
raised while tracing reaches the caller that waits for it; Ctrl-C does not cut the wait short.
The chunk program: its length is an argument, and short chunks continue exactly; chunks that
call back into Python are timed and logged each on its own."""

import os
import signal
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wildrobot.train.runner import BackgroundCompile


def test_compiled_in_background_equals_the_jitted_function_and_traces_once():
    traces = []

    def f(x):
        traces.append(1)
        return {"y": jnp.sin(x["a"]) * 2.0, "n": x["n"] + 1}

    x = {"a": jnp.arange(4.0), "n": jnp.zeros((), jnp.int32)}
    compiled = BackgroundCompile(jax.jit(f), jax.eval_shape(lambda: x)).result()
    out = compiled(x)
    out = compiled(x)  # a compiled executable never traces again
    assert len(traces) == 1
    assert jnp.allclose(out["y"], jnp.sin(x["a"]) * 2.0) and int(out["n"]) == 1


def test_an_error_while_tracing_reaches_the_waiting_caller():
    def bad(x):
        raise ValueError("observation size 7 does not match the policy's 5")

    compiling = BackgroundCompile(jax.jit(bad), jax.ShapeDtypeStruct((3,), jnp.float32))
    with pytest.raises(ValueError, match="does not match"):
        compiling.result()


def test_after_ctrl_c_finish_still_waits_for_the_compiler():
    # Ctrl-C lands while the compile thread works; exiting before it returns would abort the
    # process, so finish() must keep waiting even after an interrupted wait.
    def slow_to_trace(x):
        time.sleep(1.5)
        return x + 1

    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    compiling = BackgroundCompile(jax.jit(slow_to_trace), jax.ShapeDtypeStruct((2,), jnp.float32))
    with pytest.raises(KeyboardInterrupt):
        compiling.result()
    compiling.finish()
    assert time.perf_counter() - start >= 1.5
    assert float(compiling.result()(jnp.ones(2))[0]) == 2.0


@pytest.mark.parametrize("num_envs, warns", [(8, False), (8192, True)])
def test_the_budget_line_names_the_device_and_flags_a_gpu_sized_batch_on_the_cpu(tmp_path, num_envs, warns):
    from conftest import TINY_PPO, make_trainer
    from wildrobot.envs.factory import make_env

    trainer = make_trainer([*TINY_PPO, f"trainer.num_envs={num_envs}"], tmp_path / "run")
    line = trainer._budget_line(trainer.make_algorithm(make_env(trainer.cfg.env)), 0)
    on_cpu = jax.default_backend() == "cpu"
    assert f"({num_envs} envs)" in line and ("on the CPU (" in line) == on_cpu
    assert ("uv run --extra cuda12" in line) == (warns and on_cpu)


def test_a_short_chunk_runs_only_its_iterations_and_continues_exactly(tmp_path):
    """The chunk program (4 iterations) takes its length as an argument: chunks of 1 then 2
    iterations give the state and per-iteration metrics of one chunk of 3, and skipped iterations
    leave the state alone."""
    from conftest import TINY_PPO, assert_trees_equal, make_trainer
    from wildrobot.envs.factory import make_env

    trainer = make_trainer(TINY_PPO + ["trainer.log_every=4", "trainer.checkpoint_every=0", "trainer.eval_every=0"],
                           tmp_path / "run")
    algo = trainer.make_algorithm(make_env(trainer.cfg.env))
    iteration_traces = []
    iteration = algo.iteration
    algo.iteration = lambda c: (iteration_traces.append(1), iteration(c))[1]
    chunk = jax.jit(trainer._make_chunk(algo))
    start = algo.init(jax.random.key(0))
    whole, whole_metrics = chunk(start, np.int32(3))
    first, first_metrics = chunk(start, np.int32(1))
    split, split_metrics = chunk(first, np.int32(2))
    assert trainer.trace_count == 1 and len(iteration_traces) == 1  # the cond's branch and its shapes share one
    assert_trees_equal(whole, split)
    for key, rows in whole_metrics.items():
        np.testing.assert_array_equal(rows[:1], first_metrics[key][:1])
        np.testing.assert_array_equal(rows[1:3], split_metrics[key][:2])
        assert not np.any(first_metrics[key][1:])  # skipped: zeros, which the runner drops
    skipped, _ = chunk(first, np.int32(0))
    assert_trees_equal(first, skipped)


def test_chunks_start_with_one_iteration_and_end_at_the_budget(tmp_path):
    from conftest import make_trainer
    from wildrobot.train.logging import read_scalars

    trainer = make_trainer(["env=stub", "algo=jax_smoke", "trainer.iterations=7", "trainer.log_every=3",
                            "trainer.checkpoint_every=3", "trainer.progress=false"], tmp_path / "run")
    assert trainer.run() == 0
    assert trainer.chunk_iterations == [1, 2, 3, 1]  # on the log_every grid after the first, then the rest
    assert [s for s, _ in read_scalars(tmp_path / "run" / "tensorboard")["param_w_mean"]] == [1, 3, 6, 7]
    saved = sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints" / "latest").iterdir() if p.name.isdigit())
    assert saved == [3, 6, 7]


def test_the_compiling_line_ticks_while_the_main_thread_waits(capsys):
    from wildrobot.train.runner import ElapsedLine

    with ElapsedLine("compiling", enabled=True):
        time.sleep(2.3)  # the main thread blocked, as in a wait for XLA
    err = capsys.readouterr().err
    assert "compiling: 00:01" in err and "compiling: 00:02" in err
    with ElapsedLine("compiling", enabled=False):
        time.sleep(1.2)
    assert "compiling" not in capsys.readouterr().err


def test_chunks_that_call_back_into_python_are_timed_and_logged_each_on_its_own(tmp_path, monkeypatch, capsys):
    """A program with a host callback (MuJoCo C physics) runs to its end inside the call on a CPU;
    the runner calls chunks on a worker thread, so each chunk's time is its own (none reads as
    instant because it ran while the previous one was being logged) and each progress line is
    printed as soon as its chunk ends, before the next has run."""
    from conftest import TINY_PPO, make_trainer
    from wildrobot.envs import factory
    from wildrobot.envs.stub import StubEnv

    pause, unroll = 0.05, 8
    finished = []  # (kind, time): a step of the physics, or a progress line

    class SlowStub(StubEnv):
        def step(self, state, action):
            state = super().step(state, action)

            def physics(x):
                time.sleep(pause)
                finished.append(("step", time.perf_counter()))
                return x

            shape = jax.ShapeDtypeStruct(state.reward.shape, state.reward.dtype)
            return state.replace(reward=jax.pure_callback(physics, shape, state.reward, vmap_method="broadcast_all"))

    monkeypatch.setitem(factory.ENV_CONSTRUCTORS, "stub", SlowStub)
    trainer = make_trainer([*TINY_PPO, f"algo.unroll_length={unroll}", "trainer.iterations=5", "trainer.log_every=2",
                            "trainer.checkpoint_every=2", "trainer.eval_every=0"], tmp_path / "run")
    write = trainer._summary_line

    def summary_line(it, algo, m):
        finished.append(("line", time.perf_counter()))
        return write(it, algo, m)

    monkeypatch.setattr(trainer, "_summary_line", summary_line)
    assert trainer.run() == 0
    assert trainer.chunk_iterations == [1, 1, 2, 1]  # a checkpoint after iterations 2 and 4
    for n, seconds in zip(trainer.chunk_iterations[1:], trainer.chunk_seconds[1:]):
        # (a chunk is queued just before the previous one's clock stops, so allow a little)
        assert seconds >= 0.8 * n * unroll * pause
    kinds = [k for k, _ in finished]
    first_line = kinds.index("line")
    # the first chunk's line comes after its steps and before the second chunk's steps are all done
    assert kinds[:first_line].count("step") < 2 * unroll
