"""A sweep through `hydra/launcher=slurm` on a real one-node SLURM cluster (tests/slurm_cluster.py):
a higher-priority job preempts the training job, which gets SLURM's USR2, finishes its chunk, writes
a checkpoint and is requeued by submitit; the requeued job resumes its own run directory and ends
with the parameters of a run that was never interrupted.

The training job is the real CLI (`wildrobot.cli.main` under `hydra.main`, as run.py) with one
addition: at iteration 2 of its first start it waits until this test has seen the preemption signal
arrive, so the signal lands mid-run whatever the machine's speed (no race with the run's end)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import (CONF, RESUME_CADENCE, TINY_PPO, assert_equals_one_process_on_two_devices,  # noqa: E402
                      assert_trees_equal, make_trainer, restore_latest)
from slurm_cluster import slurm_cluster  # noqa: E402
from wildrobot.train.logging import read_scalars  # noqa: E402

GATED_APP = textwrap.dedent(f"""\
    import os, time
    import hydra
    from wildrobot.cli import main as wildrobot_main, register_configs

    register_configs()


    @hydra.main(version_base="1.3", config_path={str(CONF)!r}, config_name="config")
    def main(cfg):
        from wildrobot.train.runner import Trainer

        log = Trainer.log

        def gated_log(self, it, done, metrics):  # the first start waits at iteration 2 for the test
            log(self, it, done, metrics)
            if it == 2 and not int(os.environ.get("SLURM_RESTART_COUNT") or 0):
                gate = os.environ["GATE_DIR"]
                open(os.path.join(gate, "at_iteration_2"), "w").close()
                deadline = time.monotonic() + 300
                while not os.path.exists(os.path.join(gate, "go_on")) and time.monotonic() < deadline:
                    time.sleep(0.05)

        Trainer.log = gated_log
        wildrobot_main(cfg)


    if __name__ == "__main__":
        main()
    """)

OVERRIDES = TINY_PPO + RESUME_CADENCE + ["trainer.iterations=8"]


@pytest.fixture(scope="module")
def slurm():
    # GraceTime: how long a preempted job may run on after USR2 (a chunk and a checkpoint here)
    yield from slurm_cluster(grace_time_s=60)


def preempt_and_check(slurm, tmp_path, signal_name: str) -> str:
    """Run the gated sweep job, preempt it at iteration 2, let it go on once the job has logged
    ``signal_name``; check the requeue, the resume at the iteration it stopped at, and the final
    parameters and TensorBoard curve against an uninterrupted run. The job's log."""
    gate = tmp_path / "gate"
    gate.mkdir()
    app = tmp_path / "app.py"
    app.write_text(GATED_APP)
    sweep = tmp_path / "multirun"
    env = dict(slurm.env, GATE_DIR=str(gate), PYTHONUNBUFFERED="1")
    launcher = subprocess.Popen(
        [sys.executable, str(app), "-m", "hydra/launcher=slurm", f"hydra.launcher.partition={slurm.partition_low}",
         f"hydra.launcher.cpus_per_task={slurm.cpus}", "hydra.launcher.timeout_min=60",
         f"hydra.sweep.dir={sweep}", *OVERRIDES, "seed=3"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    logs = lambda: "".join(p.read_text(errors="replace") for p in sorted((sweep / ".submitit").rglob("*_log.*")))  # noqa: E731
    try:
        slurm.wait_for(lambda: (gate / "at_iteration_2").exists() or launcher.poll() is not None, timeout=240,
                       desc="the training job to reach iteration 2")
        assert launcher.poll() is None, launcher.communicate()[0][-3000:]
        (job,) = [j for j in slurm.squeue() if j["STATE"] == "RUNNING"]
        job_id = job["JOBID"]
        slurm.sbatch("--partition", slurm.partition_high, "--cpus-per-task=1", "--time=1",
                     f"--output={tmp_path}/high_%j.out", "--wrap", "true")
        slurm.wait_for(lambda: f"{signal_name} received" in logs(), timeout=60, desc=f"{signal_name} in the job")
        (gate / "go_on").touch()
        out, _ = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    log = logs()
    assert launcher.returncode == 0, out[-3000:] + log[-3000:]
    stopped = re.search(rf"Stopped by {signal_name} at iteration (\d+)", log)
    resumed = re.search(r"Resuming \S+ from iteration (\d+) \(its own checkpoint", log)
    assert stopped and resumed, log[-4000:]
    assert stopped.group(1) == resumed.group(1) and int(stopped.group(1)) < 8
    assert slurm.restarts(job_id) == 1

    run_dir = sweep / "0"
    uninterrupted = make_trainer(OVERRIDES + ["seed=3"], tmp_path / "uninterrupted")
    assert uninterrupted.run() == 0
    a, _, step_a = restore_latest(tmp_path / "uninterrupted", uninterrupted)
    b, _, step_b = restore_latest(run_dir, uninterrupted)
    assert step_a == step_b == 8
    assert_trees_equal(a, b)
    steps = [s for s, _ in read_scalars(run_dir / "tensorboard")["loss/total"]]
    assert steps == sorted(set(steps)) and steps[-1] == 8 * 64  # one continuous curve, no step twice
    keep = ("received", "Stopped by", "Requeued", "requeue", "waiting for SLURM", "Resuming")
    print("\n".join(line for line in log.splitlines() if any(k in line for k in keep)))
    print(f"job {job_id}: stopped by {signal_name} at iteration {stopped.group(1)}, requeued, resumed at "
          f"{resumed.group(1)}, final parameters equal to the uninterrupted run's")
    return log


def test_a_preempted_sweep_job_saves_is_requeued_and_resumes_its_run_exactly(slurm, tmp_path):
    log = preempt_and_check(slurm, tmp_path, "SIGUSR2")
    assert "Requeued job" in log  # by submitit, after our checkpoint


def test_a_job_preempted_with_sigterm_only_saves_and_is_requeued_by_slurm(tmp_path):
    """A cluster without `preempt_send_user_signal` sends SIGTERM alone, which submitit ignores: the
    run saves, then waits for SLURM to end the job, which SLURM then requeues (`--requeue`)."""
    cluster = slurm_cluster(grace_time_s=30, preempt_send_user_signal=False)
    slurm = next(cluster)
    try:
        log = preempt_and_check(slurm, tmp_path, "SIGTERM")
        assert "waiting for SLURM to end the job" in log and "Requeued job" not in log
    finally:
        next(cluster, None)


def test_a_sweep_job_of_two_tasks_trains_one_run_over_both(slurm, tmp_path):
    """`tasks_per_node=2`: SLURM starts the job twice (`srun`), the two processes join through
    `jax.distributed.initialize()` (SLURM's variables) and split the env batch: the result of one
    process on two devices."""
    sweep = tmp_path / "multirun"
    overrides = TINY_PPO + RESUME_CADENCE + ["trainer.iterations=4", "trainer.devices=all"]
    done = subprocess.run(
        [sys.executable, str(CONF.parent / "run.py"), "-m", "hydra/launcher=slurm",
         f"hydra.launcher.partition={slurm.partition_low}", "hydra.launcher.tasks_per_node=2",
         "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=60", f"hydra.sweep.dir={sweep}", *overrides],
        cwd=tmp_path, env=slurm.env, capture_output=True, text=True, timeout=300)
    log = "".join(p.read_text(errors="replace") for p in sorted((sweep / ".submitit").rglob("*_log.out")))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:] + log[-3000:]
    assert log.count("the envs split over 2 devices") == 1  # said once, by process 0
    assert_equals_one_process_on_two_devices(sweep / "0", overrides, tmp_path, env=slurm.env)
