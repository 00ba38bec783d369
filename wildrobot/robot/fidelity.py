"""Does a set of solver settings keep the robot's physics? Plain-MuJoCo motions to compare with a
fine reference (1 ms steps, 50 solver and line-search iterations).

Used by tests/test_robot_model.py (the shipped settings must stay within tolerances) and by
bench/physics_settings.py (speed and fidelity of several settings side by side). Plain MuJoCo C,
not MJX: the settings mean the same in both, and C runs these short motions in well under a second.
"""

from __future__ import annotations

import copy

import mujoco
import numpy as np

from wildrobot.robot.description import RobotDescription

CONTROL_DT = 0.02  # s, the robot's 50 Hz control period
FINE_REFERENCE = {"timestep": 0.001, "iterations": 50, "ls_iterations": 50}


def with_options(model: mujoco.MjModel, friction: float | None = None, **opt) -> mujoco.MjModel:
    """A copy of ``model`` with ``model.opt`` fields replaced and, optionally, every geom's sliding friction."""
    m = copy.deepcopy(model)
    for k, v in opt.items():
        setattr(m.opt, k, v)
    if friction is not None:
        m.geom_friction[:, 0] = friction
    return m


def home_data(model: mujoco.MjModel, desc: RobotDescription) -> mujoco.MjData:
    d = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, d, model.key(desc.home_keyframe).id)
    mujoco.mj_forward(model, d)
    return d


def substeps(model: mujoco.MjModel) -> int:
    """Physics steps per 20 ms control step at this model's timestep."""
    return int(round(CONTROL_DT / model.opt.timestep))


def stand(model: mujoco.MjModel, desc: RobotDescription, seconds: float = 2.0):
    """Hold ``home`` for ``seconds``: (final qpos, final joint angles, std of the root height over the second half)."""
    d = home_data(model, desc)
    n = int(round(seconds / model.opt.timestep))
    heights = []
    for _ in range(n):
        mujoco.mj_step(model, d)
        heights.append(d.qpos[2])
    joints = np.array([d.qpos[model.joint(j).qposadr[0]] for j in desc.joint_names])
    return d.qpos.copy(), joints, float(np.std(heights[n // 2 :]))


def stepping_motion(model: mujoco.MjModel, desc: RobotDescription, seconds: float = 0.6) -> np.ndarray:
    """An open-loop alternating stepping motion around ``home`` (feet lift, land and slip, the
    waist swings): (control steps, 3 + joints) array of the root position and joint angles."""
    names, home = list(desc.joint_names), np.array(desc.home)
    lo, hi = np.array(desc.joint_range).T
    d = home_data(model, desc)
    out = []
    for k in range(int(round(seconds / CONTROL_DT))):
        phase = 2 * np.pi * 1.5 * k * CONTROL_DT
        a = np.zeros(len(names))
        for side, sign, offset in (("left", 1, 0.0), ("right", -1, np.pi)):
            lift = max(np.sin(phase + offset), 0.0)  # one foot swings while the other stands
            a[names.index(f"{side}_hip_pitch")] = sign * 0.25 * lift
            a[names.index(f"{side}_knee_pitch")] = 0.5 * lift
            a[names.index(f"{side}_ankle_pitch")] = -0.2 * lift
            a[names.index(f"{side}_hip_roll")] = 0.15 * np.sin(phase)
        a[names.index("waist_yaw")] = 0.25 * np.sin(phase)
        d.ctrl[:] = np.clip(home + a, lo, hi)
        mujoco.mj_step(model, d, nstep=substeps(model))
        out.append(np.r_[d.qpos[:3], [d.qpos[model.joint(j).qposadr[0]] for j in names]])
    return np.array(out)


def stepping_error(model: mujoco.MjModel, desc: RobotDescription, friction: float) -> tuple[float, float]:
    """(max root position error in m, max joint angle error in rad) of ``stepping_motion`` against
    the fine reference, both on a floor of the given friction."""
    fast = stepping_motion(with_options(model, friction), desc)
    ref = stepping_motion(with_options(model, friction, **FINE_REFERENCE), desc)
    return float(np.abs(fast[:, :3] - ref[:, :3]).max()), float(np.abs(fast[:, 3:] - ref[:, 3:]).max())
