"""A run directory belongs to one run: a second process stops before compiling and names the
holder; a lock left by a dead run is taken over. A run started in a directory that holds its own
checkpoints continues them (a requeued SLURM job). The preemption signal saves at the chunk
boundary, then hands over to the handler that was installed before (submitit's) or requeues a plain
SLURM job."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from conftest import RESUME_CADENCE, ROOT, TINY_PPO, assert_trees_equal, make_trainer, restore_latest
from wildrobot.train.checkpoint import saved_steps
from wildrobot.train.lock import LOCK_NAME, RunDirBusy, RunDirLock
from wildrobot.train.signals import StopRequest


def test_a_second_lock_on_a_run_directory_names_the_holder_and_a_released_one_is_free(tmp_path):
    with RunDirLock(tmp_path / "run"):
        with pytest.raises(RunDirBusy) as busy:
            RunDirLock(tmp_path / "run").acquire()
        message = str(busy.value)
        assert f"host {socket.gethostname()}, pid {os.getpid()}" in message
        assert "hydra.run.dir" in message  # how to fix it
    with RunDirLock(tmp_path / "run") as again:  # released on exit
        assert again.stale_holder is None  # a cleanly released lock leaves no holder behind


def test_a_lock_left_by_a_dead_run_is_taken_over_and_reported(tmp_path):
    # What a killed run leaves: its name in the file, no flock (the kernel dropped it with the process).
    dead = {"host": "node7", "pid": 4_000_000, "started": "2026-12-01 10:00:00"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(dead))
    lock = RunDirLock(tmp_path).acquire()
    try:
        assert lock.stale_holder == dead
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    finally:
        lock.release()


def test_a_second_run_in_a_busy_directory_stops_before_compiling(tmp_path):
    """The CLI in a subprocess, into a directory this test holds: exit 2 with the holder's pid."""
    run_dir = tmp_path / "busy"
    with RunDirLock(run_dir):
        proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "algo=jax_smoke", f"hydra.run.dir={run_dir}"],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"in use by another run (host {socket.gethostname()}, pid {os.getpid()}" in proc.stderr
    assert "Compiling" not in proc.stdout
    assert not (run_dir / "checkpoints").exists()


def test_a_run_started_in_a_directory_with_its_checkpoints_continues_them(tmp_path):
    """As a requeued job does: the same config into the same directory, no trainer.resume."""
    full = make_trainer(TINY_PPO + RESUME_CADENCE + ["trainer.iterations=4"], tmp_path / "full")
    assert full.run() == 0
    assert make_trainer(TINY_PPO + RESUME_CADENCE + ["trainer.iterations=2"], tmp_path / "job").run() == 0
    again = make_trainer(TINY_PPO + RESUME_CADENCE + ["trainer.iterations=4"], tmp_path / "job")
    assert again.run() == 0
    assert again.start_iteration == 2
    a, _, _ = restore_latest(tmp_path / "full", full)
    b, _, step = restore_latest(tmp_path / "job", full)
    assert step == 4
    assert_trees_equal(a, b)


def test_a_directory_with_another_configs_checkpoints_is_not_continued_silently(tmp_path):
    """The same hydra.run.dir with another seed: a clear error naming the key, nothing overwritten."""
    from wildrobot.errors import ConfigError

    assert make_trainer(TINY_PPO + RESUME_CADENCE + ["trainer.iterations=2"], tmp_path / "job").run() == 0
    other = make_trainer(TINY_PPO + RESUME_CADENCE + ["trainer.iterations=2", "seed=1"], tmp_path / "job")
    with pytest.raises(ConfigError, match=r"another config(.|\n)*seed: checkpoint 0 vs now 1(.|\n)*overrides: seed=0(.|\n)*hydra.run.dir"):
        other.run()
    assert saved_steps(tmp_path / "job" / "checkpoints")["latest"] == [2]
    with RunDirLock(tmp_path / "job"):  # and the refused run let go of the directory
        pass


@pytest.fixture
def fake_submitit_handler():
    """A handler in submitit's place for the preemption signal; restores what was there."""
    calls = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    yield calls
    signal.signal(signal.SIGUSR2, previous)


def test_a_second_ctrl_c_within_a_second_is_the_same_one_and_later_aborts():
    """``uv run`` without a terminal relays the group's SIGINT that its child already has: a second one
    sooner than ``SAME_SIGNAL_S`` after the first changes nothing; one later interrupts at once. A
    second SIGTERM never interrupts. Times from an injected clock."""
    now = [0.0]
    stop = StopRequest(clock=lambda: now[0])
    stop.handle(signal.SIGINT)
    assert stop.requested and stop.name == "SIGINT"
    now[0] = 0.5 * StopRequest.SAME_SIGNAL_S
    stop.handle(signal.SIGINT)  # the same Ctrl-C delivered twice: still saving
    stop.handle(signal.SIGTERM)
    assert stop.name == "SIGINT" and stop.exit_code == 128 + signal.SIGINT
    now[0] = 1.5 * StopRequest.SAME_SIGNAL_S
    stop.handle(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        stop.handle(signal.SIGINT)


def test_the_preemption_signal_is_handed_over_only_after_the_stop(fake_submitit_handler):
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGUSR2)  # Python runs the handler in the main thread, here
        assert stop.requested and stop.preempted
        assert fake_submitit_handler == []  # ours took it: nothing requeues before the checkpoint
    stop.hand_over()
    assert fake_submitit_handler == [signal.SIGUSR2]


@pytest.mark.parametrize("slurm, waits", [({}, False), ({"SLURM_JOB_ID": "42"}, False),
                                          ({"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0"}, True)])
def test_sigterm_alone_saves_without_requeue_and_waits_for_slurm_in_a_job_step(fake_submitit_handler, monkeypatch,
                                                                              slurm, waits):
    """Outside a SLURM job step it exits (143). In one (srun, submitit) it waits to be ended: SLURM
    requeues a preempted job it kills, not one that exited by itself within the grace time."""
    for name in ("SLURM_JOB_ID", "SLURM_STEP_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    requeued, lingered = [], []
    with StopRequest(requeue=requeued.append, linger=lambda: lingered.append(1)) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
    stop.hand_over()
    assert stop.exit_code == 128 + signal.SIGTERM and not stop.preempted
    assert fake_submitit_handler == [] and requeued == []
    assert lingered == ([1] if waits else [])


@pytest.mark.parametrize("task, requeues", [("0", True), ("1", False)])
def test_a_plain_slurm_job_is_requeued_by_job_id_from_its_first_task(monkeypatch, task, requeues):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_PROCID", task)
    previous = signal.signal(signal.SIGUSR2, signal.SIG_DFL)  # no submitit in this job
    try:
        requeued = []
        with StopRequest(requeue=requeued.append) as stop:
            os.kill(os.getpid(), signal.SIGUSR2)
        assert stop.requeues == requeues
        stop.hand_over()
        assert requeued == (["42"] if requeues else [])
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_usr2_outside_slurm_stops_without_promising_a_requeue(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    previous = signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    try:
        with StopRequest(requeue=lambda job: pytest.fail("requeued outside SLURM")) as stop:
            os.kill(os.getpid(), signal.SIGUSR2)
        assert stop.requested and not stop.requeues
        stop.hand_over()
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_a_preempted_run_saves_its_chunk_then_hands_over(tmp_path, fake_submitit_handler):
    """The signal lands while the loop logs the first chunk: the run stops at the next boundary with
    a checkpoint on disk before the previous handler is called."""
    from wildrobot.train.trainers import PPOTrainer

    seen_at_handover = []

    class Preempted(PPOTrainer):
        def log(self, it, done, metrics):
            super().log(it, done, metrics)
            if it == 1:
                os.kill(os.getpid(), signal.SIGUSR2)

    def record(signum, frame):
        seen_at_handover.append(saved_steps(tmp_path / "run" / "checkpoints").get("latest"))

    signal.signal(signal.SIGUSR2, record)
    from conftest import typed_config

    cfg = typed_config(TINY_PPO + RESUME_CADENCE + ["trainer.iterations=4"])
    trainer = Preempted(cfg, tmp_path / "run", search_root=tmp_path)
    code = trainer.run()
    assert code == 128 + signal.SIGUSR2
    assert len(seen_at_handover) == 1 and seen_at_handover[0]  # handed over once, checkpoint already written
    assert max(seen_at_handover[0]) < 4  # stopped early, at a chunk boundary
    assert not (tmp_path / "run" / LOCK_NAME).read_text()  # the lock was released


SMOKE = ["env=stub", "algo=jax_smoke", "trainer.log_every=2", "trainer.checkpoint_every=2", "trainer.progress=false"]


def test_sigterm_while_the_run_starts_is_acted_on_at_the_first_chunk_boundary(tmp_path, monkeypatch):
    """A SIGTERM (or a preemption's warning) that lands while the env builds or the program compiles
    stops the run at its first chunk boundary with a checkpoint; it must not end the process there
    and then (Python's default for SIGTERM; here a recording handler stands in for it)."""
    from wildrobot.train import runner

    before = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: before.append(signum))
    start = runner.Trainer._start

    def starting(self, location):
        signal.raise_signal(signal.SIGTERM)
        return start(self, location)

    monkeypatch.setattr(runner.Trainer, "_start", starting)
    try:
        code = make_trainer(SMOKE + ["trainer.iterations=4"], tmp_path / "run").run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert before == []  # the run's handler took it
    assert code == 128 + signal.SIGTERM
    assert saved_steps(tmp_path / "run" / "checkpoints")["latest"] == [1]  # the first chunk: 1 iteration


@pytest.mark.parametrize("sig", [signal.SIGUSR2, signal.SIGTERM], ids=["preemption_warning", "sigterm"])
def test_a_signal_during_the_last_chunk(tmp_path, monkeypatch, fake_submitit_handler, sig):
    """The preemption warning arrives as the last chunk ends: the run is complete, so it exits 0 and is
    not handed over for a requeue (which would start a finished job again). A SIGTERM (or Ctrl-C) then
    still ends the process with its code, which also stops a sweep that runs its jobs in this process."""
    from wildrobot.train import runner

    log = runner.Trainer.log

    def logging(self, it, done, metrics):
        log(self, it, done, metrics)
        if it == 4:
            signal.raise_signal(sig)

    monkeypatch.setattr(runner.Trainer, "log", logging)
    code = make_trainer(SMOKE + ["trainer.iterations=4"], tmp_path / "run").run()
    assert code == (0 if sig == signal.SIGUSR2 else 128 + sig)
    assert fake_submitit_handler == []
    assert saved_steps(tmp_path / "run" / "checkpoints")["latest"] == [2, 4]


def test_a_run_reads_its_own_checkpoints_once_it_holds_the_directory(tmp_path, monkeypatch):
    """The run that held the directory may save its first checkpoint while this one waits for the lock
    (a requeued job started before the old one exited): this one continues it rather than starting over."""
    import shutil

    assert make_trainer(SMOKE + ["trainer.iterations=2"], tmp_path / "earlier").run() == 0
    acquire = RunDirLock.acquire

    def acquire_after_the_holder_saved(self):
        shutil.copytree(tmp_path / "earlier" / "checkpoints", tmp_path / "job" / "checkpoints")
        return acquire(self)

    monkeypatch.setattr(RunDirLock, "acquire", acquire_after_the_holder_saved)
    again = make_trainer(SMOKE + ["trainer.iterations=4"], tmp_path / "job")
    assert again.run() == 0
    assert again.start_iteration == 2


def test_a_second_ctrl_c_while_waiting_for_the_compiler_does_not_cut_the_wait_short():
    """After Ctrl-C during a new run's compile, the process waits for XLA before exiting (exiting while
    it compiles aborts the process); a relayed or repeated Ctrl-C meanwhile must not end that wait."""
    import threading

    from wildrobot.train.compiling import BackgroundCompile

    waiting = threading.Event()

    class Compiler:  # stands in for a jitted function; its compile sends the second Ctrl-C
        def lower(self, *args):
            return self

        def compile(self):
            # a gate, not a timing: wait until the main thread is in finish() (it ignores SIGINT there)
            deadline = 50
            while signal.getsignal(signal.SIGINT) is not signal.SIG_IGN and deadline:
                waiting.wait(0.1)
                deadline -= 1
            os.kill(os.getpid(), signal.SIGINT)
            return "compiled"

    # Python's own Ctrl-C handler, whatever this process inherited (a background job starts with SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        compiling = BackgroundCompile(Compiler())
        try:
            compiling.finish()
        except KeyboardInterrupt:
            pytest.fail("the second Ctrl-C cut the wait for the compiler short")
        assert compiling.result() == "compiled"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back after the wait
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_noted_before_the_run_began_stops_it_before_anything_is_built(tmp_path, monkeypatch, capsys):
    """run.py notes Ctrl-C from its first line (EarlyInterrupt): a KeyboardInterrupt raised in the middle
    of an import or inside JAX's garbage-collection hook (which swallows it: the run trained on) is
    never raised; the run stops before it builds anything."""
    from wildrobot.train import runner
    from wildrobot.train.signals import EarlyInterrupt

    built = []
    monkeypatch.setattr(runner, "make_env", lambda cfg: built.append(cfg))
    previous = signal.getsignal(signal.SIGINT)
    EarlyInterrupt.install()
    try:
        signal.raise_signal(signal.SIGINT)
        assert EarlyInterrupt.signum == signal.SIGINT
        code = make_trainer(SMOKE + ["trainer.iterations=4"], tmp_path / "run").run()
        # the run took the Ctrl-C over: after it, Python's own handler (a later Ctrl-C interrupts at once)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        EarlyInterrupt.install()
        signal.raise_signal(signal.SIGINT)  # quick-verify runs no training loop: it stops at its start too
        assert make_trainer(["env=stub", "algo=ppo", "trainer=verify"], tmp_path / "verify").run() == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
        EarlyInterrupt.take()
    assert code == 128 + signal.SIGINT and built == []
    assert "Stopped by SIGINT before training started" in capsys.readouterr().out
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("phase", ["building the env", "compiling"])
def test_ctrl_c_while_the_run_starts_stops_it_before_it_trains(tmp_path, monkeypatch, phase):
    """Ctrl-C while the env builds or the first program compiles: the run stops at its next check (the
    compile is waited for, not cut off), saves nothing and exits 130; it never trains a chunk."""
    from wildrobot.train import runner

    if phase == "building the env":
        make_env = runner.make_env

        def building(cfg):
            signal.raise_signal(signal.SIGINT)
            return make_env(cfg)

        monkeypatch.setattr(runner, "make_env", building)
    else:
        class Compiling(runner.BackgroundCompile):
            def result(self, interrupted=lambda: False):
                signal.raise_signal(signal.SIGINT)
                return super().result(interrupted)

        monkeypatch.setattr(runner, "BackgroundCompile", Compiling)
    trained = []
    monkeypatch.setattr(runner.Trainer, "log", lambda self, it, done, metrics: trained.append(it))
    try:
        code = make_trainer(SMOKE + ["trainer.iterations=4"], tmp_path / "run").run()
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C while starting escaped the run as a KeyboardInterrupt")
    assert code == 128 + signal.SIGINT
    assert trained == [] and not saved_steps(tmp_path / "run" / "checkpoints").get("latest")
    with RunDirLock(tmp_path / "run"):  # the lock was released
        pass
