"""The MJCF and the robot description agree, and the model's speed settings keep its physics."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from wildrobot.envs.wildrobot_config import WildRobotEnvConfig
from wildrobot.envs.frames import quat_to_mat, wxyz_to_xyzw, xyzw_to_wxyz, yaw_from_quat, yaw_quat
from wildrobot.envs.physics import MjxPhysics, scaled_servo_setpoint
from wildrobot.robot import fidelity, load_robot_description


@pytest.fixture(scope="module")
def desc():
    return load_robot_description()


@pytest.fixture(scope="module")
def model(desc):
    return mujoco.MjModel.from_xml_path(desc.mjcf_path)


def test_model_matches_description(model, desc):
    n = desc.num_joints
    assert n == 11 and model.nu == n and model.nq == 7 + n and model.nv == 6 + n
    for k, name in enumerate(desc.joint_names):
        assert model.actuator(k).name == name
        j = model.joint(name)
        assert model.actuator_trnid[k, 0] == j.id
        np.testing.assert_allclose(model.jnt_range[j.id], desc.joint_range[k], atol=1e-4)
        np.testing.assert_allclose(model.actuator_ctrlrange[k], desc.joint_range[k], atol=1e-4)
    # the real servos' numbers (docs/environment.md, "Robot model and description")
    np.testing.assert_allclose(model.actuator_gainprm[:, 0], 21.1)
    np.testing.assert_allclose(model.actuator_biasprm[:, 1:3], [[-21.1, -0.5]] * n)
    np.testing.assert_allclose(model.actuator_forcerange, [[-4.0, 4.0]] * n)
    act_dofs = [model.joint(j).dofadr[0] for j in desc.joint_names]
    np.testing.assert_allclose(model.dof_damping[act_dofs], 0.085)
    np.testing.assert_allclose(model.dof_armature[act_dofs], 0.025)
    np.testing.assert_allclose(model.dof_frictionloss[act_dofs], 0.022)
    total = model.body_subtreemass[0]
    assert abs(total - 3.3) / 3.3 < 0.05, total
    # hardware ranges in degrees, as in the hardware table
    deg = {name: np.degrees(r) for name, r in zip(desc.joint_names, desc.joint_range)}
    np.testing.assert_allclose(deg["left_hip_pitch"], [-30, 90], atol=1e-6)
    np.testing.assert_allclose(deg["right_hip_pitch"], [-90, 30], atol=1e-6)
    np.testing.assert_allclose(deg["left_hip_roll"], [-90, 10], atol=1e-6)
    np.testing.assert_allclose(deg["right_hip_roll"], [-10, 90], atol=1e-6)
    signs = dict(zip(desc.joint_names, desc.hardware_signs))
    assert [k for k, s in signs.items() if s == -1] == ["right_hip_pitch", "right_hip_roll"]
    assert model.site(desc.imu_site).bodyid[0] == model.body(desc.torso_body).id


def test_home_keyframe_is_the_description_home_with_flat_feet_on_the_floor(model, desc):
    d = fidelity.home_data(model, desc)
    q = [d.qpos[model.joint(j).qposadr[0]] for j in desc.joint_names]
    np.testing.assert_allclose(q, desc.home, atol=1e-6)
    np.testing.assert_allclose(d.qpos[3:7], [1, 0, 0, 0])  # (w, x, y, z): upright
    bottoms = [d.geom_xpos[model.geom(g).id][2] - model.geom(g).size[0] for gs in desc.foot_geoms for g in gs]
    assert max(abs(b) for b in bottoms) < 1e-3, bottoms
    # waist ≈ 0.46 m in the walk-ready pose
    assert 0.44 < d.qpos[2] < 0.47


def test_only_sole_floor_pairs_can_collide(model, desc):
    soles = {model.geom(g).id for gs in desc.foot_geoms for g in gs}
    pairs = set()
    for i in range(model.ngeom):
        for j in range(i + 1, model.ngeom):
            if model.geom_bodyid[i] == model.geom_bodyid[j]:
                continue
            ok = (model.geom_contype[i] & model.geom_conaffinity[j]) or (
                model.geom_contype[j] & model.geom_conaffinity[i]
            )
            if ok:
                pairs.add((i, j))
    floor = model.geom("floor").id
    assert pairs == {tuple(sorted((floor, s))) for s in soles}


def test_mirror_map_and_hardware_signs_match_the_joint_axes(model, desc):
    d = mujoco.MjData(model)
    mujoco.mj_kinematics(model, d)
    reflect = np.diag([1.0, -1.0, 1.0])

    def mirrored_axis(name):  # a rotation axis is an axial vector: it flips with the reflection
        return -reflect @ d.xaxis[model.joint(name).id]

    for left, right, sign in desc.mirror_pairs:
        np.testing.assert_allclose(mirrored_axis(left), sign * d.xaxis[model.joint(right).id], atol=1e-9)
        i, j = desc.joint_index(left), desc.joint_index(right)
        assert sign == desc.hardware_signs[i] * desc.hardware_signs[j]
    for joint, sign in desc.mirror_centre:
        np.testing.assert_allclose(mirrored_axis(joint), sign * d.xaxis[model.joint(joint).id], atol=1e-9)
    # the mirror of the (symmetric) home pose is itself
    np.testing.assert_allclose(desc.mirror_joints(np.array(desc.home)), desc.home, atol=1e-9)
    # flexion moves the foot forward: +q on the left hip, -q on the right
    for name, q in (("left_hip_pitch", 0.3), ("right_hip_pitch", -0.3)):
        d2 = mujoco.MjData(model)
        d2.qpos[model.joint(name).qposadr[0]] = q
        mujoco.mj_kinematics(model, d2)
        foot = model.body(name.replace("hip_pitch", "foot")).id
        assert d2.xpos[foot][0] > d.xpos[foot][0] + 0.05
    # abduction moves the foot outward: -q on the left hip_roll, +q on the right
    for name, q, side in (("left_hip_roll", -0.3, 1.0), ("right_hip_roll", 0.3, -1.0)):
        d2 = mujoco.MjData(model)
        d2.qpos[model.joint(name).qposadr[0]] = q
        mujoco.mj_kinematics(model, d2)
        foot = model.body(name.replace("hip_roll", "foot")).id
        assert side * (d2.xpos[foot][1] - d.xpos[foot][1]) > 0.05


def test_quaternions_are_w_first_everywhere():
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, q)  # MuJoCo: (w, x, y, z)
        np.testing.assert_allclose(np.asarray(quat_to_mat(jnp.asarray(q))), mat.reshape(3, 3), atol=1e-5)
        np.testing.assert_allclose(xyzw_to_wxyz(wxyz_to_xyzw(q)), q)
    np.testing.assert_allclose(xyzw_to_wxyz(np.array([0.0, 0.0, 0.0, 1.0])), [1.0, 0.0, 0.0, 0.0])
    yq = np.asarray(yaw_quat(jnp.float32(0.7)))
    assert yq[0] == pytest.approx(math.cos(0.35), abs=1e-6)  # w first
    assert float(yaw_from_quat(jnp.asarray(yq))) == pytest.approx(0.7, abs=1e-5)
    np.testing.assert_allclose(np.asarray(quat_to_mat(jnp.asarray(yq))) @ [1, 0, 0], [math.cos(0.7), math.sin(0.7), 0], atol=1e-6)


@pytest.mark.parametrize("friction", [None, 0.4])
def test_tuned_settings_stand_like_a_fine_reference(model, desc, friction):
    """The MJCF's speed settings vs 1 ms steps and 50 solver iterations, at nominal and lowest DR friction."""
    q_fast, j_fast, wobble_fast = fidelity.stand(fidelity.with_options(model, friction), desc)
    q_ref, j_ref, wobble_ref = fidelity.stand(fidelity.with_options(model, friction, **fidelity.FINE_REFERENCE), desc)
    assert abs(q_fast[2] - q_ref[2]) < 2e-3  # same standing height (m)
    np.testing.assert_allclose(j_fast, j_ref, atol=0.02)  # same posture (rad)
    np.testing.assert_allclose(q_fast[:2], q_ref[:2], atol=5e-3)  # no drift
    assert wobble_fast < 2e-4 and wobble_ref < 2e-4  # at rest, no chatter (m)


@pytest.mark.parametrize("friction", [1.0, 0.4])
def test_tuned_settings_step_like_a_fine_reference(model, desc, friction):
    """Feet lifting and landing (impacts, slip on the low-friction floor): tuned vs 1 ms, 50/50 iterations."""
    root_error, joint_error = fidelity.stepping_error(model, desc, friction)
    assert root_error < 5e-3  # root path within 5 mm
    assert joint_error < 0.03  # joint angles within 0.03 rad


@pytest.mark.parametrize("scale", [0.7, 1.2])
def test_kp_scaled_through_the_setpoint_equals_a_model_with_scaled_kp(model, desc, scale):
    """The env randomises kp by moving the servo setpoint; the plain-C model with kp scaled must agree."""
    scaled = mujoco.MjModel.from_xml_path(desc.mjcf_path)
    scaled.actuator_gainprm[:, 0] *= scale
    scaled.actuator_biasprm[:, 1] *= scale
    qpos_idx = np.array([model.jnt_qposadr[model.actuator_trnid[k, 0]] for k in range(model.nu)])
    key = model.key(desc.home_keyframe).id
    target = np.asarray(desc.home) + 0.1 * np.sin(np.arange(model.nu))  # inside every range
    assert np.all((target > model.actuator_ctrlrange[:, 0]) & (target < model.actuator_ctrlrange[:, 1]))
    reference, through_setpoint = mujoco.MjData(scaled), mujoco.MjData(model)
    for m, d in ((scaled, reference), (model, through_setpoint)):
        mujoco.mj_resetDataKeyframe(m, d, key)
    reference.ctrl[:] = target
    for _ in range(200):  # 1 s
        mujoco.mj_step(scaled, reference)
        through_setpoint.ctrl[:] = scaled_servo_setpoint(target, through_setpoint.qpos[qpos_idx], scale)
        mujoco.mj_step(model, through_setpoint)
    moved = np.abs(reference.qpos[qpos_idx] - model.key_qpos[key][qpos_idx]).max()
    assert moved > 0.05  # the servos did work
    np.testing.assert_allclose(through_setpoint.qpos, reference.qpos, atol=1e-6)


def test_plain_mujoco_and_mjx_agree_on_an_open_loop_rollout(model, desc):
    phys = MjxPhysics(desc)
    m = phys.mj_model
    home = np.array(desc.home)
    substeps = WildRobotEnvConfig().sim.substeps
    t = np.arange(25) * 0.02
    # an open-loop squat-and-sway around home: 0.5 s, 25 control steps
    ctrl = home[None] + 0.15 * np.sin(2 * np.pi * 2.0 * t)[:, None] * np.array(desc.action_scale)[None]
    d = fidelity.home_data(m, desc)
    for c in ctrl:
        d.ctrl[:] = c
        mujoco.mj_step(m, d, nstep=substeps)

    @jax.jit
    def rollout(data, ctrls):
        return jax.lax.scan(lambda dd, c: (phys.step(phys.model, dd, c, substeps), None), data, ctrls)[0]

    dx = rollout(phys.home_data, jnp.asarray(ctrl, jnp.float32))
    np.testing.assert_allclose(np.asarray(dx.qpos[:3]), d.qpos[:3], atol=3e-3)
    np.testing.assert_allclose(np.asarray(phys.joint_pos(dx)), d.qpos[phys.qpos_idx], atol=0.02)
    # per-foot normal force (sum over all pyramid rows) vs MuJoCo C's contact forces
    f6 = np.zeros(6)
    per_foot = np.zeros(2)
    for i in range(d.ncon):
        mujoco.mj_contactForce(m, d, i, f6)
        geoms = {d.contact[i].geom1, d.contact[i].geom2}
        for k, gs in enumerate(phys.foot_geoms):
            if geoms & set(gs):
                per_foot[k] += f6[0]
    # both feet carry load (about 7 N and 22 N here); the two engines agree to ~0.01 N, so this
    # tolerance (0.25 N and 0.55 N) has a 20x margin and still fails a 5 % error in either force
    assert per_foot.min() > 3.0, per_foot
    np.testing.assert_allclose(np.asarray(phys.foot_contact_forces(dx)), per_foot, rtol=0.02, atol=0.1)


@pytest.mark.parametrize("hip_pitch,hip_roll", [(0.3, -0.3), (0.6, 0.17), (1.0, -0.6)])
def test_flat_sole_yaw_relative_to_the_pelvis_is_atan_tan_roll_sin_pitch(model, hip_pitch, hip_roll):
    """No hip yaw: a level sole's heading comes from hip pitch and roll together (docs/environment.md)."""
    d = mujoco.MjData(model)
    adr = {n: model.jnt_qposadr[model.joint(n).id] for n in
           ("left_hip_pitch", "left_hip_roll", "left_knee_pitch", "left_ankle_pitch", "left_ankle_roll")}
    pelvis, foot = model.body("waist").id, model.body("left_foot").id

    def sole(ankle_pitch, ankle_roll):
        d.qpos[:] = model.qpos0
        for name, v in (("left_hip_pitch", hip_pitch), ("left_hip_roll", hip_roll), ("left_knee_pitch", 0.6),
                        ("left_ankle_pitch", ankle_pitch), ("left_ankle_roll", ankle_roll)):
            d.qpos[adr[name]] = v
        mujoco.mj_kinematics(model, d)
        r = d.xmat[pelvis].reshape(3, 3).T @ d.xmat[foot].reshape(3, 3)
        return math.acos(min(1.0, r[2, 2])), math.atan2(r[1, 0], r[0, 0])  # tilt, yaw vs the pelvis

    # level the sole with the ankle (coarse-to-fine grid search over ankle pitch and roll)
    centre, width = (0.0, 0.0), 0.8
    for _ in range(4):
        grid = [(centre[0] + i, centre[1] + j) for i in np.linspace(-width, width, 33) for j in np.linspace(-width, width, 33)]
        centre = min(grid, key=lambda q: sole(*q)[0])
        width /= 8
    tilt, yaw = sole(*centre)
    assert tilt < 2e-3
    assert abs(yaw) == pytest.approx(math.atan(abs(math.tan(hip_roll)) * math.sin(hip_pitch)), abs=3e-3)


def test_the_envs_sole_height_is_the_lowest_sole_point_the_gait_metrics_read(model, desc):
    """``Physics.sole_height`` (feet_phase_point=lowest) against the motion tools' sole points, on
    poses where the feet pitch and roll: the same clearance, and below the sole's centre when tilted."""
    from wildrobot.envs.physics import MujocoPhysics
    from wildrobot.motions.model import RobotModel

    phys, robot = MujocoPhysics(desc), RobotModel(desc)
    rng = np.random.default_rng(0)
    d = mujoco.MjData(model)
    for _ in range(5):
        d.qpos[:] = phys.home_qpos
        d.qpos[2] += 0.05
        d.qpos[phys.qpos_idx] += rng.uniform(-0.4, 0.4, desc.num_joints)
        mujoco.mj_kinematics(model, d)
        view = phys.view(MujocoPhysics.arrays_of(d))
        lowest = robot.sole_points(d)[..., 2].min(axis=-1)
        centre = d.site_xpos[phys.foot_sites][:, 2]
        got = np.asarray(phys.sole_height(view))
        np.testing.assert_allclose(got, lowest, atol=1e-5)
        assert np.all(got < centre - 1e-3)  # a tilted sole's lowest sphere sits below its centre
