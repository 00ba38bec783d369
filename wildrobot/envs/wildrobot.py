"""WildRobot velocity-command locomotion on flat ground, in MuJoCo: MJX, or MuJoCo C called from the
jitted loop (``sim.backend``; ``wildrobot.envs.physics``).

One (unbatched) env: pure, jit- and vmap-able. The trainers batch it with
``wildrobot.envs.wrappers.wrap_for_training``, which also owns the episode limit and auto-reset.

Observations follow one spec (``wildrobot.envs.wildrobot_observation``): the actor sees gravity in
the IMU frame, gyro, joint positions minus home, joint velocities / max_joint_speed, the previous
action, the command and the gait clock (then ``obs.history`` older frames); the critic sees that
frame without noise and privileged state (base velocity and height, foot forces and heights, air
time, floor friction, action delay). Their sizes, the export layout, the command's slice and the
mirror map all come from that spec.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from wildrobot.envs import randomize, rewards
from wildrobot.envs.core import EPISODE_MARK, TRAINING_STEPS, Env, Mirror, State
from wildrobot.envs.frames import heading_velocity, quat_mul, quat_to_mat, to_heading_frame, yaw_quat
from wildrobot.envs.observation import ObservationView
from wildrobot.envs.physics import make_physics
from wildrobot.envs.wildrobot_config import WildRobotEnvConfig
from wildrobot.envs.wildrobot_observation import feature_view, views
from wildrobot.robot.description import RobotDescription, load_robot_description


def _as_config(cfg: Any) -> WildRobotEnvConfig:
    if cfg is None:
        return WildRobotEnvConfig()
    if isinstance(cfg, WildRobotEnvConfig):
        return cfg
    from omegaconf import OmegaConf  # a DictConfig from Hydra: type it once at this edge

    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(WildRobotEnvConfig), cfg))


class WildRobotEnv(Env):
    def __init__(self, cfg: WildRobotEnvConfig | None = None):
        self.cfg = cfg = _as_config(cfg)
        self.desc: RobotDescription = load_robot_description(cfg.robot)
        self.physics = p = make_physics(
            self.desc,
            cfg.sim.backend,
            timestep=cfg.sim.timestep,
            iterations=cfg.sim.iterations,
            ls_iterations=cfg.sim.ls_iterations,
        )
        self._dt = float(p.mj_model.opt.timestep) * cfg.sim.substeps
        n = self.desc.num_joints
        self._n = n
        self._nfeet = len(self.desc.foot_names)
        self._home = jnp.asarray(self.desc.home, jnp.float32)
        self._scale = jnp.asarray(self.desc.action_scale, jnp.float32) * cfg.action_scale
        self._range = jnp.asarray(self.desc.joint_range, jnp.float32)
        key_home = p.home_qpos[p.qpos_idx]
        if not np.allclose(key_home, self.desc.home, atol=1e-4):
            raise ValueError(
                f"keyframe '{self.desc.home_keyframe}' joint values {key_home} differ from the "
                f"description's home {self.desc.home}"
            )
        self._home_qpos = jnp.asarray(p.home_qpos, jnp.float32)
        self._home_data = p.home_data
        self._weight = p.total_mass * 9.81
        self._height_target = (
            cfg.reward.base_height_target
            if cfg.reward.base_height_target is not None
            else float(p.home_qpos[p.root_qpos + 2])
        )
        self._resample_steps = max(1, int(round(cfg.command.resample_interval_s / self._dt)))
        # {"actor": ..., "critic": ...}: every size, layout, slice and mirror below follows from these
        self.observation: dict[str, ObservationView] = views(self.desc, cfg, self._weight)
        # the kinematic features of a state (a discriminator's input), from the same table of blocks
        self.feature_view: ObservationView = feature_view(self.desc, cfg, self._weight)

    # -- Env interface ----------------------------------------------------------------------------
    @property
    def observation_size(self) -> dict[str, int]:
        return {name: view.size for name, view in self.observation.items()}

    @property
    def action_size(self) -> int:
        return self._n

    @property
    def action_names(self) -> tuple[str, ...]:
        return self.desc.joint_names

    @property
    def dt(self) -> float:
        return self._dt

    @property
    def episode_length(self) -> int:
        return self.cfg.episode_length

    @property
    def command_labels(self) -> tuple[str, ...]:
        return ("vx", "vy", "yaw")

    @property
    def evaluation_commands(self) -> tuple[tuple[float, ...], ...]:
        """The trained speed range and both turning directions: vx in {0, 0.1, 0.2, 0.3, 0.4} m/s x
        yaw rate in {-0.5, 0, 0.5} rad/s, vy 0."""
        return tuple((vx, 0.0, yaw) for vx in (0.0, 0.1, 0.2, 0.3, 0.4) for yaw in (-0.5, 0.0, 0.5))

    @property
    def headline_metrics(self) -> tuple[tuple[str, str, str], ...]:
        return (("vx_err", "tracking/vx_error", "{:.3f}"), ("yaw_err", "tracking/yaw_rate_error", "{:.3f}"))

    @property
    def physics_backend(self) -> str:
        return self.physics.backend

    @property
    def mj_model(self):
        """The plain MuJoCo model (with the env's sim overrides), e.g. for rendering or export."""
        return self.physics.mj_model

    def reset(self, key: jax.Array) -> State:
        cfg, p = self.cfg, self.physics
        rng, k_cmd, k_dr, k_push, k_q, k_yaw, k_noise = jax.random.split(key, 7)
        qpos = self._home_qpos
        noise = jax.random.uniform(k_q, (self._n,), minval=-1.0, maxval=1.0) * cfg.reset.joint_noise
        qpos = qpos.at[p.qpos_idx].add(noise)
        if cfg.reset.random_heading:
            yaw = jax.random.uniform(k_yaw, (), minval=-jnp.pi, maxval=jnp.pi)
            qpos = qpos.at[p.root_qpos + 3 : p.root_qpos + 7].set(yaw_quat(yaw))
        return self._begin(qpos, jnp.zeros_like(self._home_data.qvel), self._sample_command(k_cmd),
                           (rng, k_dr, k_push, k_noise))

    def reset_from(self, key: jax.Array, frame: dict[str, jax.Array]) -> State:
        """An episode that starts at a reference frame (``qpos``, ``qvel`` in this model's layout, and
        the clip's ``command``, resampled on the usual schedule): the root is moved over the origin
        and, with ``reset.random_heading``, turned to a random heading with its velocity. With the
        frame's ``phase`` in its clip's gait cycle (``motions.checks.gait_phase``), the gait clock
        starts there, so that the clock's feet lift with the clip's; a NaN phase starts it at 0."""
        cfg, p = self.cfg, self.physics
        rng, _, k_dr, k_push, _, k_yaw, k_noise = jax.random.split(key, 7)
        qpos, qvel = frame["qpos"].astype(jnp.float32), frame["qvel"].astype(jnp.float32)
        qpos = qpos.at[p.root_qpos : p.root_qpos + 2].set(0.0)
        if cfg.reset.random_heading:
            yaw = jax.random.uniform(k_yaw, (), minval=-jnp.pi, maxval=jnp.pi)
            turn = yaw_quat(yaw)
            quat = qpos[p.root_qpos + 3 : p.root_qpos + 7]
            qpos = qpos.at[p.root_qpos + 3 : p.root_qpos + 7].set(quat_mul(turn, quat))
            v = qvel[p.root_dof : p.root_dof + 3]  # world frame (MuJoCo's free joint); angular stays body
            qvel = qvel.at[p.root_dof : p.root_dof + 3].set(quat_to_mat(turn) @ v)
        phase = frame["phase"].astype(jnp.float32) if "phase" in frame else None
        return self._begin(qpos, qvel, frame["command"].astype(jnp.float32), (rng, k_dr, k_push, k_noise),
                           None if phase is None else jnp.where(jnp.isnan(phase), 0.0, jnp.mod(phase, 2 * jnp.pi)))

    def gait_frequency(self, command: jax.Array) -> jax.Array:
        """The gait clock's frequency (Hz) under ``command``: ``obs.gait_frequency``, plus
        ``obs.gait_frequency_per_yaw_rate`` per rad/s of |yaw rate| beyond ``obs.gait_frequency_yaw_from``."""
        o = self.cfg.obs
        turn = jnp.maximum(jnp.abs(command[..., 2]) - o.gait_frequency_yaw_from, 0.0)
        return (o.gait_frequency + o.gait_frequency_per_yaw_rate * turn).astype(jnp.float32)

    def advance_clock(self, clock: jax.Array, command: jax.Array) -> jax.Array:
        """The gait clock's phase (rad, in [0, 2 pi)) one control step on, at ``command``'s frequency."""
        return jnp.mod(clock + 2 * jnp.pi * self.gait_frequency(command) * self._dt, 2 * jnp.pi)

    def _begin(self, qpos: jax.Array, qvel: jax.Array, command: jax.Array, keys: tuple,
               clock: Optional[jax.Array] = None) -> State:
        """The episode state at physics state (qpos, qvel) with ``command``: randomisation drawn,
        bookkeeping zeroed (the gait clock at ``clock``, else 0), the first observation made."""
        cfg, p = self.cfg, self.physics
        rng, k_dr, k_push, k_noise = keys
        # Kinematic fields stay those of the home forward pass (the first step recomputes them): the
        # first observation's orientation-dependent blocks (gravity, foot heights) read the home pose,
        # which is exact for a home start and one step stale for a reference start.
        data = self._home_data.replace(qpos=qpos, qvel=qvel)
        dr = randomize.sample_params(
            k_dr, cfg.randomization, nbody=p.mj_model.nbody, nu=self._n
        )
        zeros_n = jnp.zeros((self._n,), jnp.float32)
        zeros_f = jnp.zeros((self._nfeet,), jnp.float32)
        info = {
            "rng": rng,
            "command": command,
            "command_fixed": jnp.zeros((), jnp.float32),
            "step": jnp.zeros((), jnp.int32),
            "clock": jnp.zeros((), jnp.float32) if clock is None else clock,
            "prev_action": zeros_n,
            "dr": dr,
            "push_countdown": randomize.sample_push_interval(k_push, cfg.push, self._dt),
            "air_time": zeros_f,
            "last_contact": jnp.ones((self._nfeet,), jnp.float32),
            EPISODE_MARK: qpos,
        }
        if cfg.push.enabled and cfg.push.grow_to is not None:
            info[TRAINING_STEPS] = jnp.zeros((), jnp.float32)
        frame, critic = self.observe(self.quantities(data, info), info, k_noise)
        if cfg.obs.history:
            info["obs_history"] = jnp.tile(frame[None], (cfg.obs.history, 1))
        obs = {"actor": self.observation["actor"].stacked(frame, info.get("obs_history")), "critic": critic}
        metrics = {k: jnp.zeros((), jnp.float32) for k in self.metric_keys}
        return State(data, obs, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), metrics, info)

    def step(self, state: State, action: jax.Array) -> State:
        """One control step; a new episode first when an outside auto-reset put back a first physics
        state (``Env.restart_if_replaced``)."""
        return self.step_in_episode(self.restart_if_replaced(state), action)

    def physics_mark(self, data: Any) -> jax.Array:
        return data.qpos

    def step_in_episode(self, state: State, action: jax.Array) -> State:
        cfg, p = self.cfg, self.physics
        info = state.info
        rng, k_noise, k_cmd, k_push, k_int = jax.random.split(info["rng"], 5)
        action = jnp.clip(action, -1.0, 1.0)
        dr = info["dr"]

        # servo targets: residual around home, in the servo's own (offset) frame
        applied = randomize.delayed_action(action, info["prev_action"], dr)
        ctrl = self.servo_targets(applied) + dr["joint_offset"]

        data = state.data
        countdown = info["push_countdown"] - 1
        if cfg.push.enabled:
            push_now = countdown <= 0
            top = randomize.push_top(cfg.push, info.get(TRAINING_STEPS))
            kick = jnp.where(push_now, randomize.push_kick(k_push, cfg.push, top), 0.0)
            data = data.replace(qvel=data.qvel.at[p.root_dof : p.root_dof + 3].add(kick))
            countdown = jnp.where(push_now, randomize.sample_push_interval(k_int, cfg.push, self._dt), countdown)

        model = randomize.apply_to_model(p.model, dr, cfg.randomization, p.dof_idx)
        data = p.step(model, data, ctrl, cfg.sim.substeps, randomize.kp_scale(dr, cfg.randomization))
        finite = p.is_finite(data)

        # commands: resampled on a schedule unless fixed by set_command
        step_count = info["step"] + 1
        resample = (step_count % self._resample_steps == 0) & (info["command_fixed"] == 0)
        command = jnp.where(resample, self._sample_command(k_cmd), info["command"])

        # feet: contact (as the foot switches), air time and first touchdown
        clock = self.advance_clock(info["clock"], info["command"])  # at the command this step followed
        q = self.quantities(data, dict(info, clock=clock))
        contact = q["contact"]
        contact_filt = jnp.maximum(contact, info["last_contact"])
        first_contact = (info["air_time"] > 0) * contact_filt
        air_time = info["air_time"] + self._dt

        fall = self.fallen(q).astype(jnp.float32)

        c = dict(
            q,
            command=info["command"],  # the command this step was asked to follow
            action=action,
            prev_action=info["prev_action"],
            joint_range=self._range,
            home=self._home,
            base_height_target=jnp.float32(self._height_target),
            moving=(jnp.linalg.norm(info["command"]) > 1e-3).astype(jnp.float32),
            first_contact=first_contact,
            air_time=air_time,
            fall=fall,
        )
        terms = rewards.weighted_terms(c, cfg.reward, self._dt)
        reward = rewards.total(terms, cfg.reward)

        new_info = dict(
            info,
            rng=rng,
            command=command,
            step=step_count,
            clock=clock,
            prev_action=action,
            push_countdown=countdown,
            air_time=air_time * (1.0 - contact_filt),
            last_contact=contact,
            **{EPISODE_MARK: data.qpos},
        )
        frame, critic = self.observe(q, new_info, k_noise)
        actor = self.observation["actor"].stacked(frame, new_info.get("obs_history"))
        if cfg.obs.history:
            new_info["obs_history"] = jnp.concatenate([frame[None], info["obs_history"][:-1]], axis=0)

        metrics = {f"reward/{k}": v for k, v in terms.items()}
        metrics.update(
            {
                "nonfinite": 1.0 - finite.astype(jnp.float32),
                "fall": fall,
                "tracking/vx_error": jnp.abs(info["command"][0] - q["base_vel_heading"][0]),
                "tracking/vy_error": jnp.abs(info["command"][1] - q["base_vel_heading"][1]),
                "tracking/yaw_rate_error": jnp.abs(info["command"][2] - q["yaw_rate"]),
                # What the robot does, beside how far it is from the command: a mean turning rate
                # shows whether an error is a slow turn or a wobbling one.
                "velocity/vx": q["base_vel_heading"][0],
                "velocity/vy": q["base_vel_heading"][1],
                "velocity/yaw_rate": q["yaw_rate"],
                "base_height": q["base_height"],
                "feet/contact_force": jnp.sum(q["contact_force"]),
                "feet/air_time": jnp.sum(first_contact * air_time),
            }
        )
        # A blow-up ends the episode: zero its reward and metrics, keep every output finite.
        metrics = {k: jnp.where(finite, v, 0.0) for k, v in metrics.items()}
        metrics["nonfinite"] = 1.0 - finite.astype(jnp.float32)
        # the env's own metrics, and any a wrapper added (Brax's evaluation wrapper: "reward") as they came
        metrics = {**state.metrics, **{k: metrics[k] for k in self.metric_keys}}
        done = jnp.maximum(fall * finite, 1.0 - finite.astype(jnp.float32))
        obs = {
            "actor": jnp.where(finite, actor, 0.0),
            "critic": jnp.where(finite, critic, 0.0),
        }
        return State(data, obs, jnp.where(finite, reward, 0.0), done, metrics, new_info)

    def command(self, state: State) -> jax.Array:
        return state.info["command"]

    def set_command(self, state: State, command: jax.Array) -> State:
        """Fix the command for the rest of the episode (no resampling) and update the obs.

        With ``obs.history``: at an episode's first step (``info["step"]`` 0) the older frames are
        copies of the first frame, as a reset makes them, so they show the fixed command too; later
        the current frame takes it and the older ones keep the command the policy saw then."""
        command = jnp.asarray(command, jnp.float32)
        info = dict(state.info, command=command, command_fixed=jnp.ones((), jnp.float32))
        obs = {k: state.obs[k].at[view.slice("command")].set(command) for k, view in self.observation.items()}
        if self.cfg.obs.history:
            actor = self.observation["actor"]
            frame = obs["actor"][: actor.frame_size]
            first = jnp.tile(frame[None], (self.cfg.obs.history, 1))
            fresh = info["step"] == 0
            # obs_history holds the current frame and the older ones but the last (the next step's older frames)
            info["obs_history"] = jnp.where(fresh, first, info["obs_history"].at[0].set(frame))
            obs["actor"] = jnp.where(fresh, actor.stacked(frame, first), obs["actor"])
        return state.replace(info=info, obs=obs)

    # -- helpers ----------------------------------------------------------------------------------
    @property
    def metric_keys(self) -> tuple[str, ...]:
        terms = [f"reward/{k}" for k in rewards.TERMS if getattr(self.cfg.reward.weights, k) != 0.0]
        return (
            *terms,
            "nonfinite",
            "fall",
            "tracking/vx_error",
            "tracking/vy_error",
            "tracking/yaw_rate_error",
            "velocity/vx",
            "velocity/vy",
            "velocity/yaw_rate",
            "base_height",
            "feet/contact_force",
            "feet/air_time",
        )

    def _sample_command(self, key: jax.Array) -> jax.Array:
        c = self.cfg.command
        k = jax.random.split(key, 4)
        lo = jnp.array([c.vx[0], c.vy[0], c.yaw_rate[0]])
        hi = jnp.array([c.vx[1], c.vy[1], c.yaw_rate[1]])
        cmd = jax.random.uniform(k[0], (3,), minval=lo, maxval=hi)
        cmd = jnp.where(jnp.abs(cmd) < c.deadband, 0.0, cmd)
        zero = jax.random.bernoulli(k[1], c.zero_probability)
        return jnp.where(zero, 0.0, cmd).astype(jnp.float32)

    def quantities(self, data: Any, info: dict[str, Any]) -> dict[str, jax.Array]:
        """Everything rewards and observation blocks read from a physics state, once per step
        (``info`` gives the randomised joint offsets and the gait clock's phase). The
        physics state may be the env's own or a plain MuJoCo one seen through ``physics.view``."""
        p, dr = self.physics, info["dr"]
        angvel = p.root_angvel(data)
        heading_vel, yaw_rate = heading_velocity(p.root_quat(data), p.root_linvel(data), angvel)
        force = p.foot_contact_forces(data)
        phase = info["clock"]
        phases = phase + jnp.pi * jnp.arange(self._nfeet)  # feet alternate
        return {
            "gravity": p.imu_gravity(data),
            "gyro": p.imu_gyro(data),
            # the servo reports its own (offset) zero
            "joint_pos": p.joint_pos(data) - dr["joint_offset"],
            "joint_vel": p.joint_vel(data),
            "torque": p.actuator_force(data),
            "base_height": p.root_pos(data)[2],
            "base_vel_heading": heading_vel,
            "base_angvel": angvel,
            "yaw_rate": yaw_rate,
            "torso_up": p.torso_up_z(data),
            "contact_force": force,
            "contact": (force > self.cfg.reward.contact_threshold).astype(jnp.float32),
            "foot_height": p.foot_pos(data)[:, 2],
            "sole_height": p.sole_height(data),
            "foot_vel": p.foot_vel(data),
            "phase": phases,
            "phase_obs": jnp.array([jnp.sin(phase), jnp.cos(phase)]),
        }

    def kinematics(self, qpos: jax.Array, qvel: jax.Array) -> dict[str, jax.Array]:
        """The kinematic state of a physics state, from its positions and velocities alone (forward
        kinematics for the soles), so that a policy's state and a reference motion's frame give the
        same numbers: true joint angles and velocities (no servo offset), base height, base linear and
        angular velocity and the soles relative to the base, in the heading frame."""
        p = self.physics
        root = qpos[p.root_qpos : p.root_qpos + 3]
        quat = qpos[p.root_qpos + 3 : p.root_qpos + 7]
        linvel, angvel_body = qvel[p.root_dof : p.root_dof + 3], qvel[p.root_dof + 3 : p.root_dof + 6]
        heading_vel, _ = heading_velocity(quat, linvel, angvel_body)
        angvel_world = quat_to_mat(quat) @ angvel_body
        return {
            "joint_angle": qpos[p.qpos_idx],
            "joint_vel": qvel[p.dof_idx],
            "base_height": root[2],
            "base_vel_heading": heading_vel,
            "base_angvel_heading": to_heading_frame(quat, angvel_world),
            "feet_pos_heading": to_heading_frame(quat, p.foot_pos_of(qpos) - root),
        }

    def features(self, qpos: jax.Array, qvel: jax.Array) -> jax.Array:
        """The feature vector (``feature_view``) of one physics state."""
        return self.feature_view.frame(self.kinematics(qpos, qvel))

    @property
    def feature_size(self) -> int:
        return self.feature_view.size

    def state_features(self, state: State) -> jax.Array:
        return self.features(state.data.qpos, state.data.qvel)

    def observe(self, q: dict[str, jax.Array], info: dict[str, Any], key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(actor frame with sensor noise, critic observation) from the step's quantities ``q`` and
        the episode's state ``info`` (its command, previous action, air time, randomisation)."""
        clean = dict(q, prev_action=info["prev_action"], command=info["command"], air_time=info["air_time"],
                     floor_friction=info["dr"]["floor_friction"], action_delay=info["dr"]["delay"])
        noisy = randomize.add_noise(key, self.cfg.noise, clean)
        return self.observation["actor"].frame(noisy), self.observation["critic"].frame(clean)

    # -- deployment: observation layout, robot facts for a runtime, plain-MuJoCo observation ------
    @property
    def observation_layout(self) -> list[dict]:
        """Name, start, size and unit of each block of the actor observation (the export sidecar's layout)."""
        return self.observation["actor"].layout()

    @property
    def mirror(self) -> Mirror:
        """The robot's left/right mirror image (reflection through the sagittal x-z plane) of actor
        observations (block by block, from the observation spec) and of actions (the robot
        description's joint mirror map). A test steps mirrored actions from mirrored states and
        compares the observations."""
        if self._nfeet != 2:
            raise ValueError(f"the mirror needs two feet; the robot description has {self._nfeet}")
        perm, sign = self.observation["actor"].mirror()
        return Mirror(obs_perm=perm, obs_sign=sign, action_perm=self.desc.mirror_permutation,
                      action_sign=self.desc.mirror_signs.astype(np.float32))

    def deployment_info(self) -> dict:
        """What a robot runtime needs besides the policy: joint order, home, action mapping, timing."""
        d, o = self.desc, self.cfg.obs
        clock = {"gait_frequency": float(o.gait_frequency),
                 "gait_frequency_per_yaw_rate": float(o.gait_frequency_per_yaw_rate),
                 "gait_frequency_yaw_from": float(o.gait_frequency_yaw_from),
                 "gait_clock": ("phase += 2 pi dt (gait_frequency + gait_frequency_per_yaw_rate * max(0, |command "
                                "yaw_rate| - gait_frequency_yaw_from)) after each control step, at the command of "
                                "the observation the action was computed from; from 0 at the episode's start")}
        return {
            "robot": {
                "name": d.name,
                "joint_names": list(d.joint_names),
                "home": [float(x) for x in d.home],
                "joint_range": [[float(lo), float(hi)] for lo, hi in d.joint_range],
                "hardware_signs": list(d.hardware_signs),
                "max_joint_speed": float(d.max_joint_speed),
                "imu_site": d.imu_site,
                "foot_names": list(d.foot_names),
                "mjcf": d.mjcf_path,
            },
            "action": {
                "mapping": "joint_target = clip(home + scale * clip(action, -1, 1), joint_range)",
                "scale": [float(x) * float(self.cfg.action_scale) for x in d.action_scale],
                "home": [float(x) for x in d.home],
                "joint_range": [[float(lo), float(hi)] for lo, hi in d.joint_range],
                "joint_names": list(d.joint_names),
            },
            "control": {"physics_timestep": float(self.mj_model.opt.timestep), "substeps": int(self.cfg.sim.substeps)},
            "observation": {
                **{k: v if o.gait_phase else None for k, v in clock.items()},
                "history": int(o.history),
                "history_start": ("the first observation of an episode has its older frames equal to its current "
                                  "frame; each later one shifts in the frame before it, newest first")
                if o.history else None,
                "gravity": (f"unit gravity direction in the IMU frame (the model's site '{d.imu_site}': x forward, "
                            "y left, z up on the upright robot), (0, 0, -1) upright: g = R(q)^T (0, 0, -1), with "
                            "R(q) the rotation from the IMU frame to the world (z up) of the IMU's orientation "
                            "quaternion q in MuJoCo's (w, x, y, z) order; a BNO085 reports (i, j, k, real) = "
                            "(x, y, z, w): reorder it first. The gyro block is in the same IMU frame"),
                "joint_signs": ("joint_pos, joint_vel, home, joint_range and the joint targets are already in the "
                                "hardware's sign convention (robot.hardware_signs is built into the model's joint "
                                "axes): do not multiply by hardware_signs again"),
            },
            "command": {"labels": ["vx", "vy", "yaw_rate"], "units": ["m/s", "m/s", "rad/s"],
                        "vx": list(self.cfg.command.vx), "vy": list(self.cfg.command.vy),
                        "yaw_rate": list(self.cfg.command.yaw_rate)},
        }

    def servo_targets(self, action: jax.Array) -> jax.Array:
        """Joint position targets of an action (no delay, no joint offset): the deployed mapping."""
        return jnp.clip(self._home + self._scale * jnp.clip(action, -1.0, 1.0), self._range[:, 0], self._range[:, 1])

    def fallen(self, q: dict[str, jax.Array]) -> jax.Array:
        t = self.cfg.termination
        return (q["base_height"] < t.min_base_height) | (q["torso_up"] < t.min_torso_up)

    def mujoco_observer(self) -> "MujocoObserver":
        """The actor observation computed from a plain ``mujoco.MjData`` by this env's own functions."""
        return MujocoObserver(self)


class MujocoObserver:
    """Runs the env's own observation code on a plain MuJoCo (C) ``MjData``, for sim-to-sim.

    ``MjData`` is seen with the env's array shapes (``physics.view``), then the env's ``quantities``
    and ``observe`` and its actor view run on it (jitted once), so a plain C simulation and the env
    share one observation function. The episode bookkeeping an env step does (previous action, gait
    clock, frame history) is kept here. Contact forces read as zero; the actor
    observation does not use them. Build the env with randomisation and sensor noise off
    (``wildrobot.envs.factory.evaluation_config``).
    """

    def __init__(self, env: WildRobotEnv):
        self.env = env
        info = jax.jit(env.reset)(jax.random.key(0)).info  # nominal randomisation parameters
        # its older frames are that reset's state, not this simulation's (command, clock, previous action: per call)
        self._info = {k: v for k, v in info.items() if k != "obs_history"}
        self._observe = jax.jit(self._observe_fn)
        self._advance = jax.jit(env.advance_clock)
        self.reset(jnp.zeros(3))

    def reset(self, command) -> None:
        """A new episode at ``command``: gait clock 0, previous action 0, and the next observation
        the first (its older frames, with ``obs.history``, copies of its current one)."""
        self.command = jnp.asarray(command, jnp.float32)
        self.clock = jnp.zeros((), jnp.float32)
        self.prev_action = jnp.zeros(self.env.action_size, jnp.float32)
        h = self.env.cfg.obs.history
        self.history = jnp.zeros((h, self.env.observation["actor"].frame_size), jnp.float32) if h else None
        self._first = True

    def _observe_fn(self, arrays, info, history, first):
        q = self.env.quantities(self.env.physics.view(arrays), info)
        frame, _ = self.env.observe(q, info, jax.random.key(0))
        if history is not None:
            # the first observation's older frames are copies of it, as the env's reset makes them
            history = jnp.where(first, jnp.tile(frame[None], (history.shape[0], 1)), history)
        actor = self.env.observation["actor"].stacked(frame, history)
        if history is not None:
            history = jnp.concatenate([frame[None], history[:-1]], axis=0)
        keep = {k: q[k] for k in ("base_vel_heading", "yaw_rate", "base_height", "torso_up")}
        return actor, history, keep, self.env.fallen(q)

    def observe(self, data) -> tuple[np.ndarray, dict, bool]:
        """(actor observation, {base_vel_heading, yaw_rate, base_height, torso_up}, fallen) of
        ``data``; call once per control step (it keeps the frame history)."""
        arrays = self.env.physics.arrays_of(data)
        info = dict(self._info, clock=self.clock, prev_action=self.prev_action, command=self.command)
        with np.errstate(over="ignore"):  # a blown-up state's huge values become inf in float32
            actor, self.history, q, fallen = self._observe(arrays, info, self.history, jnp.asarray(self._first))
        self._first = False
        return np.asarray(actor), {k: np.asarray(v) for k, v in q.items()}, bool(fallen)

    def ctrl(self, action) -> np.ndarray:
        """Servo targets of ``action``; call once per control step (it advances the bookkeeping)."""
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        self.prev_action = action
        self.clock = self._advance(self.clock, self.command)
        return np.asarray(self.env.servo_targets(action))
