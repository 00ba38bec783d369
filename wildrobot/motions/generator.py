"""Walking clips from a command: a footstep plan, a centre-of-mass path whose zero-moment point
stays on the feet (the linear inverted pendulum with preview control, Kajita et al. 2003), swing
feet with clearance, and inverse kinematics on the robot's own MuJoCo model (mink: differential
IK with joint limits, on the MJCF itself). docs/motions.md says why these choices.

``generate_clip(desc, command)`` plans a walk from standing, solves it, and keeps whole gait
cycles from its steady part: a loopable clip. The robot has no hip yaw, so it turns by pivoting
each stance sole about its centre with the heading; what it cannot do is not hidden:
``wildrobot.motions.checks`` bounds that pivot (a sole point may move a few mm in a stance) and
compares every clip's realised speed and turning with its command, and the ``generate`` command
refuses a clip that fails a check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import mujoco
import numpy as np
import scipy.linalg

from wildrobot.motions.clip import Clip, MotionError
from wildrobot.motions.model import RobotModel
from wildrobot.robot.description import RobotDescription

GRAVITY = 9.81


@dataclass(frozen=True)
class GaitSettings:
    step_time: float = 0.35  # s per step (half a gait cycle)
    double_support: float = 0.1  # share of each step with both feet on the floor
    swing_height: float = 0.025  # m, peak clearance of the swing sole
    stance_width: Optional[float] = 0.16  # m between the sole centres (home: 0.18); None: the home pose's
    pelvis_drop: float = 0.02  # m the pelvis sits below its home height (reach for longer steps)
    cycles: int = 2  # gait cycles kept in the clip
    warmup_steps: int = 6  # steps walked before the kept cycles (the gait settles)
    standing_s: float = 0.6  # standing before the first step (the CoM moves over the feet)
    fps: float = 50.0  # frames per second of the clip
    rate: float = 200.0  # Hz of the plan, the preview controller and the IK
    preview_s: float = 1.2  # the preview controller's horizon
    corrections: int = 2  # passes of the multibody ZMP correction (Kajita's dynamics filter)
    # the swing foot's path along the floor: None for the quintic ease (peak acceleration 5.77 d/T^2
    # over a swing of length d and time T); a share r of the swing for a jerk-limited profile whose
    # acceleration ramps up and down over r at either end of each half (peak 4 / (1 - 2r) d/T^2, 4.44
    # at 0.05): less torque at the swing hip for the same step (faster walks)
    swing_ramp: Optional[float] = None


@dataclass
class Plan:
    """Everything the walk is made of, on the plan's time grid."""

    t: np.ndarray  # (N,)
    zmp: np.ndarray  # (N, 2) reference
    com: np.ndarray  # (N, 2) the preview controller's CoM
    heading: np.ndarray  # (N,)
    feet: np.ndarray  # (N, 2, 4): x, y, z, yaw of the left and right sole
    contact: np.ndarray  # (N, 2)
    keep: slice  # the frames of the kept gait cycles


def _smooth(s: np.ndarray) -> np.ndarray:
    """Quintic ease 0 -> 1 with zero velocity and acceleration at both ends."""
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s ** 2)


def _ramped(s: np.ndarray, ramp: float, n: int = 4001) -> np.ndarray:
    """Ease 0 -> 1 with zero velocity at both ends whose acceleration is a trapezoid on each half
    (rising and falling over ``ramp`` of the whole), integrated twice on a fine grid."""
    p = np.linspace(0.0, 1.0, n)
    q = np.where(p < 0.5, p, p - 0.5)
    trapezoid = np.minimum(1.0, np.minimum(q, 0.5 - q) / ramp)
    acc = np.where(p < 0.5, trapezoid, -trapezoid)
    integrate = lambda f: np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]))]) / (n - 1)  # noqa: E731
    x = integrate(integrate(acc))
    return np.interp(np.clip(s, 0.0, 1.0), p, x / x[-1])


def _rot2(yaw: np.ndarray) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def preview_gains(dt: float, height: float, horizon: int, q: float = 1.0, r: float = 1e-6):
    """Integral and state gains and the preview gains of the cart-table model (jerk input, ZMP
    output) for a CoM ``height``: Katayama's optimal preview servo, as Kajita et al. use it."""
    a = np.array([[1.0, dt, dt * dt / 2], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
    b = np.array([[dt ** 3 / 6], [dt * dt / 2], [dt]])
    c = np.array([[1.0, 0.0, -height / GRAVITY]])
    a_aug = np.block([[np.eye(1), c @ a], [np.zeros((3, 1)), a]])
    b_aug = np.vstack([c @ b, b])
    q_aug = np.diag([q, 0.0, 0.0, 0.0])
    p = scipy.linalg.solve_discrete_are(a_aug, b_aug, q_aug, np.array([[r]]))
    gain_den = r + (b_aug.T @ p @ b_aug).item()
    k = (b_aug.T @ p @ a_aug) / gain_den
    closed = a_aug - b_aug @ k
    x = -closed.T @ p @ np.array([[1.0], [0.0], [0.0], [0.0]])
    preview = np.zeros(horizon)
    for j in range(horizon):
        preview[j] = (b_aug.T @ x).item() / gain_den
        x = closed.T @ x
    return k[0, 0], k[0, 1:], preview, (a, b, c)


def preview_control(zmp_ref: np.ndarray, dt: float, height: float, horizon: int, start: np.ndarray) -> np.ndarray:
    """CoM positions (N,) along one axis whose cart-table ZMP follows ``zmp_ref`` (N + horizon,)."""
    k_int, k_state, preview, (a, b, c) = preview_gains(dt, height, horizon)
    x = np.array([start, 0.0, 0.0])
    n = len(zmp_ref) - horizon
    out, err_sum = np.zeros(n), 0.0
    for i in range(n):
        out[i] = x[0]
        err_sum += (c @ x).item() - zmp_ref[i]
        u = -k_int * err_sum - k_state @ x - preview @ zmp_ref[i + 1:i + 1 + horizon]
        x = a @ x + b[:, 0] * u
    return out


class Walker:
    """The robot's model, home pose and IK tasks, set up once for many clips."""

    def __init__(self, desc: RobotDescription, settings: GaitSettings = GaitSettings()):
        import mink

        self.mink = mink
        self.desc, self.settings = desc, settings
        self.robot = robot = RobotModel(desc)
        m = self.model = robot.model
        self.data = mujoco.MjData(m)
        self.data.qpos[:] = robot.home_qpos
        mujoco.mj_forward(m, self.data)
        self.home_qpos = robot.home_qpos
        sole = self.data.site_xpos[robot.foot_sites].copy()
        self.sole_home = sole
        self.sole_z = float(sole[:, 2].mean())  # the sole sites' height at home (their spheres touch the floor)
        self.com_home = self.data.subtree_com[0].copy()
        self.pelvis_height = self.data.xpos[robot.root_body][2] - settings.pelvis_drop
        width = settings.stance_width if settings.stance_width is not None else sole[0, 1] - sole[1, 1]
        self.half_width = 0.5 * width

        self.configuration = mink.Configuration(m)
        self.tasks = {
            # the pelvis upright at its height and heading, where it puts the CoM on the plan's path
            "pelvis": mink.FrameTask(desc.root_body, "body", position_cost=100.0,
                                     orientation_cost=[100.0, 100.0, 10.0]),
            # soles flat at their targets; their heading is the soft part (no hip yaw)
            "left": mink.FrameTask(desc.foot_sites[0], "site", position_cost=100.0,
                                   orientation_cost=[100.0, 100.0, 1.0]),
            "right": mink.FrameTask(desc.foot_sites[1], "site", position_cost=100.0,
                                    orientation_cost=[100.0, 100.0, 1.0]),
            "posture": mink.PostureTask(m, cost=1e-3),
        }
        self.tasks["posture"].set_target(self.home_qpos)
        self.ik_tasks = list(self.tasks.values())
        self.limits = [mink.ConfigurationLimit(m)]
        self.max_jump = 0.35  # rad between two solved frames (at most 20 ms apart): more is a branch jump

    # -- the plan ---------------------------------------------------------------------------------
    def plan(self, command: np.ndarray) -> Plan:
        s = self.settings
        vx, vy, wz = (float(c) for c in command)
        dt = 1.0 / s.rate
        horizon = int(round(s.preview_s * s.rate))
        steps = s.warmup_steps + 2 * s.cycles + int(np.ceil(s.preview_s / s.step_time)) + 2
        t_end = s.standing_s + steps * s.step_time
        t = np.arange(int(round(t_end * s.rate)) + horizon) * dt
        walking = np.clip(t - s.standing_s, 0.0, None)
        heading = wz * walking
        # the path the CoM follows on average: the command integrated in the turning frame
        vel = np.einsum("nij,j->ni", _rot2(heading), np.array([vx, vy])) * (t >= s.standing_s)[:, None]
        start = self.sole_home[:, :2].mean(axis=0)
        path = start + np.concatenate([[np.zeros(2)], np.cumsum(vel[:-1] * dt, axis=0)])

        def at(time: float) -> tuple[np.ndarray, float]:
            i = min(int(round(time * s.rate)), len(t) - 1)
            return path[i], heading[i]

        side = np.array([1.0, -1.0])  # left, right
        starts = s.standing_s + np.arange(steps + 1) * s.step_time
        # footholds: foot k is down from its touchdown until it swings at its next step. Without a hip
        # yaw the legs cannot turn the pelvis over a planted sole (docs/environment.md), so a sole on
        # the floor pivots about its centre with the heading: its yaw is the heading plus what it had
        # at touchdown (the checks bound the pivot by how far the sole's points move)
        feet = np.zeros((len(t), 2, 4))
        contact = np.ones((len(t), 2))
        pose = [np.array([*self.sole_home[k, :2], 0.0]) for k in range(2)]  # x, y, yaw - heading at touchdown
        for k in range(2):
            feet[:, k] = [*pose[k][:2], self.sole_z, 0.0]
            feet[:, k, 3] = heading
        zmp = np.tile(start, (len(t), 1))
        standing = not np.any(np.asarray(command))  # standing still: no steps, the CoM over both feet
        for i in range(0 if standing else steps):
            swing = i % 2  # the left foot swings first
            stance = 1 - swing
            t0, t1 = starts[i], starts[i + 1]
            lift = t0 + s.double_support * s.step_time
            # the swing foot lands where the path will be half a step after this step ends, with the
            # heading of its touchdown
            centre, yaw = at(t1 + 0.5 * s.step_time)
            land = np.array([*(centre + _rot2(yaw) @ np.array([0.0, side[swing] * self.half_width])), at(t1)[1]])
            during = (t >= t0) & (t < t1)
            # ZMP: from wherever it was onto the stance sole during double support, then on it
            prev = zmp[np.searchsorted(t, t0) - 1] if i else start
            ds = during & (t < lift)
            zmp[ds] = prev + (_smooth((t[ds] - t0) / (lift - t0))[:, None]) * (pose[stance][:2] - prev)
            zmp[during & (t >= lift)] = pose[stance][:2]
            zmp[t >= t1] = pose[stance][:2]
            sw = during & (t >= lift)
            phase = (t[sw] - lift) / (t1 - lift)
            ease = (_smooth(phase) if s.swing_ramp is None else _ramped(phase, s.swing_ramp))[:, None]
            a, b = pose[swing].copy(), land
            a[2] += at(lift)[1]  # its yaw at lift-off
            yaw_b = a[2] + np.angle(np.exp(1j * (b[2] - a[2])))
            feet[sw, swing, :2] = a[:2] + ease * (b[:2] - a[:2])
            feet[sw, swing, 2] = self.sole_z + s.swing_height * 64 * (phase * (1 - phase)) ** 3
            feet[sw, swing, 3] = a[2] + ease[:, 0] * (yaw_b - a[2])
            contact[sw, swing] = 0.0
            after = t >= t1
            feet[after, swing] = [*b[:2], self.sole_z, yaw_b]
            feet[after, swing, 3] += heading[after] - at(t1)[1]
            pose[swing] = np.array([b[0], b[1], yaw_b - at(t1)[1]])
        height = self.com_home[2]
        n = int(round(t_end * s.rate))
        com = np.stack([preview_control(zmp[:, k], dt, height, horizon, self.com_home[k]) for k in range(2)], -1)
        first = s.warmup_steps  # an even step: the left foot is about to swing
        keep = slice(int(round(starts[first] * s.rate)), int(round(starts[first + 2 * s.cycles] * s.rate)))
        return Plan(t=t[:n], zmp=zmp[:n], com=com, heading=heading[:n], feet=feet[:n], contact=contact[:n], keep=keep)

    # -- inverse kinematics -----------------------------------------------------------------------
    def solve(self, plan: Plan, frames: np.ndarray, iterations: int = 30, tolerance: float = 1e-6) -> np.ndarray:
        """qpos (len(frames), nq) reaching the plan's targets at those plan frames, in order, each
        warm-started from the last.

        The pelvis is placed (upright, at its height and heading) where it puts the whole-body CoM on
        the plan's CoM path (an outer correction of its offset from the CoM, carried from frame to
        frame); each sole is placed flat at its target. The robot has no hip yaw: a sole's heading
        follows from hip pitch and roll, so headings are soft targets, and a foot on the floor keeps
        the heading it touched down with, turned by the plan's pivot since then."""
        mink = self.mink
        cfg = self.configuration
        cfg.update(self.home_qpos.copy())
        out = np.zeros((len(frames), self.model.nq))
        # each foot's (solved, planned) heading at its touchdown
        held: list[Optional[tuple[float, float]]] = [None, None]
        stance_yaw_cost = 20.0  # against the pelvis's 10: a planted sole turns only as the plan pivots it
        offset = self.data.xpos[self.robot.root_body][:2] - self.com_home[:2]  # pelvis minus CoM
        for n, i in enumerate(frames):
            for k, name in enumerate(("left", "right")):
                x, y, z, foot_yaw = plan.feet[i, k]
                if plan.contact[i, k]:
                    if held[k] is None:
                        held[k] = (self._site_yaw(k) if n else foot_yaw, foot_yaw)
                    foot_yaw = held[k][0] + foot_yaw - held[k][1]
                else:
                    held[k] = None
                self.tasks[name].set_target(mink.SE3.from_rotation_and_translation(
                    mink.SO3.from_rpy_radians(0.0, 0.0, foot_yaw), np.array([x, y, z])))
                self.tasks[name].set_orientation_cost([100.0, 100.0, stance_yaw_cost if plan.contact[i, k] else 1.0])
            for _ in range(3):  # move the pelvis until the CoM is on its path
                pelvis = np.array([*(plan.com[i] + offset), self.pelvis_height])
                self.tasks["pelvis"].set_target(mink.SE3.from_rotation_and_translation(
                    mink.SO3.from_rpy_radians(0.0, 0.0, plan.heading[i]), pelvis))
                for _ in range(iterations):
                    v = mink.solve_ik(cfg, self.ik_tasks, 1.0, "daqp", damping=1e-6, limits=self.limits)
                    cfg.integrate_inplace(v, 1.0)
                    if np.linalg.norm(v) < tolerance:
                        break
                miss = plan.com[i] - cfg.data.subtree_com[0][:2]
                offset = offset + miss
                if np.abs(miss).max() < 2e-4:
                    break
            out[n] = cfg.q
            if n and np.abs(out[n, self.robot.qpos_idx] - out[n - 1, self.robot.qpos_idx]).max() > self.max_jump:
                raise MotionError(f"the inverse kinematics lost the walk at t = {plan.t[i]:.2f} s (a joint jumped "
                                  f"between frames): the plan asks for more than the legs can reach")
        return out

    def _site_yaw(self, k: int) -> float:
        xmat = self.configuration.data.site_xmat[self.robot.foot_sites[k]].reshape(3, 3)
        return float(np.arctan2(xmat[1, 0], xmat[0, 0]))

    def correct(self, plan: Plan, every: int) -> None:
        """One pass of the dynamics filter: solve the walk at every ``every``-th plan frame, find the
        zero-moment point of the whole body (swing legs, upper body and all) by inverse dynamics,
        and shift the CoM path by the preview controller's answer to that ZMP's error."""
        from wildrobot.motions.checks import base_wrench  # the same inverse dynamics the checks use

        s = self.settings
        # up to a step past the kept cycles: the correction there only shapes what comes before
        end = min(len(plan.t), plan.keep.stop + int(round(s.step_time * s.rate)))
        frames = np.arange(0, end, every)
        qpos = self.solve(plan, frames)
        qvel = np.zeros((len(qpos), self.model.nv))
        for n in range(len(qpos)):
            a, b = max(n - 1, 0), min(n + 1, len(qpos) - 1)
            mujoco.mj_differentiatePos(self.model, qvel[n], (b - a) * every / s.rate, qpos[a], qpos[b])
        _, zmp = base_wrench(self.robot, qpos, qvel, s.rate / every)
        error = np.nan_to_num(zmp - plan.zmp[frames])
        error[:2] = error[-2:] = 0.0  # one-sided differences at the ends
        horizon = int(round(s.preview_s * s.rate))
        fine = np.stack([np.interp(plan.t, plan.t[frames], error[:, k]) for k in range(2)], -1)
        for k in range(2):
            plan.com[:, k] += preview_control(np.concatenate([-fine[:, k], np.zeros(horizon)]), 1.0 / s.rate,
                                              self.com_home[2], horizon, 0.0)


def generate_clip(desc: RobotDescription, command, settings: GaitSettings = GaitSettings(),
                  walker: Optional[Walker] = None, name: str = "") -> Clip:
    """A loopable clip of ``settings.cycles`` gait cycles realising ``command`` (vx, vy, yaw rate)
    as well as the plan lets the robot; check it with ``wildrobot.motions.checks.check_clip``."""
    walker = walker or Walker(desc, settings)
    s = walker.settings
    command = np.asarray(command, np.float64)
    if command.shape != (3,):
        raise MotionError(f"a command is (vx, vy, yaw rate); got {command!r}")
    plan = walker.plan(command)
    every = int(round(s.rate / s.fps))
    if abs(s.rate / s.fps - every) > 1e-9:
        raise MotionError(f"the plan's rate ({s.rate} Hz) must be a multiple of the clip's fps ({s.fps})")
    for _ in range(s.corrections):
        walker.correct(plan, every)
    # solve from the start (warm-started frame to frame, so the kept frames inherit a settled
    # posture), at the clip's rate, and the plan frames either side of each kept one (velocities)
    lead = np.arange(0, plan.keep.start, every)
    kept = np.arange(plan.keep.start, plan.keep.stop, every)
    frames = np.unique(np.concatenate([lead, kept - 1, kept, kept + 1]))
    qpos_all = walker.solve(plan, frames)
    index = {int(f): n for n, f in enumerate(frames)}
    q = np.array([qpos_all[index[int(f)]] for f in kept])
    q_prev = np.array([qpos_all[index[int(f) - 1]] for f in kept])
    q_next = np.array([qpos_all[index[int(f) + 1]] for f in kept])
    idx = walker.robot.qpos_idx
    joint_vel = (q_next[:, idx] - q_prev[:, idx]) * s.rate / 2
    r = walker.robot.root_qpos
    contact = plan.contact[kept]
    return Clip(joint_names=tuple(desc.joint_names), fps=s.fps, root_pos=q[:, r:r + 3], root_quat=q[:, r + 3:r + 7],
                joint_pos=q[:, idx], joint_vel=joint_vel, foot_contact=contact, command=command,
                loop=True, name=name or clip_name(command))


def clip_name(command) -> str:
    vx, vy, wz = (float(c) for c in command)
    if vx == vy == wz == 0.0:
        return "stand"
    return f"walk_vx{vx:+.2f}_vy{vy:+.2f}_yaw{wz:+.2f}"
