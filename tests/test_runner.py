"""The runner's phases: the background compile (the compiled program is the jitted one, traced
once; an error raised while tracing reaches the caller that waits for it; Ctrl-C does not cut the
wait short), the compiling line, the budget line, the chunk program (its length is an argument,
and short chunks continue exactly), and chunks that call back into Python (timed and logged each on
its own). Ordering is checked with events and an injected clock, never with sleeps."""

import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wildrobot.train.compiling import BackgroundCompile, ElapsedLine


def wait_until_blocked_in(thread: threading.Thread, function, timeout: float = 60.0) -> None:
    """Return once ``thread`` is inside a call of ``function`` (read from its stack)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident)
        while frame is not None:
            if frame.f_code is function.__code__:
                return
            frame = frame.f_back
        time.sleep(0.001)  # polling the other thread's stack; nothing races on this interval
    raise AssertionError(f"{thread.name} never entered {function.__qualname__}()")


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
    """Ctrl-C lands while the main thread waits for the compile thread; exiting before the compiler
    returns would abort the process, so finish() must keep waiting even after an interrupted wait.
    The compile is held by an event that is released only once the main thread waits in finish()."""
    # Python's own Ctrl-C handler, installed afresh (also at the C level, where a library loaded by an
    # earlier test may have put its own): this test is about the compile thread, not about them.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tracing, release = threading.Event(), threading.Event()

    def held_while_tracing(x):
        tracing.set()
        assert release.wait(120), "never released"
        return x + 1

    main = threading.current_thread()
    compiling = BackgroundCompile(jax.jit(held_while_tracing), jax.ShapeDtypeStruct((2,), jnp.float32))
    assert tracing.wait(60)

    def ctrl_c_then_release():
        wait_until_blocked_in(main, BackgroundCompile.result)
        # to the main thread itself: a signal sent to the process may be taken by any of its threads
        # (XLA's, the compile thread), and then never interrupts the main thread's blocked wait
        signal.pthread_kill(main.ident, signal.SIGINT)
        wait_until_blocked_in(main, BackgroundCompile.finish)
        release.set()

    helper = threading.Thread(target=ctrl_c_then_release)
    helper.start()
    with pytest.raises(KeyboardInterrupt):
        compiling.result()
    compiling.finish()
    assert release.is_set()  # finish() returned only after the compile was let go
    helper.join()
    assert float(compiling.result()(jnp.ones(2))[0]) == 2.0


def test_the_compiling_line_ticks_while_the_main_thread_waits(capsys):
    """The line's thread refreshes it while the main thread is blocked (as in a wait for XLA); the
    elapsed time comes from the injected clock, one second per reading."""
    seconds = iter(range(1000))
    ticked = threading.Event()
    ticks = []

    class Line(ElapsedLine):
        def refresh(self):
            super().refresh()
            if threading.current_thread() is not threading.main_thread():
                ticks.append(1)
                if len(ticks) == 2:
                    ticked.set()

    with Line("compiling", enabled=True, interval=0.001, clock=lambda: float(next(seconds))):
        assert ticked.wait(60)  # the main thread blocks; only the line's own thread can set this
    err = capsys.readouterr().err
    assert "compiling: 00:02" in err and "compiling: 00:03" in err  # readings 2 and 3 after the start's 0
    with ElapsedLine("compiling", enabled=False):
        pass
    assert "compiling" not in capsys.readouterr().err


@pytest.mark.parametrize("num_envs, sized_for, warns", [(8, "any", False), (8192, "any", True), (8, "gpu", True),
                                                    (8, "cpu", False)])
def test_the_budget_line_names_the_device_and_flags_a_gpu_sized_batch_on_the_cpu(tmp_path, num_envs, sized_for, warns):
    """A batch of GPU size, or a preset sized for a GPU (trainer=gpu: 1024 envs, a size the CPU
    presets use too), on a JAX that sees only the CPU: the start says how to get the CUDA build."""
    from conftest import TINY_PPO, make_trainer
    from wildrobot.envs.factory import make_env
    from wildrobot.train.progress import GPU_SIZED_ENVS, budget_line

    trainer = make_trainer([*TINY_PPO, f"trainer.num_envs={num_envs}", f"trainer.sized_for={sized_for}"],
                           tmp_path / "run")
    line = budget_line(trainer.cfg, trainer.make_algorithm(make_env(trainer.cfg.env)), 0, "", tmp_path / "run")
    on_cpu = jax.default_backend() == "cpu"
    assert f"({num_envs} envs)" in line and ("on the CPU (" in line) == on_cpu
    assert ("uv run --extra cuda12" in line) == (warns and on_cpu)
    if warns and on_cpu:  # the note says why: the batch's size, or the preset's machine
        assert ("is a GPU-sized batch" in line) == (num_envs >= GPU_SIZED_ENVS)
        assert ("preset is sized for a GPU" in line) == (num_envs < GPU_SIZED_ENVS)


def test_a_short_chunk_runs_only_its_iterations_and_continues_exactly(tmp_path):
    """The chunk program (4 iterations) takes its length as an argument: chunks of 1 then 2
    iterations give the state and per-iteration metrics of one chunk of 3, and skipped iterations
    leave the state alone."""
    from conftest import TINY_PPO, assert_trees_equal, make_trainer
    from wildrobot.envs.factory import make_env
    from wildrobot.train.chunks import make_chunk

    trainer = make_trainer(TINY_PPO + ["trainer.log_every=4", "trainer.checkpoint_every=0", "trainer.eval_every=0"],
                           tmp_path / "run")
    algo = trainer.make_algorithm(make_env(trainer.cfg.env))
    iteration_traces, chunk_traces = [], []
    iteration = algo.iteration
    algo.iteration = lambda c: (iteration_traces.append(1), iteration(c))[1]
    chunk = jax.jit(make_chunk(algo, 4, on_trace=lambda: chunk_traces.append(1)))
    start = algo.init(jax.random.key(0))
    whole, whole_metrics = chunk(start, np.int32(3))
    first, first_metrics = chunk(start, np.int32(1))
    split, split_metrics = chunk(first, np.int32(2))
    assert len(chunk_traces) == 1 and len(iteration_traces) == 1  # the cond's branch and its shapes share one
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


def test_chunks_that_call_back_into_python_are_timed_and_logged_each_on_its_own(tmp_path, monkeypatch):
    """A program with a host callback (MuJoCo C physics) runs to its end inside the call on a CPU;
    the runner calls chunks on a worker thread, so each progress line is printed as soon as its
    chunk ends, while the next chunk runs, and each chunk's time is its own program's.

    Each chunk's first physics step waits until the previous chunk's line is out (a runner that
    ran the next chunk before logging would keep it waiting: the wait's timeout then fails the
    test), and every physics step advances the trainer's injected clock by one second."""
    from conftest import TINY_PPO, make_trainer
    from wildrobot.envs import registry
    from wildrobot.envs.stub import StubEnv
    from wildrobot.envs.stub_config import StubEnvConfig

    unroll, sizes = 4, [1, 1, 2, 1]  # iterations 0, 1, 2-3, 4: queued ahead, as no checkpoint is due before 5
    first_steps = np.cumsum([0] + [n * unroll for n in sizes])[:-1]  # the physics step that starts each chunk
    logged = [threading.Event() for _ in sizes]
    now, order, stalled = [0.0], [], []

    class CallbackStub(StubEnv):
        def step_in_episode(self, state, action):  # the training wrapper's step
            state = super().step_in_episode(state, action)

            def physics(x):
                step = len([kind for kind, _ in order if kind == "step"])
                chunk = int(np.searchsorted(first_steps, step, side="right")) - 1
                if step == first_steps[chunk] and chunk > 0 and not logged[chunk - 1].wait(60):
                    stalled.append(chunk)
                now[0] += 1.0
                order.append(("step", chunk))
                return x

            shape = jax.ShapeDtypeStruct(state.reward.shape, state.reward.dtype)
            return state.replace(reward=jax.pure_callback(physics, shape, state.reward, vmap_method="broadcast_all"))

    monkeypatch.setitem(registry._ENVS, "stub", registry.EnvEntry("stub", StubEnvConfig, CallbackStub))
    trainer = make_trainer([*TINY_PPO, f"algo.unroll_length={unroll}", "trainer.iterations=5", "trainer.log_every=2",
                            "trainer.checkpoint_every=0", "trainer.eval_every=0"], tmp_path / "run",
                           clock=lambda: now[0])
    log = trainer.log

    def logging(it, done, metrics):
        log(it, done, metrics)
        order.append(("line", len(trainer.chunk_iterations) - 1))
        logged[len(trainer.chunk_iterations) - 1].set()

    monkeypatch.setattr(trainer, "log", logging)
    assert trainer.run() == 0
    assert not stalled, f"chunks {stalled} ran before the previous chunk's line was printed"
    assert trainer.chunk_iterations == sizes
    assert trainer.chunk_seconds == [float(n * unroll) for n in sizes]  # one clock second per physics step
    for chunk in range(len(sizes) - 1):  # each line comes before the next chunk's steps end
        line = order.index(("line", chunk))
        assert ("step", chunk + 1) in order[line:], order
