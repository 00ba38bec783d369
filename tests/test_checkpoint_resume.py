"""Checkpoints round-trip typed state; resume equals an uninterrupted run; bad checkpoints are handled."""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import (RESUME_CADENCE, TINY_PPO, assert_resume_was_exact, assert_trees_equal,
                      interrupted_and_uninterrupted, make_trainer, restore_latest)
from wildrobot.train.checkpoint import Checkpointer, CheckpointError, saved_steps
from wildrobot.train.logging import read_scalars


def test_round_trip_keeps_optax_state_and_typed_key(tmp_path):
    params = {"w": jnp.arange(6.0).reshape(2, 3)}
    opt = optax.adam(1e-3)
    opt_state = opt.update(jax.tree.map(jnp.ones_like, params), opt.init(params), params)[1]
    # A zero-size leaf, as mjx.Data has (e.g. ``act`` of a model without activations).
    state = {"params": params, "opt": opt_state, "key": jax.random.key(7), "empty": jnp.zeros((4, 0))}
    ckpt = Checkpointer(tmp_path / "ck", keep=2)
    ckpt.save(3, state, {"env": "stub", "algo": "x"})
    ckpt.close()
    restored, meta, step = Checkpointer(tmp_path / "ck", keep=2).restore_newest(jax.eval_shape(lambda: state))
    assert step == 3 and meta["env"] == "stub"
    assert type(restored["opt"][0]).__name__ == "ScaleByAdamState"  # a namedtuple, not a list
    assert jnp.issubdtype(restored["key"].dtype, jax.dtypes.prng_key)
    assert_trees_equal(restored, state)


@pytest.fixture(scope="module")
def ppo_runs(tmp_path_factory):
    """An uninterrupted 4-iteration run, and one stopped after 2 iterations then resumed to 4."""
    root = tmp_path_factory.mktemp("resume")
    return root, interrupted_and_uninterrupted(TINY_PPO, root)


def test_resume_matches_uninterrupted_run_bit_for_bit(ppo_runs):
    assert_resume_was_exact(*ppo_runs)


def test_resume_from_an_iteration_off_the_log_grid_returns_to_it_and_matches(ppo_runs, tmp_path):
    """A run stopped after its one-iteration first chunk resumes with a chunk up to log_every."""
    root, full = ppo_runs
    assert make_trainer(TINY_PPO + RESUME_CADENCE + ["trainer.iterations=1"], tmp_path / "one").run() == 0
    resumed = make_trainer(TINY_PPO + RESUME_CADENCE + ["trainer.iterations=4", f"trainer.resume={tmp_path / 'one'}"],
                           tmp_path / "hydra")
    assert resumed.run() == 0
    assert resumed.chunk_iterations == [1, 2]  # iterations 2, then 3-4
    a, _, _ = restore_latest(root / "full", full)
    b, _, step = restore_latest(tmp_path / "one", full)
    assert step == 4
    assert_trees_equal(a, b)


def test_tensorboard_is_readable_and_continuous_across_resume(ppo_runs):
    root, _ = ppo_runs
    full, part = read_scalars(root / "full" / "tensorboard"), read_scalars(root / "part" / "tensorboard")
    steps_per_it = 8 * 8
    # a new run's first chunk is one iteration, the resumed one starts on the log_every grid
    assert [s for s, _ in part["loss/total"]] == [1 * steps_per_it, 2 * steps_per_it, 4 * steps_per_it]
    for tag in ("loss/total", "ppo/learning_rate", "eval/return"):
        np.testing.assert_allclose([v for _, v in part[tag]], [v for _, v in full[tag]], rtol=1e-6)


def test_evaluation_time_is_logged_on_its_own(ppo_runs):
    root, _ = ppo_runs
    scalars = read_scalars(root / "full" / "tensorboard")
    steps_per_it = 8 * 8
    assert [s for s, _ in scalars["perf/eval_seconds"]] == [2 * steps_per_it, 4 * steps_per_it]
    assert all(v > 0 for _, v in scalars["perf/eval_seconds"])
    assert len(scalars["perf/steps_per_second"]) == 3  # iterations 1, 2, 4


def test_the_next_chunk_is_queued_before_logging_and_changes_nothing(ppo_runs, tmp_path, monkeypatch):
    """Without an evaluation or checkpoint due, each chunk is queued (handed to the thread that
    calls chunks) before the previous one's metrics are logged (the device keeps working while
    Python logs), the first chunk is one iteration and the next fills up to log_every, and the
    result equals the run that stopped after every chunk to evaluate and save."""
    from wildrobot.train import chunks, runner

    root, full = ppo_runs
    events = []  # appended in the main thread only, so their order is the runner's
    launch = chunks.ChunkRunner.launch
    log_scalars = runner.TensorBoardLogger.scalars

    def recording_launch(self, carry, start, iterations):
        events.append(f"dispatch {iterations}")
        return launch(self, carry, start, iterations)

    def recording_scalars(self, scalars, step):
        events.append(f"log {step}")
        return log_scalars(self, scalars, step)

    monkeypatch.setattr(chunks.ChunkRunner, "launch", recording_launch)
    monkeypatch.setattr(runner.TensorBoardLogger, "scalars", recording_scalars)
    queued = make_trainer(TINY_PPO + ["trainer.log_every=2", "trainer.checkpoint_every=0", "trainer.eval_every=0",
                                      "trainer.iterations=4"], tmp_path / "queued")
    assert queued.run() == 0
    steps_per_it = 8 * 8
    assert events == ["dispatch 1", "dispatch 1", f"log {1 * steps_per_it}", "dispatch 2", f"log {2 * steps_per_it}",
                      f"log {4 * steps_per_it}"]
    a, _, _ = restore_latest(root / "full", full)
    b, _, step = restore_latest(tmp_path / "queued", full)
    assert step == 4
    assert_trees_equal(a, b)


def test_resume_after_a_crash_purges_events_past_the_checkpoint(tmp_path):
    smoke = ["env=stub", "algo=jax_smoke", "trainer.log_every=2", "trainer.checkpoint_every=2", "trainer.progress=false"]
    run = tmp_path / "run"
    assert make_trainer(smoke + ["trainer.iterations=4"], run).run() == 0
    shutil.rmtree(run / "checkpoints" / "latest" / "4")  # as if the process died before saving it
    resumed = make_trainer(smoke + ["trainer.iterations=6", f"trainer.resume={run}"], tmp_path / "hydra")
    assert resumed.run() == 0
    points = read_scalars(run / "tensorboard")["param_w_mean"]
    assert [s for s, _ in points] == [1, 2, 4, 6]  # the first run's chunks: 1, 1, 2 iterations
    # Each point is the chunk's mean over its iterations: -1e-5, -2e-5, (-3e-5 - 4e-5) / 2, ...
    np.testing.assert_allclose([v for _, v in points], [-1e-5, -2e-5, -3.5e-5, -5.5e-5], rtol=1e-4)


def test_truncated_checkpoint_is_reported_and_the_previous_one_used(tmp_path, caplog):
    run = tmp_path / "run"
    smoke = ["env=stub", "algo=jax_smoke", "trainer.iterations=4", "trainer.log_every=2",
             "trainer.checkpoint_every=2", "trainer.progress=false"]
    trainer = make_trainer(smoke, run)
    assert trainer.run() == 0
    newest = run / "checkpoints" / "latest" / "4" / "state"
    for f in [f for f in newest.rglob("*") if f.is_file()]:  # every array file cut in half
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with caplog.at_level("WARNING"):
        state, meta, step = restore_latest(run, trainer)
    assert step == 2
    assert "step 4" in caplog.text and "incomplete or corrupt" in caplog.text

    from wildrobot.train.checkpoint import _short

    # TensorStore's read errors carry their whole spec after the first sentence: the warning keeps the sentence
    e = Exception("Encountered error while reading array index: (slice(0, 6, 1),). See full TensorStore "
                  "details: <bound method ...> " + "x" * 2000 + "\nmore")
    assert _short(e) == "Exception: Encountered error while reading array index: (slice(0, 6, 1),)."
    np.testing.assert_allclose(np.asarray(state["params"]["w"]), -2e-5, rtol=1e-4)


SMOKE = ["env=stub", "algo=jax_smoke", "trainer.log_every=2", "trainer.checkpoint_every=2", "trainer.progress=false"]


def _w(run, trainer, step=None):
    state, meta, saved = restore_latest(run, trainer, step)
    return float(np.asarray(state["params"]["w"]).mean()), meta, saved


def test_a_resume_from_an_older_checkpoint_branches_there_and_sets_the_newer_ones_aside(tmp_path):
    """Resumed from latest/2 of a run that went on to 4, with another learning rate: the new branch's
    iterations 3-4 are what latest/4 holds afterwards (not the old branch's), the old 4 is kept aside,
    and TensorBoard shows the new branch."""
    run = tmp_path / "run"
    first = make_trainer(SMOKE + ["trainer.iterations=4"], run)
    assert first.run() == 0
    resumed = make_trainer(SMOKE + ["trainer.iterations=4", "algo.learning_rate=1e-2",
                                    f"trainer.resume={run / 'checkpoints' / 'latest' / '2'}"], tmp_path / "hydra")
    assert resumed.run() == 0
    w, meta, step = _w(run, resumed)
    assert step == 4 and meta["config"]["algo"]["learning_rate"] == pytest.approx(1e-2)
    assert w == pytest.approx(-2e-5 - 2e-4, rel=1e-4)  # 2 iterations at 1e-3, then 2 at 1e-2 (gradient 0.01)
    aside = list((run / "checkpoints" / "superseded").glob("*/checkpoints/latest/4"))
    assert len(aside) == 1
    # the old branch's step 4, intact, and named as any checkpoint is (as eval, export and resume read it)
    from wildrobot.train.resume import resolve_resume

    where = resolve_resume(str(aside[0]), tmp_path, tmp_path / "elsewhere")
    assert (where.run_dir, where.step) == (aside[0].parents[2], 4)
    w_old, _, _ = _w(where.run_dir, resumed)
    assert w_old == pytest.approx(-4e-5, rel=1e-4)
    points = read_scalars(run / "tensorboard")["param_w_mean"]
    assert [s for s, _ in points] == [1, 2, 4] and points[-1][1] == pytest.approx(-2e-5 - 1.5e-4, rel=1e-4)
    # and the next resume continues the new branch
    again = make_trainer(SMOKE + ["trainer.iterations=6", "algo.learning_rate=1e-2", f"trainer.resume={run}"],
                         tmp_path / "hydra2")
    assert again.run() == 0
    assert _w(run, again)[0] == pytest.approx(-2e-5 - 4e-4, rel=1e-4)


def test_a_resume_past_a_corrupt_newest_checkpoint_saves_that_step_again(tmp_path):
    run = tmp_path / "run"
    assert make_trainer(SMOKE + ["trainer.iterations=4"], run).run() == 0
    for f in [f for f in (run / "checkpoints" / "latest" / "4" / "state").rglob("*") if f.is_file()]:
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    resumed = make_trainer(SMOKE + ["trainer.iterations=4", f"trainer.resume={run}"], tmp_path / "hydra")
    assert resumed.run() == 0 and resumed.start_iteration == 2
    w, _, step = _w(run, resumed)
    assert step == 4 and w == pytest.approx(-4e-5, rel=1e-4)  # readable again, the resumed run's
    assert len(list((run / "checkpoints" / "superseded").glob("*/checkpoints/latest/4"))) == 1  # the corrupt one, kept


def test_the_curves_are_on_disk_before_each_checkpoint(tmp_path, monkeypatch):
    """A run killed outright after a checkpoint (SIGKILL, out of memory) must not lose the curves up
    to it: the resume purges what comes after, so what the writer still buffered would be gone."""
    seen = {}
    save = Checkpointer.save

    def looking(self, step, state, meta):
        points = read_scalars(tmp_path / "run" / "tensorboard").get("param_w_mean", [])
        seen[step] = [s for s, _ in points]
        return save(self, step, state, meta)

    monkeypatch.setattr(Checkpointer, "save", looking)
    assert make_trainer(SMOKE + ["trainer.iterations=4"], tmp_path / "run").run() == 0
    assert seen == {2: [1, 2], 4: [1, 2, 4]}


def test_a_rerun_of_a_run_that_died_before_its_first_checkpoint_logs_each_step_once(tmp_path, monkeypatch):
    run = tmp_path / "run"
    save = Checkpointer.save

    def failing(self, step, state, meta):
        raise OSError("disk full")

    monkeypatch.setattr(Checkpointer, "save", failing)
    with pytest.raises(OSError):
        make_trainer(SMOKE + ["trainer.iterations=4"], run).run()
    monkeypatch.setattr(Checkpointer, "save", save)
    assert read_scalars(run / "tensorboard")["param_w_mean"]  # the dead run logged before it died
    assert make_trainer(SMOKE + ["trainer.iterations=4"], run).run() == 0
    assert [s for s, _ in read_scalars(run / "tensorboard")["param_w_mean"]] == [1, 2, 4]


def test_no_readable_latest_checkpoint_names_the_readable_best_ones(tmp_path):
    state = {"w": jnp.arange(4.0)}
    ckpt = Checkpointer(tmp_path / "ck", keep=2)
    ckpt.save(3, state, {"env": "stub", "algo": "x"})
    assert ckpt.save_if_best(3, state, {"env": "stub", "algo": "x"}, 1.0)
    ckpt.close()
    for f in [f for f in (tmp_path / "ck" / "latest" / "3" / "state").rglob("*") if f.is_file()]:
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"step 3: state unreadable(.|\n)*best/ checkpoints hold steps \[3\]"):
        Checkpointer(tmp_path / "ck", keep=2).restore_newest(jax.eval_shape(lambda: state))


def test_missing_resume_path_is_a_clear_error(tmp_path):
    from wildrobot.errors import ConfigError

    trainer = make_trainer(["env=stub", "algo=jax_smoke", f"trainer.resume={tmp_path / 'nope'}"], tmp_path / "r")
    with pytest.raises(ConfigError, match="does not exist"):
        trainer.run()


def test_resume_with_another_network_size_names_the_differing_keys(ppo_runs):
    root, _ = ppo_runs
    trainer = make_trainer(TINY_PPO + ["trainer.log_every=2", "trainer.iterations=6", "algo.policy.hidden_sizes=[32]",
                                       f"trainer.resume={root / 'full'}"], root / "other")
    with pytest.raises(CheckpointError) as err:
        trainer.run()
    assert "algo.policy.hidden_sizes" in str(err.value) and "[16]" in str(err.value)
    assert "overrides: algo.policy.hidden_sizes=[16]" in str(err.value)  # what continues it as written


def test_a_key_newer_than_the_checkpoint_counts_as_its_default_and_the_overrides_restore_its_config():
    """A run written before a key existed stores no value for it: it compares as the key's schema
    default (what evaluating it reads), and the overrides the errors print give back its config."""
    import dataclasses

    from wildrobot.cli import load_config
    from wildrobot.train.resume import checkpoint_overrides, config_differences

    cfg = load_config(["env=wildrobot", "seed=2"])
    stored = dataclasses.asdict(load_config(["env=wildrobot", "env.reward.feet_phase_point=lowest",
                                             "env.reward.unclipped_terms=[]"]))
    del stored["env"]["push"]["grow_to"], stored["env"]["push"]["grow_steps"]  # written before the kicks grew
    assert config_differences(stored, cfg) == [
        "env.push.grow_to: checkpoint None (a key newer than the checkpoint: its default) vs now 0.7",
        "env.reward.feet_phase_point: checkpoint 'lowest' vs now 'centre'",
        "env.reward.unclipped_terms: checkpoint [] vs now ['termination']",
        "seed: checkpoint 0 vs now 2"]  # grow_steps: the env's value is the schema's
    overrides = checkpoint_overrides(stored, cfg)
    assert overrides == ["env.push.grow_to=null", "env.reward.feet_phase_point=lowest",
                         "env.reward.unclipped_terms=[]", "seed=0"]
    assert config_differences(stored, load_config(["env=wildrobot", "seed=2", *overrides])) == []


def test_a_config_stored_with_a_renamed_key_reads_as_the_same_run():
    """``algo.style_ramp_iterations`` (iterations, until 2026-12-05) is read as
    ``algo.style_ramp_env_steps`` (env steps): a checkpoint of experiment=amp_walk from before
    evaluates with the same ramp and resumes under today's preset without a difference."""
    import copy
    import dataclasses

    from wildrobot.cli import load_config
    from wildrobot.config import ConfigError, config_from_dict
    from wildrobot.train.resume import config_differences

    cfg = load_config(["experiment=amp_walk"])
    stored = dataclasses.asdict(cfg)
    del stored["algo"]["style_ramp_env_steps"]
    stored["algo"]["style_ramp_iterations"] = 250  # the preset as written then: 250 iterations of 1024 envs
    as_written = copy.deepcopy(stored)
    assert config_from_dict(stored).algo.style_ramp_env_steps == 250 * 1024 * 20 == cfg.algo.style_ramp_env_steps
    assert stored == as_written  # the stored dict itself is left as it was
    assert config_differences(stored, cfg) == []
    # on another batch the ramp still compares in env steps: only the batch differs
    assert config_differences(stored, load_config(["experiment=amp_walk", "trainer.num_envs=512"])) == [
        "trainer.num_envs: checkpoint 1024 vs now 512"]
    for override in ("algo.style_ramp_iterations=250", "+algo.style_ramp_iterations=250"):  # as an override too
        with pytest.raises(ConfigError, match="is now algo.style_ramp_env_steps"):
            load_config(["algo=ppo_amp", override])


def test_resume_with_another_env_is_refused(ppo_runs):
    root, _ = ppo_runs
    trainer = make_trainer(["env=wildrobot", "algo=ppo", "trainer.progress=false",
                            f"trainer.resume={root / 'full'}"], root / "other_env")
    with pytest.raises(CheckpointError, match="env 'stub'"):
        trainer.run()


def test_a_run_from_an_env_with_other_state_still_loads_its_policy(ppo_runs, monkeypatch, caplog):
    """A later version's env may keep other fields (here: one more metric). Evaluation and export
    still load the policy and normaliser, bit for bit; resuming is refused with the shape error."""
    from wildrobot.envs.stub import StubEnv
    from wildrobot.train.checkpoint import StateShapeError
    from wildrobot.runs import load_run

    root, full = ppo_runs
    before = load_run(root / "full")
    metrics = StubEnv._metrics
    monkeypatch.setattr(StubEnv, "_metrics", staticmethod(lambda *a: {**metrics(*a), "extra": jnp.zeros(())}))
    with caplog.at_level("WARNING"):
        after = load_run(root / "full")
    assert "policy and observation normaliser only" in caplog.text
    assert after.step == before.step == 4
    assert_trees_equal((after.state.params, after.state.obs_stats), (before.state.params, before.state.obs_stats))
    assert isinstance(after.state.env_state.metrics["extra"], jax.ShapeDtypeStruct)  # not restored
    resumed = make_trainer(TINY_PPO + ["trainer.log_every=2", "trainer.iterations=6", f"trainer.resume={root / 'full'}"],
                           root / "resume_other")
    with pytest.raises(StateShapeError):
        resumed.run()


def test_a_resume_that_changes_the_budget_of_a_linear_schedule_says_how_its_rate_moves(tmp_path, caplog):
    """The linear schedule decays over trainer.iterations: raising it on resume moves the rate (a run
    started for 2 iterations ends at rate 0; resumed to 8, it goes on at 1e-3 x (1 - 2/8) = 7.5e-4)."""
    linear = TINY_PPO + RESUME_CADENCE + ["algo.lr_schedule=linear", "algo.learning_rate=1e-3"]
    assert make_trainer(linear + ["trainer.iterations=2"], tmp_path / "run").run() == 0
    with caplog.at_level("WARNING"):
        resumed = make_trainer(linear + ["trainer.iterations=8", f"trainer.resume={tmp_path / 'run'}"],
                               tmp_path / "hydra")
        assert resumed.run() == 0
    assert "linear learning-rate schedule" in caplog.text
    assert "started with as 2 and is now 8: from iteration 2 its rate is 0.00075 (it was going to be 0)" in caplog.text


def test_resuming_a_finished_run_says_there_is_nothing_to_train(tmp_path, capsys):
    run = tmp_path / "run"
    assert make_trainer(SMOKE + ["trainer.iterations=2"], run).run() == 0
    capsys.readouterr()
    again = make_trainer(SMOKE + ["trainer.iterations=2", f"trainer.resume={run}"], tmp_path / "hydra")
    assert again.run() == 0 and again.chunk_iterations == []
    out = capsys.readouterr().out
    assert "Nothing to train: the run is at iteration 2 and trainer.iterations=2" in out
    assert "Compiling" not in out
    # from an older checkpoint with nothing to train, the newer ones stay where they are
    assert make_trainer(SMOKE + ["trainer.iterations=4", f"trainer.resume={run}"], tmp_path / "hydra2").run() == 0
    older = make_trainer(SMOKE + ["trainer.iterations=2", f"trainer.resume={run / 'checkpoints' / 'latest' / '2'}"],
                         tmp_path / "hydra3")
    assert older.run() == 0
    assert saved_steps(run / "checkpoints")["latest"] == [2, 4] and not (run / "checkpoints" / "superseded").exists()


def test_a_requeued_job_resumed_from_a_named_checkpoint_continues_its_own_newest(tmp_path, monkeypatch):
    """A SLURM job started with trainer.resume=<run>/checkpoints/latest/2 saves past it, is preempted
    and requeued with the same command line: it continues from its own newest checkpoint, not from
    step 2 again (which would set aside everything it trained)."""
    run = tmp_path / "run"
    assert make_trainer(SMOKE + ["trainer.iterations=4"], run).run() == 0
    job = SMOKE + [f"trainer.resume={run / 'checkpoints' / 'latest' / '2'}"]
    first = make_trainer(job + ["trainer.iterations=6"], tmp_path / "job")
    first.cfg.trainer.iterations = 4  # preempted at 4: stands in for the stop, the command line is the same
    assert first.run() == 0 and first.start_iteration == 2
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    again = make_trainer(job + ["trainer.iterations=6"], tmp_path / "job")
    assert again.run() == 0
    assert again.start_iteration == 4
    assert saved_steps(run / "checkpoints")["latest"] == [2, 4, 6]
    assert len(list((run / "checkpoints" / "superseded").glob("*/checkpoints/latest/4"))) == 1  # the first branch's only
