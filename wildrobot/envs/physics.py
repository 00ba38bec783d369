"""The narrow seam between the env and the physics engine (MJX here).

The env only ever: builds a per-episode model, sets controls and steps ``substeps`` times, and
reads the quantities below (joint positions/velocities, base pose and velocity, IMU readings,
foot positions/velocities and per-foot contact forces). Another backend (e.g. MuJoCo C through
``mujoco.rollout`` called from the jitted loop) can replace this class without touching rewards,
observations or trainers.

Conventions: quaternions are MuJoCo's (w, x, y, z); world frame x forward, y left, z up.
Quantities read from ``data.xmat``/``cvel``/``efc_force`` are those MuJoCo computed in the last
substep's forward pass, i.e. one physics step (5 ms) older than ``qpos``/``qvel``: the same
staleness MuJoCo's own sensors have.
"""

from __future__ import annotations

import contextlib
import io
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

# On import MJX prints that its optional Warp backend is missing (two lines on every run); that
# backend is not used here. The env modules reach MJX only through this seam.
with contextlib.redirect_stdout(io.StringIO()):
    from mujoco import mjx

from wildrobot.robot.description import RobotDescription


# jaxlib's batched CPU Cholesky (used by every MJX solver) can deadlock its 2-thread pool on batches
# of >= 256; batches of 64 never did. On the CPU backend a vmapped physics step therefore runs as a
# loop over chunks of CPU_CHUNK envs, while the rest of the env (observations, rewards, resets) is
# vmapped over the whole batch at once (in chunks, its many small ops pay their overhead per chunk).
CPU_CHUNK = 64


def default_chunk() -> Optional[int]:
    return CPU_CHUNK if jax.default_backend() == "cpu" else None


def vmap_in_chunks(fn: Callable, chunk: Optional[int] = None) -> Callable:
    """``fn`` unchanged, except that under ``jax.vmap`` it runs as a ``lax.map`` over vmapped
    chunks of ``chunk`` (default: ``default_chunk()``, i.e. chunks on CPU, the whole batch on GPU).

    Arguments may mix batched and unbatched leaves (a model shared by all envs, or one with
    per-env randomised fields); unbatched leaves stay shared, outputs come back batched.
    """
    traced = jax.jit(fn)  # traced once per signature: custom_vmap's call and the rule share it

    @jax.custom_batching.custom_vmap
    def mapped(*args):
        return traced(*args)

    @mapped.def_vmap
    def rule(axis_size, in_batched, *args):
        leaves, tree = jax.tree.flatten(args)
        batched = [i for i, b in enumerate(jax.tree.leaves(in_batched)) if b]
        size = default_chunk() if chunk is None else chunk

        def call(*batched_leaves):
            ls = list(leaves)
            for i, x in zip(batched, batched_leaves):
                ls[i] = x
            return traced(*jax.tree.unflatten(tree, ls))

        xs = [leaves[i] for i in batched]
        if not size or axis_size <= size:
            out = jax.vmap(call)(*xs)
        else:
            c = max(c for c in range(1, size + 1) if axis_size % c == 0)  # equal chunks, no remainder
            # explicit shapes (not lax.map's batch_size): mjx.Data has zero-size leaves
            split = [x.reshape(axis_size // c, c, *x.shape[1:]) for x in xs]
            out = jax.lax.map(lambda xs_: jax.vmap(call)(*xs_), split)
            out = jax.tree.map(lambda x: x.reshape(axis_size, *x.shape[2:]), out)
        return out, jax.tree.map(lambda _: True, out)

    return mapped


def _id(m: mujoco.MjModel, obj: mujoco.mjtObj, name: str) -> int:
    i = mujoco.mj_name2id(m, obj, name)
    if i < 0:
        raise ValueError(f"the MJCF has no {obj.name[6:].lower()} named '{name}'")
    return i


class MjxPhysics:
    """MJX model + index tables built once from the robot description."""

    def __init__(
        self,
        desc: RobotDescription,
        *,
        timestep: float | None = None,
        iterations: int | None = None,
        ls_iterations: int | None = None,
    ):
        m = mujoco.MjModel.from_xml_path(desc.mjcf_path)
        if timestep is not None:
            m.opt.timestep = timestep
        if iterations is not None:
            m.opt.iterations = iterations
        if ls_iterations is not None:
            m.opt.ls_iterations = ls_iterations
        self.mj_model = m
        self.model = mjx.put_model(m)
        self.desc = desc

        jnt = [_id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in desc.joint_names]
        self.qpos_idx = np.array([m.jnt_qposadr[j] for j in jnt])
        self.dof_idx = np.array([m.jnt_dofadr[j] for j in jnt])
        # actuator k must drive joint k of the description
        act = [_id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, n) for n in desc.joint_names]
        for k, (a, j) in enumerate(zip(act, jnt)):
            if a != k or m.actuator_trnid[a, 0] != j:
                raise ValueError(f"actuator {k} of the MJCF does not drive joint '{desc.joint_names[k]}'")
        if m.nu != desc.num_joints:
            raise ValueError(f"the MJCF has {m.nu} actuators, the description {desc.num_joints} joints")
        # position servos on their joints (gain kp, bias -kp q - kv qdot, gear 1): what the
        # actuation, the deployed action mapping and scaled_servo_setpoint assume
        servo = (m.actuator_gaintype == mujoco.mjtGain.mjGAIN_FIXED) & (m.actuator_biastype == mujoco.mjtBias.mjBIAS_AFFINE)
        servo &= np.isclose(m.actuator_biasprm[:, 1], -m.actuator_gainprm[:, 0]) & (m.actuator_gear[:, 0] == 1.0)
        if not servo.all():
            bad = [desc.joint_names[k] for k in np.flatnonzero(~servo)]
            raise ValueError(f"actuators {bad} are not position servos with gear 1 (MJCF <position kp=... kv=...>)")

        self.root_body = _id(m, mujoco.mjtObj.mjOBJ_BODY, desc.root_body)
        root_jnt = m.body_jntadr[self.root_body]
        if root_jnt < 0 or m.jnt_type[root_jnt] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(f"root body '{desc.root_body}' must carry the free joint")
        self.root_qpos = int(m.jnt_qposadr[root_jnt])
        self.root_dof = int(m.jnt_dofadr[root_jnt])
        self.torso_body = _id(m, mujoco.mjtObj.mjOBJ_BODY, desc.torso_body)
        self.imu_site = _id(m, mujoco.mjtObj.mjOBJ_SITE, desc.imu_site)
        self.imu_body = int(m.site_bodyid[self.imu_site])
        self.foot_sites = np.array([_id(m, mujoco.mjtObj.mjOBJ_SITE, s) for s in desc.foot_sites])
        self.foot_site_bodies = m.site_bodyid[self.foot_sites]
        self.foot_geoms = [[_id(m, mujoco.mjtObj.mjOBJ_GEOM, g) for g in gs] for gs in desc.foot_geoms]
        self.body_rootid = m.body_rootid.copy()
        self.total_mass = float(m.body_subtreemass[0])

        key = _id(m, mujoco.mjtObj.mjOBJ_KEY, desc.home_keyframe)
        self.home_qpos = m.key_qpos[key].copy()
        # One forward pass at home gives a consistent Data to reset from (cheap reset: no
        # physics call per episode) and tells which solver rows belong to which foot. MuJoCo C
        # computes it (mjx.put_data keeps MJX's contact and constraint layout): compiling
        # mjx.forward for this one call cost several seconds of every first run.
        home = mujoco.MjData(m)
        mujoco.mj_resetDataKeyframe(m, home, key)
        mujoco.mj_forward(m, home)
        self.home_data = mjx.put_data(m, home)
        self.foot_efc_rows = self._foot_rows(self.home_data)
        self._steppers: dict[tuple[int, bool], Callable] = {}

    def _foot_rows(self, d: mjx.Data) -> np.ndarray:
        """(n_feet, rows) indices into efc_force: every row of every contact of a foot's soles.

        With a pyramidal cone a condim-3 contact has 4 rows whose sum is the normal force; an
        elliptic cone's first row is the normal force (rows 1.. are tangential).
        """
        c = d._impl.contact
        geoms = np.asarray(c.geom)
        pyramidal = self.mj_model.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL
        rows = []
        for foot in self.foot_geoms:
            r = []
            for k in range(geoms.shape[0]):
                if geoms[k, 0] in foot or geoms[k, 1] in foot:
                    dim = int(c.dim[k])
                    n = (1 if dim == 1 else 2 * (dim - 1)) if pyramidal else 1
                    r.extend(int(c.efc_address[k]) + i for i in range(n))
            if not r:
                raise ValueError("a foot has no sole geom that can touch the floor (check contype/conaffinity)")
            rows.append(r)
        if len({len(r) for r in rows}) != 1:
            raise ValueError("every foot needs the same number of sole contacts")
        return np.array(rows)

    # -- stepping ---------------------------------------------------------------------------------
    def step(
        self, model: mjx.Model, data: mjx.Data, ctrl: jax.Array, substeps: int, kp_scale: jax.Array | None = None
    ) -> mjx.Data:
        """``substeps`` physics steps with servo targets ``ctrl``; batched in chunks on CPU
        (``vmap_in_chunks``). ``kp_scale`` (per servo) scales the servos' stiffness through their
        setpoint (``scaled_servo_setpoint``), so the model itself stays shared by every env."""
        key = (substeps, kp_scale is not None)
        if key not in self._steppers:
            self._steppers[key] = physics_steps(substeps, self.qpos_idx if kp_scale is not None else None)
        return self._steppers[key](model, data, ctrl, kp_scale)

    # -- reads ------------------------------------------------------------------------------------
    def joint_pos(self, d: mjx.Data) -> jax.Array:
        return d.qpos[self.qpos_idx]

    def joint_vel(self, d: mjx.Data) -> jax.Array:
        return d.qvel[self.dof_idx]

    def actuator_force(self, d: mjx.Data) -> jax.Array:
        return d.actuator_force

    def root_pos(self, d: mjx.Data) -> jax.Array:
        return d.qpos[self.root_qpos : self.root_qpos + 3]

    def root_quat(self, d: mjx.Data) -> jax.Array:
        """(w, x, y, z), world from root body."""
        return d.qpos[self.root_qpos + 3 : self.root_qpos + 7]

    def root_linvel(self, d: mjx.Data) -> jax.Array:
        """World-frame linear velocity of the root (MuJoCo's free joint convention)."""
        return d.qvel[self.root_dof : self.root_dof + 3]

    def root_angvel(self, d: mjx.Data) -> jax.Array:
        """Root angular velocity in the root's own frame (free joint convention)."""
        return d.qvel[self.root_dof + 3 : self.root_dof + 6]

    def torso_up_z(self, d: mjx.Data) -> jax.Array:
        """World z of the torso's z axis: 1 upright, 0 lying."""
        return d.xmat[self.torso_body, 2, 2]

    def imu_gravity(self, d: mjx.Data) -> jax.Array:
        """Unit gravity direction in the IMU frame (what an IMU's orientation gives)."""
        return -d.site_xmat[self.imu_site][2, :]

    def imu_gyro(self, d: mjx.Data) -> jax.Array:
        """Angular velocity of the IMU in its own frame, as MuJoCo's gyro sensor."""
        return d.site_xmat[self.imu_site].T @ d.cvel[self.imu_body, :3]

    def foot_pos(self, d: mjx.Data) -> jax.Array:
        return d.site_xpos[self.foot_sites]

    def foot_vel(self, d: mjx.Data) -> jax.Array:
        """World linear velocity of the sole sites: v = v_c + w x (p - c) from the com-based cvel."""
        cvel = d.cvel[self.foot_site_bodies]
        c = d.subtree_com[self.body_rootid[self.foot_site_bodies]]
        return cvel[:, 3:] + jnp.cross(cvel[:, :3], d.site_xpos[self.foot_sites] - c)

    def foot_contact_forces(self, d: mjx.Data) -> jax.Array:
        """Normal force (N) per foot, summed over all rows of all its contacts."""
        return d._impl.efc_force[self.foot_efc_rows].sum(axis=-1)

    def is_finite(self, d: mjx.Data) -> jax.Array:
        return jnp.all(jnp.isfinite(d.qpos)) & jnp.all(jnp.isfinite(d.qvel))


def scaled_servo_setpoint(target: jax.Array, q: jax.Array, kp_scale: jax.Array) -> jax.Array:
    """The setpoint at which a position servo of gain kp pushes as one of gain ``kp_scale`` * kp:
    kp (q + s (u - q) - q) = s kp (u - q), exactly, while it stays inside the control range.

    Applied before every physics step, it randomises kp with the actuator fields of the model
    left shared by every env (per-env model fields cost the batched physics a few per cent on CPU:
    bench/randomization_cost.py).
    """
    return q + kp_scale * (target - q)


def physics_steps(substeps: int, servo_qpos: np.ndarray | None = None) -> Callable:
    """``(model, data, ctrl, kp_scale) -> data`` after ``substeps`` ``mjx.step`` calls towards servo
    targets ``ctrl``, batched in chunks under ``jax.vmap`` on CPU (``vmap_in_chunks``). With
    ``servo_qpos`` (qpos index of each actuator's joint), ``kp_scale`` scales each servo's kp
    through its setpoint; without, pass ``kp_scale=None``."""

    def one_step(model: mjx.Model, d: mjx.Data, ctrl: jax.Array, kp_scale) -> mjx.Data:
        if servo_qpos is not None:
            ctrl = scaled_servo_setpoint(ctrl, d.qpos[servo_qpos], kp_scale)
        return mjx.step(model, d.replace(ctrl=ctrl))

    def steps(model: mjx.Model, data: mjx.Data, ctrl: jax.Array, kp_scale) -> mjx.Data:
        return jax.lax.fori_loop(0, substeps, lambda _, d: one_step(model, d, ctrl, kp_scale), data)

    return vmap_in_chunks(steps)


# -- quaternions: MuJoCo order (w, x, y, z) everywhere in this package ------------------------------
def quat_to_mat(q: jax.Array) -> jax.Array:
    """Rotation matrix (world from body) of a unit quaternion (w, x, y, z)."""
    w, x, y, z = q[0], q[1], q[2], q[3]
    return jnp.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def yaw_from_quat(q: jax.Array) -> jax.Array:
    w, x, y, z = q[0], q[1], q[2], q[3]
    return jnp.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def yaw_quat(yaw: jax.Array) -> jax.Array:
    """(w, x, y, z) of a rotation by ``yaw`` about world z."""
    return jnp.array([jnp.cos(yaw / 2), 0.0, 0.0, jnp.sin(yaw / 2)])


def xyzw_to_wxyz(q):
    """Motion files often store (x, y, z, w); convert once at that boundary."""
    return q[..., [3, 0, 1, 2]]


def wxyz_to_xyzw(q):
    return q[..., [1, 2, 3, 0]]
