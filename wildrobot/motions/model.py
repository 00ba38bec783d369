"""The robot's MuJoCo model as the motion tools see it: index tables from the robot description,
and a clip's frames as MuJoCo states (qpos, qvel)."""

from __future__ import annotations

import functools

import mujoco
import numpy as np

from wildrobot.motions.clip import Clip
from wildrobot.robot.description import RobotDescription


class RobotModel:
    """The description's MJCF (plain MuJoCo, float64) with the indices the motion tools need."""

    def __init__(self, desc: RobotDescription):
        self.desc = desc
        m = self.model = mujoco.MjModel.from_xml_path(desc.mjcf_path)
        self.data = mujoco.MjData(m)

        def ident(kind: mujoco.mjtObj, name: str) -> int:
            i = mujoco.mj_name2id(m, kind, name)
            if i < 0:
                raise ValueError(f"the MJCF {desc.mjcf_path} has no {kind.name[6:].lower()} named '{name}'")
            return i

        joints = [ident(mujoco.mjtObj.mjOBJ_JOINT, n) for n in desc.joint_names]
        self.qpos_idx = np.array([m.jnt_qposadr[j] for j in joints])
        self.dof_idx = np.array([m.jnt_dofadr[j] for j in joints])
        self.root_body = ident(mujoco.mjtObj.mjOBJ_BODY, desc.root_body)
        root_joint = m.body_jntadr[self.root_body]
        self.root_qpos = int(m.jnt_qposadr[root_joint])
        self.root_dof = int(m.jnt_dofadr[root_joint])
        self.foot_sites = np.array([ident(mujoco.mjtObj.mjOBJ_SITE, s) for s in desc.foot_sites])
        self.foot_bodies = np.array([ident(mujoco.mjtObj.mjOBJ_BODY, b) for b in desc.foot_bodies])
        self.sole_geoms = [[ident(mujoco.mjtObj.mjOBJ_GEOM, g) for g in gs] for gs in desc.foot_geoms]
        self.home_key = ident(mujoco.mjtObj.mjOBJ_KEY, desc.home_keyframe)
        self.home_qpos = m.key_qpos[self.home_key].copy()
        self.joint_range = np.asarray(desc.joint_range)
        # servo torque limit per joint (the actuators' force range)
        act = [ident(mujoco.mjtObj.mjOBJ_ACTUATOR, n) for n in desc.joint_names]
        self.torque_limit = np.where(m.actuator_forcelimited[act], np.abs(m.actuator_forcerange[act]).max(axis=1), np.inf)

    def qpos(self, clip: Clip) -> np.ndarray:
        """(T, nq): the clip's root pose and joints (in the description's order) as MuJoCo qpos."""
        q = np.tile(self.home_qpos, (clip.num_frames, 1))
        r = self.root_qpos
        q[:, r:r + 3] = clip.root_pos
        q[:, r + 3:r + 7] = clip.root_quat / np.linalg.norm(clip.root_quat, axis=-1, keepdims=True)
        q[:, self.qpos_idx] = clip.joint_pos
        return q

    def states(self, clip: Clip) -> tuple[np.ndarray, np.ndarray]:
        """(qpos (T, nq), qvel (T, nv)) of every frame of the clip."""
        qpos = self.qpos(clip)
        return qpos, self.qvel(clip, qpos)

    def qvel(self, clip: Clip, qpos: np.ndarray) -> np.ndarray:
        """(T, nv): velocities by central differences of the poses (one-sided at the ends; MuJoCo's
        ``mj_differentiatePos``: world linear, body-frame angular velocity of the root), with the
        clip's joint velocities where it has them."""
        m, dt = self.model, 1.0 / clip.fps
        out = np.zeros((len(qpos), m.nv))
        for t in range(len(qpos)):
            a, b = max(t - 1, 0), min(t + 1, len(qpos) - 1)
            mujoco.mj_differentiatePos(m, out[t], (b - a) * dt, qpos[a], qpos[b])
        if clip.joint_vel is not None:
            out[:, self.dof_idx] = clip.joint_vel
        return out

    def sole_points(self, data: mujoco.MjData) -> np.ndarray:
        """(feet, points, 3): the lowest point of each sole contact geom (a sphere's bottom)."""
        out = []
        for geoms in self.sole_geoms:
            pts = [data.geom_xpos[g] - np.array([0.0, 0.0, self.model.geom_size[g, 0]]) for g in geoms]
            out.append(pts)
        return np.array(out)

    @functools.cached_property
    def home_sole_height(self) -> float:
        """How far the soles' lowest points sit below z = 0 at the home keyframe (they rest on it)."""
        d = mujoco.MjData(self.model)
        d.qpos[:] = self.home_qpos
        mujoco.mj_kinematics(self.model, d)
        return float(self.sole_points(d)[..., 2].min())
