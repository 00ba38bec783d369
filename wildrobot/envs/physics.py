"""The narrow seam between the env and the physics engine: MJX, or MuJoCo C called from the
jitted loop (``env.sim.backend``; ``auto`` picks MuJoCo C on a CPU and MJX on a GPU).

The env only ever: builds a per-episode model, sets controls and steps ``substeps`` times, and
reads the quantities below (joint positions/velocities, base pose and velocity, IMU readings,
foot positions/velocities and per-foot contact forces). A backend replaces ``step``, the model
and data pytrees and the contact-force read without touching rewards, observations or trainers.

Conventions: quaternions are MuJoCo's (w, x, y, z); world frame x forward, y left, z up.
Quantities read from ``data.xmat``/``cvel`` and contact forces are those MuJoCo computed in the last
substep's forward pass, i.e. one physics step (5 ms) older than ``qpos``/``qvel``: the same
staleness MuJoCo's own sensors have.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import threading
from types import SimpleNamespace
from typing import Any, Callable, Optional

import flax.struct
import jax
import jax.numpy as jnp
import mujoco
import numpy as np

# On import MJX prints that its optional Warp backend is missing (two lines on every run); that
# backend is not used here. The env modules reach MJX only through this seam.
with contextlib.redirect_stdout(io.StringIO()):
    from mujoco import mjx

from wildrobot.envs.wildrobot_config import SIM_BACKENDS
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


def resolve_backend(name: str) -> str:
    """``auto``: MuJoCo C on the CPU backend (several times MJX's speed there, and it compiles in a
    fraction of the time), MJX on accelerators (where the physics must stay on the device)."""
    if name not in SIM_BACKENDS:
        raise ValueError(f"env.sim.backend={name!r} is not one of {', '.join(SIM_BACKENDS)}")
    if name == "auto":
        return "mujoco" if jax.default_backend() == "cpu" else "mjx"
    return name


def make_physics(desc: RobotDescription, backend: str = "auto", **sim) -> "Physics":
    return {"mjx": MjxPhysics, "mujoco": MujocoPhysics}[resolve_backend(backend)](desc, **sim)


class Physics:
    """What both backends share: the MuJoCo model, index tables built once from the robot
    description, and the reads. A backend adds ``model`` (the pytree the env randomises), ``home_data``
    (a consistent state at the home keyframe to reset from), ``step`` and ``foot_contact_forces``;
    its data pytree has the fields the reads below use (qpos, qvel, xmat, site_xmat, site_xpos,
    cvel, subtree_com, actuator_force) and a ``replace`` method."""

    backend = ""

    def __init__(
        self,
        desc: RobotDescription,
        *,
        timestep: float | None = None,
        iterations: int | None = None,
        ls_iterations: int | None = None,
    ):
        m = self._load(desc)
        if timestep is not None:
            m.opt.timestep = timestep
        if iterations is not None:
            m.opt.iterations = iterations
        if ls_iterations is not None:
            m.opt.ls_iterations = ls_iterations
        self.mj_model = m
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

        self.home_key = _id(m, mujoco.mjtObj.mjOBJ_KEY, desc.home_keyframe)
        self.home_qpos = m.key_qpos[self.home_key].copy()
        # One forward pass at home gives a consistent state to reset from (cheap reset: no physics
        # call per episode), computed by MuJoCo C for both backends.
        self.home_mjdata = mujoco.MjData(m)
        mujoco.mj_resetDataKeyframe(m, self.home_mjdata, self.home_key)
        mujoco.mj_forward(m, self.home_mjdata)
        self._kinematic_model = None  # made on first use by foot_pos_of
        # each sole's contact spheres in its site's frame (rigid in the foot), and their radii, for
        # sole_height; a foot with fewer spheres repeats its first, which leaves the lowest unchanged
        d, most = self.home_mjdata, max(len(gs) for gs in self.foot_geoms)
        offsets, radii = [], []
        for site, gs in zip(self.foot_sites, self.foot_geoms):
            gs = gs + gs[:1] * (most - len(gs))
            rot = d.site_xmat[site].reshape(3, 3)
            offsets.append([rot.T @ (d.geom_xpos[g] - d.site_xpos[site]) for g in gs])
            radii.append([m.geom_size[g, 0] for g in gs])
        self.sole_offsets = np.asarray(offsets, np.float32)  # (feet, spheres, 3)
        self.sole_radii = np.asarray(radii, np.float32)  # (feet, spheres)

    def _load(self, desc: RobotDescription) -> mujoco.MjModel:
        return mujoco.MjModel.from_xml_path(desc.mjcf_path)

    # -- what a backend provides -------------------------------------------------------------------
    model: Any
    home_data: Any

    def step(self, model: Any, data: Any, ctrl: jax.Array, substeps: int, kp_scale: jax.Array | None = None) -> Any:
        """``substeps`` physics steps towards servo targets ``ctrl``. ``kp_scale`` (per servo) scales
        the servos' stiffness: MJX moves the setpoint before every substep
        (``scaled_servo_setpoint``), so the actuator fields of the model stay shared by every env;
        MuJoCo C scales each simulation's own servo gains (per-simulation fields of the batch), so
        that its substeps run in one call. The two agree while the moved setpoint stays inside the
        servo's control range."""
        raise NotImplementedError

    def foot_contact_forces(self, d: Any) -> jax.Array:
        """Normal force (N) per foot, summed over all its contacts."""
        raise NotImplementedError

    def view(self, arrays: dict[str, Any]) -> Any:
        """Plain MuJoCo arrays (``arrays_of``) as a data the reads accept, with contact forces
        reading zero (sim-to-sim observes a C simulation through the env's own code)."""
        raise NotImplementedError

    @staticmethod
    def arrays_of(d: mujoco.MjData) -> dict[str, np.ndarray]:
        """The fields of a plain ``MjData`` the reads use, shaped as the env's data holds them."""
        return {
            "qpos": d.qpos, "qvel": d.qvel, "cvel": d.cvel, "site_xpos": d.site_xpos, "subtree_com": d.subtree_com,
            "actuator_force": d.actuator_force, "site_xmat": d.site_xmat.reshape(-1, 3, 3),
            "xmat": d.xmat.reshape(-1, 3, 3),
        }

    # -- reads ------------------------------------------------------------------------------------
    def joint_pos(self, d) -> jax.Array:
        return d.qpos[self.qpos_idx]

    def joint_vel(self, d) -> jax.Array:
        return d.qvel[self.dof_idx]

    def actuator_force(self, d) -> jax.Array:
        return d.actuator_force

    def root_pos(self, d) -> jax.Array:
        return d.qpos[self.root_qpos : self.root_qpos + 3]

    def root_quat(self, d) -> jax.Array:
        """(w, x, y, z), world from root body."""
        return d.qpos[self.root_qpos + 3 : self.root_qpos + 7]

    def root_linvel(self, d) -> jax.Array:
        """World-frame linear velocity of the root (MuJoCo's free joint convention)."""
        return d.qvel[self.root_dof : self.root_dof + 3]

    def root_angvel(self, d) -> jax.Array:
        """Root angular velocity in the root's own frame (free joint convention)."""
        return d.qvel[self.root_dof + 3 : self.root_dof + 6]

    def torso_up_z(self, d) -> jax.Array:
        """World z of the torso's z axis: 1 upright, 0 lying."""
        return d.xmat[self.torso_body, 2, 2]

    def imu_gravity(self, d) -> jax.Array:
        """Unit gravity direction in the IMU frame (what an IMU's orientation gives)."""
        return -d.site_xmat[self.imu_site][2, :]

    def imu_gyro(self, d) -> jax.Array:
        """Angular velocity of the IMU in its own frame, as MuJoCo's gyro sensor."""
        return d.site_xmat[self.imu_site].T @ d.cvel[self.imu_body, :3]

    def foot_pos(self, d) -> jax.Array:
        return d.site_xpos[self.foot_sites]

    def sole_height(self, d) -> jax.Array:
        """(feet,) height of each sole's lowest point (the bottom of its lowest contact sphere): the
        clearance a swing has, which the sole's centre (``foot_pos``) overstates when the foot pitches."""
        up = d.site_xmat[self.foot_sites][:, 2, :]  # world z of each site axis
        spheres = jnp.einsum("fj,fpj->fp", up, self.sole_offsets) - self.sole_radii
        return d.site_xpos[self.foot_sites][:, 2] + spheres.min(axis=-1)

    def foot_vel(self, d) -> jax.Array:
        """World linear velocity of the sole sites: v = v_c + w x (p - c) from the com-based cvel."""
        cvel = d.cvel[self.foot_site_bodies]
        c = d.subtree_com[self.body_rootid[self.foot_site_bodies]]
        return cvel[:, 3:] + jnp.cross(cvel[:, :3], d.site_xpos[self.foot_sites] - c)

    def is_finite(self, d) -> jax.Array:
        return jnp.all(jnp.isfinite(d.qpos)) & jnp.all(jnp.isfinite(d.qvel))

    def foot_pos_of(self, qpos: jax.Array) -> jax.Array:
        """World positions of the sole sites at ``qpos``, by forward kinematics (``mjx.kinematics``):
        from the positions alone, unlike ``foot_pos``, which reads the last substep's forward pass."""
        if self._kinematic_model is None:
            # MJX's model of the plain MJCF (no added sensors), for either backend; made eagerly even when
            # the first call is being traced, since every later call reuses it
            with jax.ensure_compile_time_eval():
                self._kinematic_model = mjx.put_model(mujoco.MjModel.from_xml_path(self.desc.mjcf_path))
        m = self._kinematic_model
        return mjx.kinematics(m, mjx.make_data(m).replace(qpos=qpos)).site_xpos[self.foot_sites]


class MjxPhysics(Physics):
    """MJX: the physics is part of the jitted program (on a GPU it never leaves the device)."""

    backend = "mjx"

    def __init__(self, desc: RobotDescription, **sim):
        super().__init__(desc, **sim)
        m = self.mj_model
        self.model = mjx.put_model(m)
        # mjx.put_data keeps MJX's contact and constraint layout: compiling mjx.forward for this
        # one call cost several seconds of every first run.
        self.home_data = mjx.put_data(m, self.home_mjdata)
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

    def step(self, model: mjx.Model, data: mjx.Data, ctrl: jax.Array, substeps: int, kp_scale: jax.Array | None = None) -> mjx.Data:
        """Batched in chunks on CPU (``vmap_in_chunks``)."""
        key = (substeps, kp_scale is not None)
        if key not in self._steppers:
            self._steppers[key] = physics_steps(substeps, self.qpos_idx if kp_scale is not None else None)
        return self._steppers[key](model, data, ctrl, kp_scale)

    def foot_contact_forces(self, d: mjx.Data) -> jax.Array:
        """Summed over all rows of all its contacts (MJX keeps every candidate contact's rows)."""
        return d._impl.efc_force[self.foot_efc_rows].sum(axis=-1)

    def view(self, arrays: dict[str, Any]) -> Any:
        return SimpleNamespace(**arrays, _impl=SimpleNamespace(efc_force=jnp.zeros(int(np.max(self.foot_efc_rows)) + 1)))


@flax.struct.dataclass
class MujocoModel:
    """The model fields the env randomises per episode (float32, like the rest of the env); every
    other field is the MjModel's, shared by all envs."""

    geom_friction: jax.Array
    body_mass: jax.Array
    body_inertia: jax.Array
    dof_frictionloss: jax.Array


@flax.struct.dataclass
class MujocoData:
    """One env's MuJoCo C state (qpos, qvel, the solver's warm start) and the derived fields the
    env reads, as MuJoCo computed them in the last substep (what mj_step leaves in MjData)."""

    qpos: jax.Array
    qvel: jax.Array
    qacc_warmstart: jax.Array
    xmat: jax.Array  # (nbody, 3, 3)
    site_xmat: jax.Array  # (nsite, 3, 3)
    site_xpos: jax.Array
    cvel: jax.Array
    subtree_com: jax.Array
    actuator_force: jax.Array
    foot_force: jax.Array  # (n_feet,) normal force on each foot's body


class MujocoPhysics(Physics):
    """MuJoCo C (``mujoco.batch``: the envs stepped on a thread pool, one thread per CPU this process
    may use), called from the jitted loop through ``jax.pure_callback``. On a CPU it runs several
    times MJX's speed and its programs compile in a fraction of the time; results do not depend on
    the number of threads. The whole state (with the solver's warm start) is in the env's pytree,
    so runs resume exactly.

    Differences from MJX: programs that call back into Python are not written to JAX's persistent
    compilation cache, so every run compiles its programs; a numerical blow-up leaves non-finite
    values in qpos/qvel (MuJoCo's automatic reset is off) for the env to end the episode, as MJX.
    """

    backend = "mujoco"
    _STATE = ("qpos", "qvel", "qacc_warmstart")
    _DERIVED = ("xmat", "site_xmat", "site_xpos", "cvel", "subtree_com", "actuator_force", "sensordata")
    _GAINS = ("actuator_gainprm", "actuator_biasprm")  # per simulation: kp scaled by kp_scale

    def _load(self, desc: RobotDescription) -> mujoco.MjModel:
        """The MJCF plus a contact sensor per foot body (net contact force, world frame): MuJoCo C
        has a contact only while it touches, so forces are read per foot rather than per solver row."""
        spec = mujoco.MjSpec.from_file(desc.mjcf_path)
        m = spec.compile()
        for k, geoms in enumerate(desc.foot_geoms):
            bodies = {int(m.geom_bodyid[_id(m, mujoco.mjtObj.mjOBJ_GEOM, g)]) for g in geoms}
            if len(bodies) != 1:
                raise ValueError(f"the sole geoms of foot '{desc.foot_names[k]}' must belong to one body")
            s = spec.add_sensor(name=f"wildrobot_foot_contact_{k}", type=mujoco.mjtSensor.mjSENS_CONTACT,
                                objtype=mujoco.mjtObj.mjOBJ_BODY, objname=m.body(bodies.pop()).name)
            s.intprm[0] = 1 << int(mujoco.mjtConDataField.mjCONDATA_FORCE)
            s.intprm[1] = 3  # reduce="netforce"
            s.intprm[2] = 1
        return spec.compile()

    def __init__(self, desc: RobotDescription, **sim):
        super().__init__(desc, **sim)
        m = self.mj_model
        # A blow-up must show as NaN for the env to end the episode, as MJX's does; MuJoCo would
        # otherwise reset the simulation to qpos0 and carry on.
        m.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_AUTORESET)
        self._nfeet = len(desc.foot_geoms)
        self._foot_z = m.sensor_adr[m.nsensor - self._nfeet :] + 2  # world z of each net force
        f32 = lambda x: jnp.asarray(np.asarray(x), jnp.float32)
        self.model = MujocoModel(*(f32(getattr(m, f)) for f in MujocoModel.__dataclass_fields__))
        home = self.home_mjdata
        self.home_data = MujocoData(**{f: f32(getattr(home, f)) for f in self._STATE},
                                    **self._derived_of(home, lead=()))
        self._shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), self.home_data)
        self._gains = {f: getattr(m, f).copy() for f in self._GAINS}  # a position servo: kp, and -kp in the bias
        self._batches: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _derived_of(self, d: Any, lead: tuple[int, ...]) -> dict[str, Any]:
        """MujocoData's derived fields from an MjData (lead=()) or the batch's bound (n, ...) fields."""
        m, out = self.mj_model, {}
        shapes = {"xmat": (m.nbody, 3, 3), "site_xmat": (m.nsite, 3, 3), "site_xpos": (m.nsite, 3),
                  "cvel": (m.nbody, 6), "subtree_com": (m.nbody, 3), "actuator_force": (m.nu,)}
        for f, shape in shapes.items():
            out[f] = np.asarray(getattr(d, f), np.float32).reshape(*lead, *shape)
        sensordata = np.asarray(d.sensordata).reshape(*lead, -1)
        out["foot_force"] = -sensordata[..., self._foot_z].astype(np.float32)
        return out

    def _batch(self, n: int) -> tuple[Any, dict[str, np.ndarray]]:
        if n not in self._batches:
            from mujoco import batch as mj_batch

            # the CPUs this process may use (a SLURM or container allocation), not all of the host's
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            b = mj_batch.Batch(self.mj_model, n, nthread=cpus)
            views = {f: b.bind(f) for f in (*self._STATE, "ctrl", *self._DERIVED)}
            views.update({f: b.expand(f) for f in (*MujocoModel.__dataclass_fields__, *self._GAINS)})
            self._batches[n] = (b, views)
        return self._batches[n]

    def _host_step(self, substeps: int, model: MujocoModel, data: MujocoData, ctrl: np.ndarray,
                   kp_scale: np.ndarray | None) -> MujocoData:
        lead = ctrl.shape[:-1]  # batch dimensions (none for a single env)
        n = int(np.prod(lead, dtype=int))
        flat = lambda x, like: np.asarray(x).reshape(n, *np.shape(like))
        # a blown-up env's huge values become inf in float32, which is what the env checks for
        with self._lock, np.errstate(over="ignore"):  # one Batch per size, used by one thread at a time
            b, v = self._batch(n)
            for f in MujocoModel.__dataclass_fields__:
                v[f][...] = flat(getattr(model, f), getattr(self.model, f))
            for f in self._STATE:
                v[f][...] = flat(getattr(data, f), getattr(self.home_data, f))
            # a servo of gain s kp: kp (gainprm[0]) and -kp (biasprm[1]) scaled, kv (biasprm[2]) kept
            scale = np.ones((n, self.mj_model.nu)) if kp_scale is None else np.asarray(kp_scale).reshape(n, -1)
            v["actuator_gainprm"][...] = self._gains["actuator_gainprm"]
            v["actuator_gainprm"][..., 0] *= scale
            v["actuator_biasprm"][...] = self._gains["actuator_biasprm"]
            v["actuator_biasprm"][..., 1] *= scale
            v["ctrl"][...] = ctrl.reshape(n, -1)
            b.step(nstep=substeps)
            out = {f: v[f].astype(np.float32) for f in self._STATE}
            out.update(self._derived_of(SimpleNamespace(**{f: v[f] for f in self._DERIVED}), lead=(n,)))
        return MujocoData(**{f: x.reshape(*lead, *x.shape[1:]) for f, x in out.items()})

    def step(self, model: MujocoModel, data: MujocoData, ctrl: jax.Array, substeps: int,
             kp_scale: jax.Array | None = None) -> MujocoData:
        host = functools.partial(self._host_step, substeps)
        # broadcast_all: under vmap every argument arrives with the batch dimensions, so one call
        # steps the whole batch on the thread pool.
        return jax.pure_callback(host, self._shapes, model, data, ctrl, kp_scale, vmap_method="broadcast_all")

    def foot_contact_forces(self, d: MujocoData) -> jax.Array:
        return d.foot_force

    def view(self, arrays: dict[str, Any]) -> Any:
        return SimpleNamespace(**arrays, foot_force=jnp.zeros(self._nfeet))


def scaled_servo_setpoint(target: jax.Array, q: jax.Array, kp_scale: jax.Array) -> jax.Array:
    """The setpoint at which a position servo of gain kp pushes as one of gain ``kp_scale`` * kp:
    kp (q + s (u - q) - q) = s kp (u - q), exactly, while it stays inside the control range.

    Applied before every MJX step, it randomises kp with the actuator fields of the model left
    shared by every env (per-env model fields cost MJX's batched physics a few per cent on CPU:
    bench/randomization_cost.py). MuJoCo C scales the gains themselves (``MujocoPhysics``).
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
