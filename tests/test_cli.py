"""The real CLI in a subprocess: single run, multirun sweeps, bad input, Ctrl-C and resume."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from conftest import ROOT, TINY_PPO, run_cli
from wildrobot.train.logging import read_scalars


def only_run_dir(root):
    runs = [p.parent.parent for p in root.glob("outputs/*/*/checkpoints/latest")]
    assert len(runs) == 1, runs
    return runs[0]


def test_jax_smoke_prints_update_and_writes_checkpoint_and_tensorboard(tmp_path):
    res = run_cli(["algo=jax_smoke", "env=stub"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Updated param w mean: -1e-05" in res.stdout
    run = only_run_dir(tmp_path)
    assert (run / "checkpoints" / "latest" / "1").is_dir()
    assert read_scalars(run / "tensorboard")["param_w_mean"][0][0] == 1
    assert str(run / "checkpoints") in res.stdout and "tensorboard" in res.stdout


def test_cfg_job_prints_the_composed_config(tmp_path):
    res = run_cli(["--cfg", "job", "algo=ppo_amp", "trainer.num_envs=512"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "num_envs: 512" in res.stdout and "style_reward_weight" in res.stdout


def test_multirun_sweep_writes_one_folder_per_job(tmp_path):
    res = run_cli(["-m", "algo=jax_smoke", "env=stub", "seed=0,1,2", "trainer.progress=false"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    jobs = sorted(p.parents[2].name for p in tmp_path.glob("multirun/*/*/*/checkpoints/latest/1"))
    assert jobs == ["0", "1", "2"]


def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    res = run_cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "algo=jax_smoke", "env=stub",
                   "seed=0,1", "trainer.progress=false"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(list(tmp_path.glob("multirun/*/*/*/checkpoints/latest/1"))) == 2


@pytest.mark.parametrize(
    "override,expected",
    [("trainer.num_envs=0", "trainer.num_envs"), ("+trainer.anything=1", "trainer.anything"),
     ("algo.learning_rate=-1", "algo.learning_rate"), ("env=wildrobot env.sim.backend=warp", "env.sim.backend"),
     ("algo.style_ramp_iterations=500", "is now algo.style_ramp_env_steps"),  # a key renamed since
     ("trainer.num_env=8", "unknown config key 'trainer.num_env'. Did you mean trainer.num_envs?"),  # a typo
     ("env.push.velocty=1", "Did you mean env.push.velocity? Keys under 'env.push': enabled,"),
     ("sed=3", "unknown config key 'sed'. Did you mean seed?"),
     ("algo=ppoo", "there is no algo option 'ppoo'. Did you mean algo=ppo? Options: jax_smoke, ppo, ppo_amp.")],
)
def test_bad_override_exits_2_with_a_message_before_compiling(tmp_path, override, expected):
    res = run_cli(["algo=jax_smoke", "env=stub", *override.split()], cwd=tmp_path)
    assert res.returncode == 2
    assert expected in res.stderr and "Config error" in res.stderr
    assert not list(tmp_path.glob("outputs/*/*/checkpoints"))


@pytest.mark.parametrize("deliveries", [1, 2], ids=["once", "twice_as_uv_run_forwards_it_without_a_terminal"])
def test_ctrl_c_saves_a_complete_checkpoint_that_resumes(tmp_path, deliveries):
    args = TINY_PPO + ["trainer.iterations=100000", "trainer.log_every=2", "trainer.checkpoint_every=1000",
                       "trainer.eval_every=0", "hydra.run.dir=run"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:  # the first chunk's line: training runs (however long compiling took)
        lines.append(line)
        if line.startswith("it "):
            break
    proc.send_signal(signal.SIGINT)
    if deliveries == 2:  # the same Ctrl-C again at once, as `uv run` without a terminal relays it
        proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    text = "".join(lines) + out
    assert proc.returncode == 130, text
    assert "SIGINT" in text and "checkpoint saved" in text
    latest = tmp_path / "run" / "checkpoints" / "latest"
    steps = sorted(int(p.name) for p in latest.iterdir() if p.name.isdigit())
    assert steps and steps[-1] % 2 == 0
    assert not [p for p in (tmp_path / "run").rglob("*") if "tmp" in p.name], "temporary folders left behind"

    target = steps[-1] + 2
    res = run_cli(TINY_PPO + [f"trainer.iterations={target}", "trainer.log_every=2", "trainer.eval_every=0",
                              "trainer.resume=run", "hydra.run.dir=resume"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"from iteration {steps[-1]}" in res.stdout
    assert (latest / str(target)).is_dir()


def test_resume_latest_finds_the_newest_run(tmp_path):
    """Of two runs, the one that saved last (1 iteration, after one of 2) is continued."""
    for name, iterations in (("older", 2), ("newer", 1)):
        done = run_cli(["algo=jax_smoke", "env=stub", f"trainer.iterations={iterations}",
                        f"hydra.run.dir=outputs/day/{name}"], cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    res = run_cli(["algo=jax_smoke", "env=stub", "trainer.iterations=3", "trainer.resume=latest",
                   "hydra.run.dir=outputs/day/resumed"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "from iteration 1" in res.stdout and "Updated param w mean: -3e-05" in res.stdout
    assert str(tmp_path / "outputs" / "day" / "newer") in res.stdout


def test_a_refused_start_leaves_the_record_of_the_run_in_its_directory(tmp_path):
    """.hydra/ (what the sweep report and the plots read) is written by a run that may train in its
    directory: a rerun there with a typo, or with another config, is refused and leaves it as it was."""
    first = run_cli(["algo=jax_smoke", "env=stub", "seed=3", "hydra.run.dir=r"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    record = tmp_path / "r" / ".hydra"
    before = {name: (record / name).read_text() for name in ("config.yaml", "hydra.yaml", "overrides.yaml")}
    assert "seed=3" in before["overrides.yaml"] and "seed: 3" in before["config.yaml"]
    for bad in (["trainer.num_envs=-4"], ["seed=4"]):
        res = run_cli(["algo=jax_smoke", "env=stub", *bad, "hydra.run.dir=r"], cwd=tmp_path)
        assert res.returncode == 2, res.stdout + res.stderr
        assert {name: (record / name).read_text() for name in before} == before


def test_the_key_check_lets_through_what_hydra_accepts():
    """run.py's check of keys and options before Hydra (unknown_key_error) must not refuse a command
    line Hydra takes: sweeps, list elements, quoted or spaced options, schema nodes, appends and
    deletions, launcher and sweeper settings, shell completion, configs from another directory."""
    from wildrobot.cli import unknown_key_error

    for argv in (["-sc", "install=bash"], ["algo.policy.hidden_sizes.0=128"], ["env.command.vx.0=0.1"],
                 ["env=wildrobot, stub"], ['env="stub"'], ["algo=base_ppo"], ["experiment=amp_walk"],
                 ["-m", "seed=0,1", "algo.learning_rate=1e-3,3e-4"], ["hydra/launcher=slurm"], ["+experiment=x"],
                 ["~algo_env"], ["-cd", "elsewhere", "experiment=mine"], ["env.config_overrides.a.b=1"],
                 ["algo.learning_rate=choice(1e-3,3e-4)"], ["hydra.sweeper.params.seed=range(3)"], ["seed=null"]):
        assert unknown_key_error(argv) is None, argv
    assert "Did you mean algo.policy.hidden_sizes" in unknown_key_error(["algo.policy.hidden_size.0=1"])


def test_a_job_of_a_sweep_that_cannot_run_does_not_stop_the_others(tmp_path):
    """The first job's value is refused (exit 2 for a single run); the sweep runs the second job, then
    ends in failure, as Hydra ends a sweep with a failed job."""
    res = run_cli(["-m", "algo=jax_smoke", "env=stub", "trainer.iterations=0,1"], cwd=tmp_path)
    assert res.returncode != 0
    assert "invalid value for 'trainer.iterations': 0" in res.stderr
    jobs = sorted(p.parents[2].name for p in tmp_path.glob("multirun/*/*/*/checkpoints/latest/1"))
    assert jobs == ["1"]


def test_an_optuna_search_left_to_minimise_is_warned_about():
    from types import SimpleNamespace

    from wildrobot.cli import sweeper_direction_note

    optuna = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert "direction=maximize" in sweeper_direction_note(SimpleNamespace(sweeper=SimpleNamespace(
        _target_=optuna, direction="minimize")))
    assert "direction=maximize" in sweeper_direction_note(SimpleNamespace(sweeper=SimpleNamespace(
        _target_=optuna, direction=["MINIMIZE"])))
    assert sweeper_direction_note(SimpleNamespace(sweeper=SimpleNamespace(_target_=optuna, direction="maximize"))) is None
    assert sweeper_direction_note(SimpleNamespace(sweeper=SimpleNamespace(
        _target_="hydra._internal.core_plugins.basic_sweeper.BasicSweeper"))) is None
