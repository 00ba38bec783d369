"""One run as two processes on this CPU (``python -m wildrobot.launch -n 2``: ``jax.distributed``
over loopback with gloo collectives, one CPU device each): the env batch split over both processes
gives the result of one process splitting it over two devices; only process 0 prints; a stop
signal that only one process gets stops both at the same chunk boundary, with one checkpoint."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

from conftest import CONF, RESUME_CADENCE, ROOT, TINY_PPO, assert_equals_one_process_on_two_devices

OVERRIDES = TINY_PPO + RESUME_CADENCE + ["trainer.devices=all"]


def launch(args: list[str], cwd, timeout: float = 300) -> subprocess.CompletedProcess:
    # one CPU device per process; not a SLURM job step (if the suite itself runs inside one)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS" and not k.startswith("SLURM_")}
    return subprocess.run([sys.executable, "-m", "wildrobot.launch", "--processes", "2", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiprocess")
    done = launch([str(ROOT / "run.py"), *OVERRIDES, "trainer.iterations=4", f"hydra.run.dir={root / 'run'}"], root)
    return root, done


def test_two_processes_train_one_run_equal_to_one_process_on_two_devices(two_processes):
    root, done = two_processes
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert_equals_one_process_on_two_devices(root / "run", [*OVERRIDES, "trainer.iterations=4"], root)


def test_only_the_first_process_prints_and_logs(two_processes):
    root, done = two_processes
    assert done.stdout.count("Compiling the training program") == 1
    assert done.stdout.count("Checkpoints:") == 1
    assert len(re.findall(r"^it 4/4 ", done.stdout + done.stderr, flags=re.M)) == 1  # the chunk's line, once
    assert "split over 2 devices" in done.stdout
    assert len(list((root / "run" / "tensorboard").glob("events.out.tfevents.*"))) == 1


STOP_ONE_PROCESS = textwrap.dedent(f"""\
    import os, signal
    import hydra
    from wildrobot.cli import main as wildrobot_main, register_configs

    register_configs()


    @hydra.main(version_base="1.3", config_path={str(CONF)!r}, config_name="config")
    def main(cfg):
        import jax
        from wildrobot.train.runner import Trainer

        log = Trainer.log

        def log_then_signal(self, it, done, metrics):  # only process 1 is told to stop, at iteration 2
            log(self, it, done, metrics)
            if it == 2 and jax.process_index() == 1:
                os.kill(os.getpid(), signal.SIGTERM)

        Trainer.log = log_then_signal
        wildrobot_main(cfg)


    if __name__ == "__main__":
        main()
    """)


def test_a_signal_to_one_process_stops_both_at_the_same_chunk(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(STOP_ONE_PROCESS)
    done = launch([str(app), *OVERRIDES, "trainer.iterations=8", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert done.returncode == 143, done.stdout[-2000:] + done.stderr[-3000:]
    stopped = re.findall(r"Stopped by SIGTERM at iteration (\d+)", done.stdout)
    assert stopped == ["4"]  # said once (process 0, which adopted process 1's signal), at the next boundary
    steps = sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints" / "latest").iterdir() if p.name.isdigit())
    assert steps[-1] == 4


@pytest.mark.parametrize("overrides, message", [
    (["env=stub", "trainer.devices=1"], "this run has 2 processes (wildrobot.launch or srun) with 2 devices in all"),
    (["env=wildrobot", "env.sim.backend=mujoco", "trainer.devices=all"], "cannot split the MuJoCo C physics"),
])
def test_what_two_processes_cannot_run_stops_both_before_compiling(tmp_path, overrides, message):
    done = launch([str(ROOT / "run.py"), *overrides, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, timeout=120)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stderr.count(message) == 2  # each process says why it stops
    assert "Compiling" not in done.stdout


def test_the_launcher_ends_the_other_processes_when_one_fails():
    """A process that died would leave the others waiting in a collective: the launcher ends them and
    returns the failure's code; a process killed by a signal counts as 128 + its number."""
    from wildrobot.launch import wait_all

    failing = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    waiting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        assert wait_all([waiting, failing], poll_s=0.05) == 3
        assert waiting.returncode == -15  # terminated by the launcher, not after its 600 s
    finally:
        if waiting.poll() is None:  # the launcher failed to end it: not left running after the test
            waiting.kill()
    killed = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    assert wait_all([killed], poll_s=0.05) == 128 + 9
    # a run takes SIGTERM as a request to save at its next chunk boundary, which one stuck in a
    # collective never reaches: after the grace time (of an injected clock) the launcher kills it
    failing = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    stuck = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                              "signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"], stdout=subprocess.PIPE)
    assert stuck.stdout.readline().strip() == b"ready"  # its SIGTERM handler is in place
    ticks = iter(range(200))  # runs out (StopIteration: the test fails) if the launcher never kills it
    try:
        assert wait_all([stuck, failing], poll_s=0.05, grace_s=5, clock=lambda: next(ticks)) == 3
        assert stuck.returncode == -9
    finally:
        if stuck.poll() is None:
            stuck.kill()
