"""Reference motions: the format round-trips, the loader maps joints by name and refuses bad clips
with a message, resampling is exact on a sine, the generator's clips pass the physical checks and
broken clips fail them, the features of a reference frame equal the env's for the same physics
state (both backends), the imitation metrics give known answers, JSON clips import, and the
command line works."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import ROOT, skip_without_rendering
from wildrobot.motions.checks import check_clip
from wildrobot.motions.clip import Clip, MotionError, dataset_files, read_clip, save_clip, write_manifest
from wildrobot.motions.loader import load_clip, load_dataset, resample
from wildrobot.motions.metrics import aligned_rms, dtw_distance, frechet_distance
from wildrobot.motions.model import RobotModel
from wildrobot.robot import load_robot_description

DESC = load_robot_description()


@pytest.fixture(scope="module")
def robot():
    return RobotModel(DESC)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """One generated clip (0.2 m/s forward) through the command line, into a library folder."""
    out = tmp_path_factory.mktemp("motions") / "walk"
    res = subprocess.run([sys.executable, "-m", "wildrobot.motions", "generate", "--out", str(out), "--vx", "0.2",
                          "--workers", "1"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 of 1 commands realised" in res.stdout
    return out


@pytest.fixture(scope="module")
def walk(library):
    return load_clip(library / "walk_vx+0.20_vy+0.00_yaw+0.00.npz", DESC)


def standing(frames: int = 20, fps: float = 50.0, robot: RobotModel | None = None) -> Clip:
    """The home pose held still: a clip every check accepts."""
    robot = robot or RobotModel(DESC)
    q = robot.home_qpos
    r = robot.root_qpos
    return Clip(joint_names=DESC.joint_names, fps=fps, root_pos=np.tile(q[r:r + 3], (frames, 1)),
                root_quat=np.tile(q[r + 3:r + 7], (frames, 1)), joint_pos=np.tile(q[robot.qpos_idx], (frames, 1)),
                foot_contact=np.ones((frames, 2)), command=np.zeros(3), loop=True, name="still")


# -- the format and the loader ---------------------------------------------------------------------
def test_a_clip_round_trips_through_its_npz_without_pickles(walk, tmp_path):
    path = save_clip(tmp_path / "c.npz", walk)
    with np.load(path, allow_pickle=False) as raw:
        assert str(raw["quat_order"]) == "wxyz" and raw["joint_names"].dtype.kind == "U"
    back = read_clip(path)
    for field in ("root_pos", "root_quat", "joint_pos", "joint_vel", "foot_contact", "command"):
        np.testing.assert_array_equal(getattr(back, field), getattr(walk, field))
    assert (back.joint_names, back.fps, back.loop) == (walk.joint_names, walk.fps, walk.loop)


def test_joints_in_any_order_load_to_the_same_arrays(walk, tmp_path):
    order = np.random.default_rng(0).permutation(len(walk.joint_names))
    shuffled = walk.replace(joint_names=tuple(np.array(walk.joint_names)[order]), joint_pos=walk.joint_pos[:, order],
                            joint_vel=walk.joint_vel[:, order])
    loaded = load_clip(save_clip(tmp_path / "shuffled.npz", shuffled), DESC)
    assert loaded.joint_names == DESC.joint_names
    np.testing.assert_array_equal(loaded.joint_pos, walk.joint_pos)
    np.testing.assert_array_equal(loaded.joint_vel, walk.joint_vel)


def _write(tmp_path, clip: Clip, **fields) -> str:
    """A clip file with some fields replaced (None removes one)."""
    path = save_clip(tmp_path / "c.npz", clip)
    with np.load(path, allow_pickle=False) as raw:
        data = {k: raw[k] for k in raw.files}
    for k, v in fields.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    np.savez(path, **data)
    return path


def refusal_cases(walk: Clip):
    q, n = walk.joint_pos, walk.num_frames
    knee = DESC.joint_index("left_knee_pitch")
    over = q.copy()
    over[5, knee] = DESC.joint_range[knee][1] + 0.3
    nan = q.copy()
    nan[3, 2] = np.nan
    return {
        "missing field": (dict(root_quat=None), "missing field(s) root_quat"),
        "NaN": (dict(joint_pos=nan), "NaN or infinite values (first at index (3, 2))"),
        "non-unit quaternion": (dict(root_quat=walk.root_quat * 1.2), "has norm 1.2000, not 1"),
        "data w, x, y, z declared x, y, z, w": (dict(quat_order=np.array("xyzw")),
                                                "almost certainly stores w, x, y, z: set quat_order to 'wxyz'"),
        "data x, y, z, w declared w, x, y, z": (dict(root_quat=walk.root_quat[:, [1, 2, 3, 0]]),
                                                "almost certainly stores x, y, z, w: set quat_order to 'xyzw'"),
        "joint out of range": (dict(joint_pos=over), "joint left_knee_pitch is"),
        "velocities of another fps": (dict(fps=np.array(walk.fps / 2)), "They agree if the clip runs at about 5"),
        "velocities that disagree": (dict(joint_vel=np.roll(walk.joint_vel, 7, axis=0)), "joint_vel disagrees"),
        "zero fps": (dict(fps=np.array(0.0)), "fps must be > 0"),
        "missing robot joint": (dict(joint_names=np.array([*DESC.joint_names[:-1], "neck"]), ),
                                "lacks the robot's joint(s) waist_yaw"),
        "object array": (dict(command=np.array([{"vx": 1}], dtype=object)), "pickled (object) array"),
    } | ({"frames disagree": (dict(root_pos=walk.root_pos[:n - 1]), "the same number of frames")})


@pytest.mark.parametrize("case", ["missing field", "NaN", "non-unit quaternion", "data w, x, y, z declared x, y, z, w",
                                  "data x, y, z, w declared w, x, y, z",
                                  "joint out of range", "velocities of another fps", "velocities that disagree",
                                  "zero fps", "missing robot joint", "object array", "frames disagree"])
def test_the_loader_refuses_a_bad_clip_and_says_why(walk, tmp_path, case):
    fields, message = refusal_cases(walk)[case]
    with pytest.raises(MotionError) as err:
        load_clip(_write(tmp_path, walk, **fields), DESC)
    assert message in str(err.value)


def test_a_pickle_is_never_loaded(tmp_path):
    path = tmp_path / "clip.pkl"
    path.write_bytes(pickle.dumps({"joint_pos": np.zeros((3, 11))}))
    with pytest.raises(MotionError, match="a pickle file, which is never loaded"):
        read_clip(path)


def test_extra_joints_stop_the_load_unless_asked_to_drop_them(walk, tmp_path):
    extra = walk.replace(joint_names=(*walk.joint_names, "tail"), joint_pos=np.hstack([walk.joint_pos, walk.joint_pos[:, :1]]),
                         joint_vel=None)
    path = save_clip(tmp_path / "extra.npz", extra)
    with pytest.raises(MotionError, match="joint\\(s\\) the robot lacks: tail"):
        load_clip(path, DESC)
    np.testing.assert_array_equal(load_clip(path, DESC, ignore_extra_joints=True).joint_pos, walk.joint_pos)


def test_a_dataset_is_a_folder_or_a_manifest_with_weights(library, tmp_path):
    assert [p.name for p, _ in dataset_files(library)] == ["walk_vx+0.20_vy+0.00_yaw+0.00.npz"]
    write_manifest(tmp_path, [(str(library / "walk_vx+0.20_vy+0.00_yaw+0.00.npz"), 2.5)])
    [(clip, weight)] = load_dataset(tmp_path / "manifest.yaml", DESC)
    assert weight == 2.5 and clip.joint_names == DESC.joint_names
    (tmp_path / "bad.yaml").write_text("clips: [{path: x.npz, weight: -1}]")
    with pytest.raises(MotionError, match="weights must be > 0"):
        dataset_files(tmp_path / "bad.yaml")


def test_resampling_keeps_a_sine_exact():
    t60 = np.arange(121) / 60.0
    wave = lambda t: 0.3 * np.sin(2 * np.pi * 1.5 * t)  # noqa: E731
    frames = len(t60)
    q = np.tile(RobotModel(DESC).home_qpos[RobotModel(DESC).qpos_idx], (frames, 1))
    q[:, 0] += wave(t60)
    yaw = 0.4 * t60
    clip = Clip(joint_names=DESC.joint_names, fps=60.0, root_pos=np.stack([0.1 * t60, 0 * t60, 0.45 + 0 * t60], -1),
                root_quat=np.stack([np.cos(yaw / 2), 0 * t60, 0 * t60, np.sin(yaw / 2)], -1), joint_pos=q)
    out = resample(clip, 50.0)
    t50 = np.arange(out.num_frames) / 50.0
    assert out.num_frames == 101 and out.fps == 50.0
    np.testing.assert_allclose(out.joint_pos[:, 0] - q[0, 0] + wave(0.0), wave(t50), atol=2e-4)
    np.testing.assert_allclose(out.joint_vel[5:-5, 0], 0.3 * 2 * np.pi * 1.5 * np.cos(2 * np.pi * 1.5 * t50[5:-5]),
                               atol=5e-3)
    np.testing.assert_allclose(out.root_quat[:, 3], np.sin(0.4 * t50 / 2), atol=1e-9)  # slerp about one axis
    np.testing.assert_allclose(out.root_pos[:, 0], 0.1 * t50, atol=1e-12)


# -- the generator and the checks ------------------------------------------------------------------
def test_the_generated_walk_passes_every_physical_check(walk, robot):
    report = check_clip(walk, robot)
    assert report.passed, [(c.name, c.value) for c in report.failures]
    d = report.descriptors
    assert abs(d["speed_vx"] - 0.2) < 0.02 and abs(d["turning_rate"]) < 0.05
    assert d["cadence"] == pytest.approx(1 / 0.35, rel=0.02)  # one step every 0.35 s
    assert 0.5 < d["duty_factor"] < 0.7 and d["swing_clearance"] > 0.015
    assert walk.loop and walk.num_frames == 70  # two gait cycles at 50 fps


def test_the_generator_is_deterministic(library, tmp_path):
    from wildrobot.motions.generator import GaitSettings
    from wildrobot.motions.library import generate_one

    again = generate_one((0.2, 0.0, 0.0), GaitSettings(), tmp_path)
    assert again.file == "walk_vx+0.20_vy+0.00_yaw+0.00.npz"
    first, second = read_clip(library / again.file), read_clip(tmp_path / again.file)
    np.testing.assert_array_equal(first.joint_pos, second.joint_pos)
    np.testing.assert_array_equal(first.root_pos, second.root_pos)


def test_the_shipped_library_is_what_the_generator_writes(library):
    """wildrobot/motions/data/walk (algo=ppo_amp's default dataset) regenerates from the code."""
    from wildrobot.motions.features import BUILTIN_DATASET

    name = "walk_vx+0.20_vy+0.00_yaw+0.00.npz"
    shipped, generated = read_clip(BUILTIN_DATASET.parent / name), read_clip(library / name)
    for field in ("joint_pos", "root_pos", "root_quat", "foot_contact", "command"):
        np.testing.assert_allclose(getattr(shipped, field), getattr(generated, field), atol=1e-6, err_msg=field)
    names = [f.name for f, _ in dataset_files(BUILTIN_DATASET)]
    assert "stand.npz" in names and name in names


def test_turning_pivots_the_stance_soles_within_the_checks_and_faster_turns_are_refused(robot, tmp_path):
    """Without a hip yaw the generator turns the robot by pivoting each stance sole about its centre
    with the heading: 0.1 rad/s passes every check (a sole point may move 5 mm in a stance) and is
    what the shipped library holds; 0.25 rad/s pivots 2.5 times as far and is refused, saying why."""
    from wildrobot.motions.features import BUILTIN_DATASET
    from wildrobot.motions.generator import GaitSettings
    from wildrobot.motions.library import generate_one

    turn = generate_one((0.0, 0.0, 0.1), GaitSettings(), tmp_path)
    assert turn.file == "walk_vx+0.00_vy+0.00_yaw+0.10.npz", turn.why
    clip = read_clip(tmp_path / turn.file)
    report = check_clip(clip, robot)
    assert report.passed and abs(report.descriptors["turning_rate"] - 0.1) < 0.02
    assert abs(report.descriptors["speed_vx"]) < 0.02
    shipped = read_clip(BUILTIN_DATASET.parent / turn.file)
    for field in ("joint_pos", "root_pos", "root_quat", "foot_contact", "command"):
        np.testing.assert_allclose(getattr(shipped, field), getattr(clip, field), atol=1e-6, err_msg=field)
    fast = generate_one((0.0, 0.0, 0.25), GaitSettings(), tmp_path)
    assert fast.file is None and "stance feet do not slide" in fast.why and "pivoting each stance sole" in fast.why
    # even the shortest steps tried would pivot it too far: refused without planning them
    assert "with 0.25 s steps, the shortest of the quicker steps, its points would still move" in fast.why
    assert "(with 0.25 s steps:" not in fast.why and "(with 0.30 s steps:" not in fast.why


def _planned_step_times(monkeypatch) -> list:
    """Records the step time of every clip the generator plans from here on."""
    import wildrobot.motions.generator as generator

    planned, plan = [], generator.generate_clip

    def recording(desc, command, settings, **kw):
        planned.append((settings.step_time, settings.double_support))
        return plan(desc, command, settings, **kw)

    monkeypatch.setattr(generator, "generate_clip", recording)
    return planned


def test_a_turn_whose_soles_slide_is_tried_again_with_quicker_steps(robot, tmp_path, monkeypatch):
    """0.2 rad/s in place pivots each stance sole further than the slide check allows with 0.35 s
    steps. A sole pivots by the turning rate times its stance time, so its points move in proportion
    to the step time (the retry's premise, checked here): 0.30 s steps would not fit and are not
    planned, 0.25 s steps (4 steps/s) fit, and that clip passes every check."""
    from dataclasses import replace

    from wildrobot.motions.generator import GaitSettings, generate_clip
    from wildrobot.motions.library import generate_one

    plain = check_clip(generate_clip(DESC, (0.0, 0.0, 0.2), GaitSettings()), robot)
    assert _failed(plain) == {"stance feet do not slide"}
    planned = _planned_step_times(monkeypatch)
    turn = generate_one((0.0, 0.0, 0.2), GaitSettings(), tmp_path)
    assert planned == [(0.35, 0.1), (0.25, 0.1)]
    assert turn.file == "walk_vx+0.00_vy+0.00_yaw+0.20.npz", turn.why
    assert turn.step_time == 0.25 and not turn.faster and turn.variant == "with 0.25 s steps"
    clip = read_clip(tmp_path / turn.file)
    report = check_clip(clip, robot)
    assert report.passed, [(c.name, c.value) for c in report.failures]
    d = report.descriptors
    assert abs(d["turning_rate"] - 0.2) < 0.02 and abs(d["speed_vx"]) < 0.02
    assert d["cadence"] == pytest.approx(4.0, rel=0.02)
    assert d["stance_slide"] == pytest.approx(plain.descriptors["stance_slide"] * 0.25 / 0.35, rel=0.1)
    assert plain.descriptors["stance_slide"] * 0.30 / 0.35 > 0.005  # why 0.30 s was not tried
    np.testing.assert_array_equal(
        clip.joint_pos, generate_clip(DESC, (0.0, 0.0, 0.2), replace(GaitSettings(), step_time=0.25)).joint_pos)


def test_quicker_steps_as_a_faster_walk_and_what_they_fail(robot, tmp_path, monkeypatch):
    """At 0.2 m/s, +0.15 rad/s slides with 0.35 s steps; 0.30 s steps break the torque limit and pass
    as a faster walk. +0.2 rad/s needs 0.25 s steps, which keep the soles within the slide check but
    break the torque limit even as a faster walk: refused, saying so, not blaming the pivot."""
    from wildrobot.motions.generator import GaitSettings
    from wildrobot.motions.library import generate_one

    planned = _planned_step_times(monkeypatch)
    turn = generate_one((0.2, 0.0, 0.15), GaitSettings(), tmp_path)
    assert turn.file and turn.step_time == 0.30 and turn.faster, turn.why
    assert turn.variant.startswith("with 0.30 s steps, as a faster walk")
    assert planned == [(0.35, 0.1), (0.30, 0.1), (0.30, 0.05)]
    assert check_clip(read_clip(tmp_path / turn.file), robot).passed
    planned.clear()
    fast = generate_one((0.2, 0.0, 0.2), GaitSettings(), tmp_path)
    assert fast.file is None and planned == [(0.35, 0.1), (0.25, 0.1), (0.25, 0.05)]
    assert "(with 0.25 s steps: torques within the servo limit" in fast.why
    assert "quicker steps keep the stance soles within the slide check here" in fast.why
    assert "pivoting each stance sole" not in fast.why


@pytest.mark.parametrize("ramp", [0.05, 0.1, 0.25])
def test_the_ramped_swing_profile_has_the_peak_acceleration_it_claims(ramp):
    """0 -> 1 at rest at both ends, point-symmetric, peak acceleration 4 / (1 - 2 ramp) (a bang-bang
    profile's 4 when the ramps vanish; the quintic ease has 5.77)."""
    from wildrobot.motions.generator import _ramped, _smooth

    p = np.linspace(0.0, 1.0, 4001)
    x = _ramped(p, ramp)
    v, a = np.gradient(x, p), np.gradient(np.gradient(x, p), p)
    assert x[0] == 0.0 and x[-1] == pytest.approx(1.0)
    assert abs(v[0]) < 1e-3 and abs(v[-1]) < 1e-3
    np.testing.assert_allclose(x + x[::-1], 1.0, atol=1e-9)
    assert a[5:-5].max() == pytest.approx(4.0 / (1.0 - 2.0 * ramp), rel=1e-2)
    assert np.abs(np.gradient(np.gradient(_smooth(p), p), p)).max() == pytest.approx(10 / np.sqrt(3), rel=1e-2)


def test_a_walk_over_the_servos_torque_is_tried_again_as_a_faster_walk(robot, tmp_path):
    """0.3 m/s needs more than 4 N m at the swing hip with the default settings; the shorter double
    support and the ramped swing bring it under the limit on 95 % of frames, the clip passes every
    check and is the shipped one. 0.4 m/s fails both ways and is refused with both reasons."""
    from wildrobot.motions.features import BUILTIN_DATASET
    from wildrobot.motions.generator import GaitSettings, generate_clip
    from wildrobot.motions.library import faster_settings, generate_one

    plain = check_clip(generate_clip(DESC, (0.3, 0.0, 0.0), GaitSettings()), robot)
    assert "torques within the servo limit" in _failed(plain)
    walk = generate_one((0.3, 0.0, 0.0), GaitSettings(), tmp_path)
    assert walk.file == "walk_vx+0.30_vy+0.00_yaw+0.00.npz" and walk.faster, walk.why
    clip = read_clip(tmp_path / walk.file)
    assert check_clip(clip, robot).passed
    np.testing.assert_array_equal(clip.joint_pos, generate_clip(DESC, (0.3, 0.0, 0.0),
                                                                faster_settings(GaitSettings())).joint_pos)
    shipped = read_clip(BUILTIN_DATASET.parent / walk.file)
    for field in ("joint_pos", "root_pos", "root_quat", "foot_contact", "command"):
        np.testing.assert_allclose(getattr(shipped, field), getattr(clip, field), atol=1e-6, err_msg=field)
    fast = generate_one((0.4, 0.0, 0.0), GaitSettings(), tmp_path)
    assert fast.file is None and "as a faster walk" in fast.why
    assert fast.why.count("torques within the servo limit") == 2
    # a turn over the torque limit even as a faster walk is not tried with quicker steps, which need more
    turn = generate_one((0.4, 0.0, 0.2), GaitSettings(), tmp_path)
    assert turn.file is None and "shorter steps, which need more torque, not tried" in turn.why
    assert "s steps:" not in turn.why


def test_a_still_pose_passes_and_its_zmp_is_under_the_com(robot):
    from wildrobot.motions.checks import inverse_dynamics, kinematics

    clip = standing(robot=robot)
    assert check_clip(clip, robot).passed
    qpos, qvel = robot.states(clip)
    kin = kinematics(robot, qpos)
    dyn = inverse_dynamics(robot, qpos, qvel, clip.fps, np.ones((clip.num_frames, 2)), kin["points"], 0.8)
    import mujoco

    d = mujoco.MjData(robot.model)
    d.qpos[:] = qpos[0]
    mujoco.mj_forward(robot.model, d)
    np.testing.assert_allclose(dyn["zmp"][0], d.subtree_com[0][:2], atol=1e-6)  # statics: ZMP = CoM's shadow
    assert dyn["unsupplied"].max() < 1e-4  # the floor carries the weight


def _failed(report) -> set[str]:
    return {c.name for c in report.failures}


def test_a_foot_driven_through_the_floor_fails(walk, robot):
    sunk = walk.replace(root_pos=walk.root_pos - np.array([0.0, 0.0, 0.01]))
    assert "feet do not sink into the floor" in _failed(check_clip(sunk, robot))


def test_a_joint_over_its_range_fails(walk, robot):
    q = walk.joint_pos.copy()
    q[10:20, DESC.joint_index("left_hip_roll")] = 0.5  # adduction stops at 0.17 rad
    assert "joints within range" in _failed(check_clip(walk.replace(joint_pos=q, joint_vel=None), robot))


def test_torques_beyond_the_servos_fail(walk, robot):
    fast = walk.replace(fps=3 * walk.fps, joint_vel=3 * walk.joint_vel)  # the same walk three times as fast
    failed = _failed(check_clip(fast, robot))
    assert "torques within the servo limit" in failed and "joint speeds under the servo limit" in failed


def test_a_clip_that_misses_its_command_fails(walk, robot):
    assert "realises its command" in _failed(check_clip(walk.replace(command=np.array([0.4, 0.0, 0.0])), robot))


# -- features: one code path for policy states and reference frames --------------------------------
@pytest.mark.parametrize("backend", ["mujoco", "mjx"])
def test_features_of_a_reference_frame_equal_the_envs_for_the_same_state(backend, tmp_path):
    """A state of the env (random heading and joints), moving with a constant velocity, written as a
    three-frame clip (joints shuffled in the file): the loader's path gives the env's features."""
    import dataclasses

    from wildrobot.envs.wildrobot import WildRobotEnv
    from wildrobot.envs.wildrobot_config import ResetConfig, SimConfig, WildRobotEnvConfig
    from wildrobot.motions.features import reference_features
    from scipy.spatial.transform import Rotation

    cfg = dataclasses.replace(WildRobotEnvConfig(), sim=SimConfig(backend=backend),
                              reset=ResetConfig(joint_noise=0.1, random_heading=True))
    env = WildRobotEnv(cfg)
    state = jax.jit(env.reset)(jax.random.key(4))
    p = env.physics
    qpos = np.asarray(state.data.qpos, np.float64)
    rng = np.random.default_rng(1)
    linvel, angvel = rng.normal(0, 0.3, 3), rng.normal(0, 0.5, 3)  # world linear, body angular
    joint_vel = rng.normal(0, 0.5, env.action_size)
    dt = env.dt
    rot = Rotation.from_quat(qpos[p.root_qpos + 3:p.root_qpos + 7][[1, 2, 3, 0]])
    frames = []
    for k in (-1, 0, 1):
        r = rot * Rotation.from_rotvec(angvel * dt * k)
        frames.append((qpos[p.root_qpos:p.root_qpos + 3] + linvel * dt * k, r.as_quat()[[3, 0, 1, 2]],
                       qpos[p.qpos_idx] + joint_vel * dt * k))
    order = rng.permutation(env.action_size)
    clip = Clip(joint_names=tuple(np.array(DESC.joint_names)[order]), fps=1.0 / dt,
                root_pos=np.array([f[0] for f in frames]), root_quat=np.array([f[1] for f in frames]),
                joint_pos=np.array([f[2] for f in frames])[:, order], joint_vel=np.tile(joint_vel[order], (3, 1)))
    clip = load_clip(save_clip(tmp_path / "frame.npz", clip), DESC)
    qvel = np.zeros(p.mj_model.nv)
    qvel[p.root_dof:p.root_dof + 3], qvel[p.root_dof + 3:p.root_dof + 6], qvel[p.dof_idx] = linvel, angvel, joint_vel
    expected = np.asarray(jax.jit(env.features)(qpos.astype(np.float32), qvel.astype(np.float32)))
    np.testing.assert_allclose(reference_features(env, clip)[1], expected, atol=2e-5)
    assert np.abs(expected).max() > 0.1


# -- metrics ----------------------------------------------------------------------------------------
def _plain_dtw(a, b) -> float:
    """Textbook DTW: the cheapest monotone path's sum of squared frame differences, as a per-frame RMS
    (its square root over sqrt(len(a)))."""
    cost = [[float("inf")] * (len(b) + 1) for _ in range(len(a) + 1)]
    cost[0][0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d = sum((float(p) - float(q)) ** 2 for p, q in zip(a[i - 1], b[j - 1]))
            cost[i][j] = d + min(cost[i - 1][j], cost[i][j - 1], cost[i - 1][j - 1])
    return (cost[len(a)][len(b)] / len(a)) ** 0.5


def test_the_imitation_metrics_give_known_answers():
    t = np.arange(100) / 50.0
    a = np.stack([np.sin(2 * np.pi * t), 0.5 * np.cos(2 * np.pi * t)], -1)  # one cycle per 50 frames
    shifted = np.roll(a, 7, axis=0)
    rms, shift = aligned_rms(shifted, a[:50])
    assert shift == 50 - 7 and rms.max() < 1e-12
    scaled_rms, _ = aligned_rms(1.5 * a, a[:50])
    np.testing.assert_allclose(scaled_rms, 0.5 * np.sqrt(np.mean(a ** 2, axis=0)), rtol=1e-6)
    assert dtw_distance(a, a) == 0.0 and frechet_distance(a, a) == 0.0
    # by hand: a = 0, 1, 3 and b = 0, 2 (one joint, plus one that stays 0). Squared frame distances
    # d[i][j] = [[0, 4], [1, 1], [9, 1]]; the cheapest monotone path (0,0) (1,0) (2,1) or (0,0) (1,1)
    # (2,1) sums to 2: sqrt(2) over sqrt(len(a)) = sqrt(3); the other way round over sqrt(2)
    a3, b2 = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]]), np.array([[0.0, 0.0], [2.0, 0.0]])
    assert dtw_distance(a3, b2) == pytest.approx(np.sqrt(2.0 / 3.0), rel=1e-12)
    assert dtw_distance(b2, a3) == pytest.approx(1.0, rel=1e-12)
    rng = np.random.default_rng(0)
    for t, s in ((4, 6), (7, 3), (5, 5)):
        x, y = rng.normal(size=(t, 3)), rng.normal(size=(s, 3))
        assert dtw_distance(x, y) == pytest.approx(_plain_dtw(x, y), rel=1e-9)
    assert frechet_distance(a, a + np.array([0.3, 0.4])) == pytest.approx(0.5)
    # warping absorbs a time shift that a frame-by-frame comparison does not
    late = np.concatenate([a[:1].repeat(5, 0), a[:-5]])
    assert dtw_distance(late, a) < 0.2 * np.sqrt(np.mean(np.sum((late - a) ** 2, -1)))


# -- JSON import and the command line ---------------------------------------------------------------
def _community_json(clip: Clip, path, open_duck: bool) -> list[str]:
    """The clip as an AMP_for_hardware (no joint names) or Open Duck (names, offsets, FPS) JSON file,
    quaternions x, y, z, w as their tools write them; joints in a shuffled order."""
    order = np.random.default_rng(3).permutation(len(clip.joint_names))
    names = list(np.array(clip.joint_names)[order])
    quat = clip.root_quat[:, [1, 2, 3, 0]]
    frames = np.hstack([clip.root_pos, quat, clip.joint_pos[:, order], clip.joint_vel[:, order],
                        clip.foot_contact]).tolist()
    spec = {"LoopMode": "Wrap", "FrameDuration": 1.0 / clip.fps, "Frames": frames}
    if open_duck:
        j = len(names)
        spec.update(FPS=clip.fps, Joints=names, Vel_x=float(clip.command[0]), Vel_y=float(clip.command[1]),
                    Yaw=float(clip.command[2]), Frame_offset=[{"root_pos": 0, "root_quat": 3, "joints_pos": 7,
                                                               "joints_vel": 7 + j, "foot_contacts": 7 + 2 * j}])
    path.write_text(json.dumps(spec))
    return names


@pytest.mark.parametrize("flavour", ["amp_for_hardware", "open_duck"])
def test_a_community_json_clip_converts_to_the_same_motion(walk, tmp_path, flavour):
    src = tmp_path / "clip.json"
    names = _community_json(walk, src, open_duck=flavour == "open_duck")
    args = [sys.executable, "-m", "wildrobot.motions", "convert", str(src), "--quat-order", "xyzw",
            "--out", str(tmp_path / "out.npz")]
    if flavour == "amp_for_hardware":
        args += ["--joints", ",".join(names)]
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    back = load_clip(tmp_path / "out.npz", DESC)
    np.testing.assert_allclose(back.joint_pos, walk.joint_pos, atol=1e-12)
    np.testing.assert_allclose(back.root_quat, walk.root_quat, atol=1e-12)
    assert back.loop and back.fps == pytest.approx(walk.fps)
    assert "Note:" not in res.stdout
    before = (tmp_path / "out.npz").read_bytes()
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "exists: pass --force" in again.stderr
    wrong_args = args[:6] + ["wxyz"] + args[7:] + ["--force"]
    wrong = subprocess.run(wrong_args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if flavour == "open_duck":  # it names the command: a wrong order shows as walking backwards
        np.testing.assert_array_equal(back.foot_contact, walk.foot_contact)
        assert wrong.returncode == 2 and "set quat_order to 'xyzw'" in wrong.stderr
        assert (tmp_path / "out.npz").read_bytes() == before  # the refused clip replaced nothing
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nor left a trial file
    else:  # no command to hold it against: it converts, with a note that the order looks misread
        assert wrong.returncode == 0, wrong.stdout + wrong.stderr
        assert "read in the other order it walks forwards" in wrong.stdout and "--quat-order xyzw --force" in wrong.stdout


def test_check_and_show_from_the_command_line(library, walk, tmp_path):
    env = dict(os.environ)
    res = subprocess.run([sys.executable, "-m", "wildrobot.motions", "check", str(library)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ZMP inside the support polygon" in res.stdout and "gait: cadence 2.86 steps/s" in res.stdout
    assert f"root height {walk.root_pos[:, 2].mean():.3f} m" in res.stdout
    broken = save_clip(tmp_path / "broken.npz", walk.replace(root_pos=walk.root_pos - [0, 0, 0.01]))
    res = subprocess.run([sys.executable, "-m", "wildrobot.motions", "check", str(broken)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 1 and "FAIL feet do not sink into the floor" in res.stdout
    res = subprocess.run([sys.executable, "-m", "wildrobot.motions", "show", str(library / f"{walk.name}.npz"),
                          "--video", "none", "--png", str(tmp_path / "walk.png")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "walk.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = subprocess.run([sys.executable, "-m", "wildrobot.motions", "check", str(tmp_path / "none.npz")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 2 and "no such clip" in res.stderr and "Traceback" not in res.stderr


def test_the_clip_video_renders(walk, robot, tmp_path):
    from wildrobot.motions.show import render_clip

    skip_without_rendering()
    written = render_clip(walk.replace(joint_pos=walk.joint_pos[:10], root_pos=walk.root_pos[:10],
                                       root_quat=walk.root_quat[:10], joint_vel=None, foot_contact=None),
                          robot, tmp_path / "walk.mp4", loops=1, width=96, height=64)
    assert written.stat().st_size > 1000
    import imageio.v2 as imageio

    frames = imageio.mimread(written)
    assert len(frames) == 10
    frame = np.asarray(frames[0])[..., :3].astype(float)
    assert frame.shape == (64, 96, 3)
    assert frame.std() > 10  # not one flat colour
    # the scene (a blue-grey floor and sky) is in colour; a black or grey frame under the grey overlay text is not
    assert np.mean(frame.max(-1) - frame.min(-1)) > 5


def test_eval_compares_a_policys_gait_with_the_reference(wildrobot_run, library, capsys):
    from wildrobot.eval import main

    code = main([str(wildrobot_run), "--steps", "80", "--commands", "0.2,0,0;0.4,0,0", "--video", "none",
                 "--json", "none", "--reference", str(library)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Gait vs reference" in out and "walk_vx+0.20_vy+0.00_yaw+0.00" in out
    assert out.count("walk_vx+0.20") == 1  # 0.4 m/s has no reference within 0.05: not listed
    # a shipped dataset by its path under wildrobot/motions/data, with its turning clips
    code = main([str(wildrobot_run), "--steps", "80", "--commands", "0,0,0.1", "--video", "none", "--json", "none",
                 "--reference", "walk/manifest.yaml"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "walk_vx+0.00_vy+0.00_yaw+0.10" in out


def test_generate_help_states_the_generators_own_defaults():
    """`generate` leaves unset options to GaitSettings; the help it prints must name those values."""
    import dataclasses

    from wildrobot.motions.__main__ import make_parser
    from wildrobot.motions.generator import GaitSettings

    generate = next(a for a in make_parser()._subparsers._group_actions[0].choices.values()
                    if any(o.dest == "step_time" for o in a._actions))
    defaults = dataclasses.asdict(GaitSettings())
    for action in generate._actions:
        if action.dest in defaults:
            assert action.default is None
            assert f"(default {defaults[action.dest]})" in action.help, action.dest
