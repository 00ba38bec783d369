"""Evaluation: the table from a checkpoint of a short run, clear errors, and (WildRobot) the video."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, skip_without_rendering
from wildrobot.eval import evaluate_policy, format_table, main, parse_commands
from wildrobot.runs import load_run


@pytest.fixture(scope="module")
def stub_loaded(stub_run):
    return load_run(stub_run)


def test_evaluate_policy_runs_each_command_for_full_episodes(stub_loaded):
    commands = np.array([[0.0, 0.0], [0.5, -0.5]], np.float32)
    res = evaluate_policy(stub_loaded, commands, episodes=3, key=jax.random.key(1))
    assert res.per_episode["return"].shape == (2, 3)
    # Full 100-step episodes unless the episode ended early, and then it counts as a fall.
    length, fall = res.per_episode["length"], res.per_episode["fall"]
    assert np.all((length == 100.0) | ((length < 100.0) & (fall == 1.0)))
    assert {"reward/tracking", "reward/action_rate", "tracking/velocity_error"} <= set(res.per_episode)
    # The reward terms add up to the return (the stub's reward is their plain sum).
    terms = sum(res.per_episode[k] for k in res.reward_terms)
    np.testing.assert_allclose(terms, res.per_episode["return"], rtol=1e-4, atol=1e-4)
    # Episodes of one command differ only by their reset (random start velocity).
    assert res.per_episode["return"][0, 0] != res.per_episode["return"][0, 1]


def test_same_key_same_results(stub_loaded):
    a = evaluate_policy(stub_loaded, None, episodes=1, key=jax.random.key(3))
    b = evaluate_policy(stub_loaded, None, episodes=1, key=jax.random.key(3))
    np.testing.assert_array_equal(a.per_episode["return"], b.per_episode["return"])
    assert a.commands.shape == (len(stub_loaded.env.evaluation_commands), 2)


def test_table_has_a_row_per_command_and_an_overall_row(stub_loaded):
    res = evaluate_policy(stub_loaded, np.array([[0.1, 0.2], [0.3, 0.4]]), episodes=1)
    table = format_table(res)
    assert "+0.10 +0.20" in table and "+0.30 +0.40" in table and "overall" in table
    assert "falls %" in table and "velocity err" in table and "tracking" in table


def test_actions_held_at_their_limit_are_counted_per_joint(stub_loaded):
    """A policy whose first action is always past +1 (clipped) and whose second is always 0."""
    policy = jax.tree.map(np.asarray, stub_loaded.state.params["policy"])
    last = sorted(policy["params"], key=lambda name: int(name.rsplit("_", 1)[1]))[-1]
    policy["params"][last]["kernel"] = np.zeros_like(policy["params"][last]["kernel"])
    policy["params"][last]["bias"] = np.array([5.0, 0.0], np.float32)
    params = {**stub_loaded.state.params, "policy": policy}
    pinned = dataclasses.replace(stub_loaded, state=stub_loaded.state.replace(params=params))
    res = evaluate_policy(pinned, np.array([[0.1, 0.2], [0.3, 0.4]]), episodes=2)
    assert res.actions_at_limit == ["action_at_limit/a0", "action_at_limit/a1"]
    assert (res.env_name, res.labels) == ("stub", ("vx", "vy"))
    np.testing.assert_array_equal(res.per_episode["action_at_limit/a0"], np.ones((2, 2)))
    np.testing.assert_array_equal(res.per_episode["action_at_limit/a1"], np.zeros((2, 2)))
    table = format_table(res)
    assert "Actions at their limit" in table
    [row] = [line for line in table.splitlines() if line.startswith("a0 ")]
    assert row.split()[1:] == ["100.0"] * 3  # both commands and overall
    assert not any(line.startswith("a1 ") for line in table.splitlines())  # never at its limit: not listed


@pytest.mark.parametrize("form", ["flags", "key=value"])
def test_eval_cli_prints_the_table_and_says_why_there_is_no_video(stub_run, stub_loaded, tmp_path, form):
    out_json = tmp_path / "r.json"
    args = ([str(stub_run), "--episodes", "2", "--json", str(out_json)] if form == "flags"
            else [f"run={stub_run}", "episodes=2", f"json={out_json}"])  # the form of earlier versions
    r = subprocess.run([sys.executable, "-m", "wildrobot.eval", *args],
                       cwd=ROOT, capture_output=True, text=True, timeout=240, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert "overall" in r.stdout and "Reward terms" in r.stdout
    assert "no video for this env (stub: no MuJoCo model)" in r.stdout
    data = json.loads(out_json.read_text())
    assert len(data["per_command"]) == len(stub_loaded.env.evaluation_commands) and data["episodes_per_command"] == 2


@pytest.mark.parametrize("make_path", ["missing", "no_checkpoints", "corrupt"])
def test_unloadable_checkpoint_exits_2_naming_the_path(make_path, stub_run, tmp_path, capsys):
    if make_path == "missing":
        path = tmp_path / "nothing_here"
    elif make_path == "no_checkpoints":
        path = tmp_path
    else:
        import shutil

        path = tmp_path / "run"
        shutil.copytree(stub_run / "checkpoints", path / "checkpoints")
        for step_dir in (path / "checkpoints" / "latest").iterdir():
            shutil.rmtree(step_dir / "state")  # every latest checkpoint lost its arrays
    code = main([str(path), "--video", "none", "--json", "none"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(path) in err and "Expected a run directory" in err and "Traceback" not in err


def test_bad_arguments_exit_2_with_usage(capsys):
    assert main(["--episodes", "2"]) == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: run" in err and "usage: python -m wildrobot.eval" in err
    assert main(["x", "--colour", "red"]) == 2
    assert "unrecognized arguments: --colour red" in capsys.readouterr().err
    assert main(["x", "--episodes", "two"]) == 2
    assert "--episodes: invalid int value: 'two'" in capsys.readouterr().err
    assert main(["x", "--which", "worst"]) == 2
    assert "invalid choice: 'worst'" in capsys.readouterr().err
    assert main(["run=x", "episodes=0"]) == 2  # the key=value form reads the same
    assert "--episodes must be >= 1" in capsys.readouterr().err


def test_the_key_value_form_reads_randomize_as_a_switch(capsys):
    from wildrobot.eval import legacy_arguments, make_parser

    parser = make_parser()
    args = parser.parse_args(legacy_arguments(["run=r", "randomize=true", "episodes=2"]))
    assert args.randomize and args.run == "r" and args.episodes == 2
    assert parser.parse_args(legacy_arguments(["run=r", "randomize=True"])).randomize
    assert not parser.parse_args(legacy_arguments(["run=r", "randomize=false"])).randomize
    assert main(["run=x", "randomize=maybe"]) == 2
    err = capsys.readouterr().err
    assert "randomize: expected true or false; got 'maybe'" in err and "usage: python -m wildrobot.eval" in err

def test_commands_parse_from_the_command_line():
    assert parse_commands("grid") is None
    np.testing.assert_allclose(parse_commands("0.2,0,0;0.4,0,0.5"), [[0.2, 0, 0], [0.4, 0, 0.5]])
    np.testing.assert_allclose(parse_commands("[[0.1, 0.2]]"), [[0.1, 0.2]])


# ------------------------------------------------------------------------------------------------
# WildRobot: a checkpoint of a real (one-iteration) run, a short evaluation, a few video frames
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # reading the MP4 back runs ffmpeg
def test_eval_of_a_wildrobot_checkpoint_prints_the_table_and_writes_the_video(wildrobot_run, tmp_path, capsys):
    from wildrobot.render import gl_backend

    video = tmp_path / "eval.mp4"
    code = main([str(wildrobot_run), "--steps", "30", "--commands", "0,0,0;0.2,0,0.5", "--video", str(video),
                 "--video-seconds", "0.3", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "+0.20 +0.00 +0.50" in out and "overall" in out and "vx err" in out and "yaw_rate err" in out
    assert "tracking_lin_vel" in out  # a reward term's row
    if gl_backend() is None:
        assert "Video: skipped" in out
        skip_without_rendering()
    written = [p for p in tmp_path.iterdir() if p.suffix in (".mp4", ".gif")]
    assert len(written) == 1 and written[0].stat().st_size > 1000, out
    import imageio.v3 as iio

    frames = iio.imread(written[0], index=None)
    # 2 commands x 0.3 s: every 2nd 50 Hz step for MP4 (25 frames/s), every 4th for GIF, frame 0 included
    skip = 2 if written[0].suffix == ".mp4" else 4
    assert frames.shape[0] == 2 * len(range(0, 16, skip)) and frames.shape[-1] in (3, 4)
    assert frames[0].std() > 5  # a picture, not a blank frame


def test_video_falls_back_to_gif_without_an_mp4_encoder(tmp_path, monkeypatch):
    import imageio.v3 as iio

    from wildrobot import render

    monkeypatch.setattr(render, "mp4_available", lambda: False)
    frames = [np.full((24, 32, 3), 40 * i, np.uint8) for i in range(3)]
    written = render.write_video(tmp_path / "v.mp4", frames, fps=12.5)
    assert written == tmp_path / "v.gif"
    assert iio.imread(written, index=None).shape[:3] == (3, 24, 32)


def test_offscreen_renderer_draws_the_scene_and_the_text():
    import mujoco

    from wildrobot.render import OffscreenRenderer, Overlay

    skip_without_rendering()
    model = mujoco.MjModel.from_xml_string(
        '<mujoco><worldbody><light pos="0 0 3"/><geom type="plane" size="2 2 .1"/>'
        '<body pos="0 0 .3"><freejoint/><geom size=".1"/></body></worldbody></mujoco>')
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    with OffscreenRenderer(model, 96, 64) as r:
        plain = r.render(data)
        with_text = r.render(data, Overlay("command", "vx +0.20"))
    assert plain.shape == (64, 96, 3) and plain.std() > 5
    assert np.abs(with_text.astype(int) - plain).sum() > 0


def test_the_shared_evaluation_rollout_matches_a_plain_python_loop():
    """``run_episodes`` (behind ``evaluate_policy`` and training-time evaluation) against one env
    stepped episode by episode in Python: an episode stops counting at its first termination."""
    from wildrobot.algos.evaluation import run_episodes
    from wildrobot.envs.stub import StubEnv
    from wildrobot.envs.stub_config import StubEnvConfig

    env = StubEnv(StubEnvConfig(episode_length=30, max_speed=1.0))
    gains = jnp.array([[-2.0, 0.0], [0.0, -2.0], [2.5, 0.0], [0.0, 2.5], [0.0, 0.0], [0.0, 0.0]])

    def policy(obs):  # drives towards the command, saturating (|a| = 1) when far from it
        return jnp.clip(obs @ gains, -1.0, 1.0)

    keys = jax.random.split(jax.random.key(5), 3)
    commands = jnp.array([[0.5, 0.0], [0.0, -0.5], [0.9, 0.9]])  # the last is faster than max_speed: it falls
    summed = ("reward/", "tracking/")
    totals, _ = jax.jit(lambda k, c: run_episodes(env, policy, k, 30, c, summed=summed))(keys, commands)

    step = jax.jit(env.step)
    for i in range(3):
        state = env.set_command(env.reset(keys[i]), commands[i])
        expected = {k: 0.0 for k in ("return", "length", "fall", *[m for m in state.metrics if m.startswith(summed)])}
        at_limit, alive = np.zeros(env.action_size), True
        for _ in range(30):
            action = policy(state.obs["actor"][None])[0]
            state = step(state, action)
            if alive:
                expected["return"] += float(state.reward)
                expected["length"] += 1
                expected["fall"] += float(state.done)
                for k in expected:
                    if k.startswith(summed):
                        expected[k] += float(state.metrics[k])
                at_limit += np.abs(np.asarray(action)) >= 1.0
                alive = float(state.done) == 0.0
        for k, v in expected.items():
            np.testing.assert_allclose(float(totals[k][i]), v, rtol=1e-5, atol=1e-5, err_msg=k)
        np.testing.assert_array_equal(np.asarray(totals["at_limit"][i]), at_limit)
    assert float(totals["fall"][2]) == 1.0 and float(totals["length"][2]) < 30
    assert float(totals["fall"][0]) == 0.0 and float(totals["length"][0]) == 30
    assert np.asarray(totals["at_limit"]).max() > 0


def test_a_robustness_evaluation_has_the_training_disturbances_with_draws_fixed_by_the_seed(wildrobot_run, tmp_path,
                                                                                          capsys):
    """--randomize: randomisation, pushes, noise and action delay as the run trained; the same seed
    gives the same episodes, and they differ from the clean evaluation's."""
    import json

    from wildrobot.runs import evaluation_env, load_run

    loaded = load_run(wildrobot_run)
    disturbed, clean = evaluation_env(loaded, disturbed=True).cfg, evaluation_env(loaded).cfg
    for group in ("randomization", "push", "noise"):
        assert getattr(disturbed, group).enabled and not getattr(clean, group).enabled
    assert disturbed.randomization.action_delay.enabled

    def evaluate(*flags):
        out = tmp_path / f"{len(list(tmp_path.iterdir()))}.json"
        code = main([str(wildrobot_run), "--steps", "40", "--commands", "0.2,0,0;0,0,0.5", "--episodes", "2",
                     "--video", "none", "--json", str(out), *flags])
        printed = capsys.readouterr().out
        assert code == 0, printed
        return json.loads(out.read_text()), printed

    (first, printed), (again, _), (clean_run, clean_printed) = evaluate("--randomize"), evaluate("--randomize"), evaluate()
    assert "as in training" in printed
    # the table and the JSON say which disturbances the episodes had
    assert "deterministic policy, randomization, push, noise on" in printed and "no randomisation" not in printed
    assert first["disturbances"] == ["randomization", "push", "noise"] and clean_run["disturbances"] == []
    assert "deterministic policy, no randomisation/pushes/noise" in clean_printed
    assert first["overall"] == again["overall"]
    assert first["overall"]["return"] != clean_run["overall"]["return"]
