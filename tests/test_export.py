"""ONNX export: the exported actor reproduces the JAX policy; the sidecar describes it."""

from __future__ import annotations

import json

import jax
import numpy as np
import onnx
import pytest

from wildrobot.export import META_KEY, SIDECAR_FORMAT, export, main, onnx_actions, policy_function
from wildrobot.runs import load_run


@pytest.fixture(scope="module")
def stub_export(stub_run, tmp_path_factory):
    loaded = load_run(stub_run)
    out = tmp_path_factory.mktemp("export")
    onnx_path, json_path, meta = export(loaded, out / "policy.onnx")
    return loaded, onnx_path, json_path, meta


def test_onnx_policy_matches_jax_policy_on_random_observations(stub_export):
    loaded, onnx_path, _, _ = stub_export
    n = loaded.env.observation_size["actor"]
    rng = np.random.default_rng(0)
    # Wide enough to reach the normaliser's +-10 clip and the action clip at +-1.
    obs = rng.normal(0.0, 5.0, (512, n)).astype(np.float32)
    expected = np.asarray(jax.jit(policy_function(loaded))(obs))
    actual = onnx_actions(onnx_path, obs)
    assert actual.shape == (512, loaded.env.action_size)
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)
    # One observation at a time (a robot's control loop) gives the same actions.
    np.testing.assert_allclose(onnx_actions(onnx_path, obs[:1]), expected[:1], atol=1e-5, rtol=0)


def test_sidecar_is_written_and_embedded_in_the_onnx_file(stub_export):
    loaded, onnx_path, json_path, meta = stub_export
    assert json_path == onnx_path.with_suffix(".json")
    on_disk = json.loads(json_path.read_text())
    assert on_disk == meta
    assert meta["format"] == SIDECAR_FORMAT
    assert meta["input"]["shape"] == ["batch", loaded.env.observation_size["actor"]]
    assert meta["output"]["shape"] == ["batch", loaded.env.action_size]
    assert meta["source"]["step"] == loaded.step and meta["source"]["env"] == "stub"
    assert meta["control"]["dt"] == pytest.approx(loaded.env.dt)
    embedded = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(embedded[META_KEY]) == meta


def test_export_cli_writes_both_files_and_checks_them(stub_export, tmp_path, capsys):
    loaded = stub_export[0]
    code = main([str(loaded.run_dir), "--onnx", str(tmp_path / "p.onnx"), "--which", "best"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert (tmp_path / "p.onnx").stat().st_size > 0 and (tmp_path / "p.json").exists()
    assert "max |ONNX - JAX|" in out


def test_export_of_a_missing_run_says_what_is_expected(tmp_path, capsys):
    code = main([str(tmp_path / "nope"), "--onnx", str(tmp_path / "p.onnx")])
    err = capsys.readouterr().err
    assert code == 2
    assert "nope" in err and "does not exist" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def wr_export(wildrobot_run, tmp_path_factory):
    loaded = load_run(wildrobot_run)
    onnx_path, _, meta = export(loaded, tmp_path_factory.mktemp("wr_sidecar") / "policy.onnx")
    return loaded, onnx_path, meta


def test_wildrobot_sidecar_matches_the_robot_description(wr_export):
    from wildrobot.robot.description import load_robot_description

    loaded, onnx_path, meta = wr_export
    desc = load_robot_description(loaded.cfg.env.robot)
    robot, action = meta["robot"], meta["action"]
    assert robot["joint_names"] == list(desc.joint_names) == action["joint_names"]
    np.testing.assert_allclose(robot["home"], desc.home)
    np.testing.assert_allclose(action["home"], desc.home)
    np.testing.assert_allclose(robot["joint_range"], desc.joint_range)
    assert robot["hardware_signs"] == list(desc.hardware_signs)
    np.testing.assert_allclose(action["scale"], np.asarray(desc.action_scale) * loaded.cfg.env.action_scale, rtol=1e-6)
    # The layout tiles the observation exactly and names every block once.
    layout = meta["observation"]["layout"]
    assert meta["observation"]["layout_known"]
    assert [b["start"] for b in layout] == list(np.cumsum([0] + [b["size"] for b in layout[:-1]]))
    assert sum(b["size"] for b in layout) == loaded.env.observation_size["actor"] == meta["input"]["shape"][1]
    assert len({b["name"] for b in layout}) == len(layout)
    n = desc.num_joints
    sizes = {b["name"]: b["size"] for b in layout}
    assert sizes["joint_pos"] == sizes["joint_vel"] == sizes["prev_action"] == n and sizes["command"] == 3
    assert meta["control"]["dt"] == pytest.approx(loaded.env.dt)
    # And the exported network still reproduces the JAX policy.
    obs = np.random.default_rng(1).normal(0.0, 2.0, (64, loaded.env.observation_size["actor"])).astype(np.float32)
    np.testing.assert_allclose(onnx_actions(onnx_path, obs), np.asarray(jax.jit(policy_function(loaded))(obs)),
                               atol=1e-5, rtol=0)


def test_the_sidecars_action_mapping_gives_the_envs_servo_targets(wr_export):
    """The sidecar's formula, applied with its own numbers, against the env's ``servo_targets``
    (the targets the env steps its servos to), on actions inside, at and beyond [-1, 1]."""
    loaded, _, meta = wr_export
    env, action = loaded.env, meta["action"]
    assert action["mapping"] == "joint_target = clip(home + scale * clip(action, -1, 1), joint_range)"
    rng = np.random.default_rng(0)
    n = env.action_size
    actions = np.concatenate([rng.uniform(-1.5, 1.5, (64, n)), np.ones((1, n)), -np.ones((1, n))]).astype(np.float32)
    home, scale = np.asarray(action["home"]), np.asarray(action["scale"])
    lo, hi = np.asarray(action["joint_range"]).T
    formula = np.clip(home + scale * np.clip(actions, -1.0, 1.0), lo, hi)
    np.testing.assert_allclose(formula, np.asarray(jax.vmap(env.servo_targets)(actions)), atol=1e-6, rtol=0)
    # the joint range cuts some targets before |action| = 1 (the hip rolls' 10 degree adduction), so
    # the range's clip is exercised as well as the action's
    unclipped = home + scale * np.clip(actions, -1.0, 1.0)
    assert np.any((unclipped > hi) | (unclipped < lo))
    # what the sidecar says a runtime must know about the sensors and the joint signs
    assert "(w, x, y, z)" in meta["observation"]["gravity"] and "(i, j, k, real)" in meta["observation"]["gravity"]
    assert "hardware_signs again" in meta["observation"]["joint_signs"]
