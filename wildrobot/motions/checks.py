"""Physical checks of a clip (``motions check`` and the tests): can a 3.3 kg servo biped do this?

Per clip: joints within range and under the servo speed limit; the joint torques that MuJoCo's
inverse dynamics asks for within the servos' limit on nearly all frames; the zero-moment point
inside the support polygon; stance feet neither sliding nor sinking; swing feet clearing the floor;
the realised speed and turning rate matching the command. Each figure is reported, and a breach
fails the clip.

Torques with contacts: MuJoCo's soft contacts give no force at zero penetration in inverse
dynamics, so ``mj_inverse`` runs without contacts and the floor's forces are solved explicitly:
the non-negative combination of friction-pyramid forces at the stance soles' contact points that
best supplies what the floating base needs (bounded least squares, a little regularised so that
double support shares the load). What the floor cannot supply (the ZMP off the feet, or feet in
the air) stays as a residual; the joint torques are the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import mujoco
import numpy as np
import scipy.optimize
import scipy.spatial

from wildrobot.motions.clip import Clip
from wildrobot.motions.model import RobotModel


@dataclass(frozen=True)
class Limits:
    range_tolerance: float = 0.01  # rad beyond a joint's range
    torque_share: float = 0.95  # share of frames whose every torque is within the servo limit ("nearly all")
    zmp_margin: float = -0.005  # m: the ZMP may sit this far outside the support polygon (negative)
    zmp_share: float = 0.98  # share of frames with the ZMP inside (within the margin)
    slide: float = 0.005  # m a stance sole point may move along the floor during one stance
    sink: float = 0.003  # m a sole point may go below the floor
    clearance: float = 0.01  # m the swing sole's lowest point must rise at least once per swing
    contact_height: float = 0.004  # m: a sole whose lowest point is below this is on the floor (no contact field)
    speed_error: float = 0.025  # m/s between the command and the realised heading-frame velocity
    yaw_rate_error: float = 0.05  # rad/s
    friction: float = 0.8  # floor friction the contact forces may use (the model's is 1.0)


TORQUE_CHECK = "torques within the servo limit"  # the check a faster walk may mend (library.generate_one)
SLIDE_CHECK = "stance feet do not slide"  # the check quicker steps may mend on a turn (library.generate_one)

@dataclass
class Check:
    name: str
    passed: bool
    value: str  # the figure, formatted
    detail: str = ""


@dataclass
class Report:
    clip: str
    checks: list[Check]
    descriptors: dict[str, float]
    series: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # per frame, for plots

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def _phases(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) runs of True."""
    runs, start = [], None
    for i, on in enumerate(mask):
        if on and start is None:
            start = i
        if not on and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(mask)))
    return runs


def kinematics(robot: RobotModel, qpos: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame: the sole contact points (T, feet, points, 3) and the sole sites (T, feet, 3)."""
    m, d = robot.model, mujoco.MjData(robot.model)
    points, sites = [], []
    for q in qpos:
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        points.append(robot.sole_points(d))
        sites.append(d.site_xpos[robot.foot_sites].copy())
    return {"points": np.array(points), "sites": np.array(sites)}


def contacts(points: np.ndarray, limits: Limits, given: Optional[np.ndarray] = None) -> np.ndarray:
    """(T, feet) 0/1: ``given`` (a clip's own ``foot_contact``), else a sole whose lowest point is on
    the floor (within ``limits.contact_height``): how a policy's trajectory is read."""
    if given is not None:
        return (given > 0.5).astype(float)
    return (points[..., 2].min(axis=-1) < limits.contact_height).astype(float)


def gait_phase(contact: np.ndarray, loop: bool = False) -> np.ndarray:
    """(T,) each frame's phase in a gait cycle (radians in [0, 2 pi)) from its contacts (T, 2): the
    first foot's swings centred on pi / 2, the second's on 3 pi / 2 (the env's gait clock lifts foot
    k over phase + k pi in (0, pi)), linear in time between the swings' centres and on with the
    nearest gap's rate before the first and after the last. A swing cut by the clip's start or end
    is not read, except in a loop, whose swings run on across its seam. NaN throughout with fewer
    than two swings (a clip that stands) or with both feet in the air together (a hop): no
    alternating phase to read."""
    frames = len(contact)
    if loop and frames > 1:
        return gait_phase(np.concatenate([contact] * 3))[frames:2 * frames]
    centres = sorted((0.5 * (start + stop - 1), foot) for foot in range(min(2, contact.shape[1]))
                     for start, stop in _phases(contact[:, foot] < 0.5) if start > 0 and stop < frames)
    times = np.array([c for c, _ in centres])
    if len(centres) < 2 or np.any(np.diff(times) <= 0):
        return np.full(frames, np.nan)
    # unwrap: each next swing centre is the next half cycle (pi) on, a skipped one a full cycle
    phase = [np.pi / 2 + np.pi * centres[0][1]]
    for (_, before), (_, foot) in zip(centres, centres[1:]):
        phase.append(phase[-1] + (np.pi if foot != before else 2 * np.pi))
    phase = np.array(phase)
    t = np.arange(frames, dtype=float)
    out = np.interp(t, times, phase)
    first = (phase[1] - phase[0]) / (times[1] - times[0])
    last = (phase[-1] - phase[-2]) / (times[-1] - times[-2])
    out = np.where(t < times[0], phase[0] + first * (t - times[0]), out)
    out = np.where(t > times[-1], phase[-1] + last * (t - times[-1]), out)
    return np.mod(out, 2 * np.pi)


def gait_descriptors(qpos: np.ndarray, fps: float, contact: np.ndarray, points: np.ndarray, root_qpos: int,
                     loop: bool = False) -> dict[str, float]:
    """Cadence (touchdowns per second), stride length (m per gait cycle), duty factor (share of the
    time a foot is down), swing clearance (peak height of a swinging sole, mean over swings), mean
    speed (heading frame) and turning rate. From poses, contacts and sole points alone, so a policy's
    trajectory and a reference clip are described alike. A loop's last frame runs on into its first."""
    frames = len(qpos)
    seconds = (frames if loop else frames - 1) / fps
    wrapped = np.concatenate([contact, contact[:1]]) if loop else contact
    touchdowns = int(np.sum(np.diff(wrapped, axis=0) > 0))
    cadence = touchdowns / seconds if seconds > 0 else 0.0
    quat = qpos[:, root_qpos + 3:root_qpos + 7]
    pos = qpos[:, root_qpos:root_qpos + 3]
    yaw = np.unwrap(np.arctan2(2 * (quat[:, 0] * quat[:, 3] + quat[:, 1] * quat[:, 2]),
                               1 - 2 * (quat[:, 2] ** 2 + quat[:, 3] ** 2)))
    span = (frames - 1) / fps  # the poses' own time span
    turning = (yaw[-1] - yaw[0]) / span if span > 0 else 0.0
    mid = 0.5 * (yaw[0] + yaw[-1])  # displacement in the mean heading frame
    dx, dy = pos[-1, :2] - pos[0, :2]
    forward = (np.cos(mid) * dx + np.sin(mid) * dy) / span if span > 0 else 0.0
    lateral = (-np.sin(mid) * dx + np.cos(mid) * dy) / span if span > 0 else 0.0
    # a gait cycle is two touchdowns; a stride is the distance covered in one
    stride = 2.0 * float(np.hypot(forward, lateral)) / cadence if cadence > 0 else 0.0
    swings = [points[a:b, k, :, 2].min(axis=-1).max() for k in range(contact.shape[1])
              for a, b in _phases(contact[:, k] < 0.5)]
    return {
        "cadence": float(cadence),
        "stride_length": stride,
        "duty_factor": float(contact.mean()),
        "swing_clearance": float(np.mean(swings)) if swings else 0.0,
        "speed_vx": float(forward),
        "speed_vy": float(lateral),
        "turning_rate": float(turning),
    }


def base_wrench(robot: RobotModel, qpos: np.ndarray, qvel: np.ndarray, fps: float):
    """Per frame, from MuJoCo's inverse dynamics without contacts (``mj_inverse``): the generalised
    forces the motion needs (T, nv), and the zero-moment point (T, 2) of the force and torque the
    floating base needs from the floor (NaN when it needs none upwards: a flight phase)."""
    m = robot.model
    d = mujoco.MjData(m)
    saved = m.opt.disableflags
    m.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONSTRAINT)
    qacc = np.gradient(qvel, 1.0 / fps, axis=0)
    r = robot.root_dof
    need, zmp = np.zeros((len(qpos), m.nv)), np.full((len(qpos), 2), np.nan)
    try:
        for t in range(len(qpos)):
            d.qpos[:], d.qvel[:], d.qacc[:] = qpos[t], qvel[t], qacc[t]
            mujoco.mj_inverse(m, d)
            need[t] = d.qfrc_inverse
            # the free joint's force is in the world frame, its torque in the body frame about the root
            force = need[t, r:r + 3]
            torque = d.xmat[robot.root_body].reshape(3, 3) @ need[t, r + 3:r + 6]
            root = d.xpos[robot.root_body]
            if force[2] > 1e-6:
                zmp[t] = [root[0] - (torque[1] + root[2] * force[0]) / force[2],
                          root[1] + (torque[0] - root[2] * force[1]) / force[2]]
    finally:
        m.opt.disableflags = saved
    return need, zmp


def inverse_dynamics(robot: RobotModel, qpos: np.ndarray, qvel: np.ndarray, fps: float, contact: np.ndarray,
                     points: np.ndarray, friction: float) -> dict[str, np.ndarray]:
    """Per frame: joint torques (T, J), the ZMP (T, 2), its margin inside the support polygon (T,)
    and the share of the base's wrench the floor could not supply (T,)."""
    m = robot.model
    d = mujoco.MjData(m)
    need, zmp = base_wrench(robot, qpos, qvel, fps)
    # the friction pyramid's edges: the normal tilted by mu towards four tangents
    edges = np.array([[friction, 0, 1], [-friction, 0, 1], [0, friction, 1], [0, -friction, 1]], float)
    edges /= np.linalg.norm(edges, axis=1, keepdims=True)
    r = robot.root_dof
    torques, margin, unsupplied = [], [], []
    jacp = np.zeros((3, m.nv))
    for t in range(len(qpos)):
        d.qpos[:] = qpos[t]
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        base = need[t, r:r + 6]
        cols, where = [], []
        for k in range(contact.shape[1]):
            if contact[t, k] < 0.5:
                continue
            for p in points[t, k]:
                mujoco.mj_jac(m, d, jacp, None, p, robot.foot_bodies[k])
                cols.extend(jacp.T @ e for e in edges)
                where.append(p[:2])
        supplied = np.zeros(m.nv)
        if cols:
            a = np.array(cols).T  # (nv, 4 * points)
            sol = scipy.optimize.lsq_linear(np.vstack([a[r:r + 6], 1e-3 * np.eye(a.shape[1])]),
                                            np.concatenate([base, np.zeros(a.shape[1])]), bounds=(0, np.inf))
            supplied = a @ sol.x
        residual = base - supplied[r:r + 6]
        unsupplied.append(np.linalg.norm(residual) / max(np.linalg.norm(base), 1e-9))
        torques.append((need[t] - supplied)[robot.dof_idx])
        ok = where and np.all(np.isfinite(zmp[t]))
        margin.append(_polygon_margin(zmp[t], np.array(where)) if ok else -np.inf)
    return {"torques": np.array(torques), "zmp": zmp, "zmp_margin": np.array(margin),
            "unsupplied": np.array(unsupplied)}


def _polygon_margin(p: np.ndarray, points: np.ndarray) -> float:
    """Signed distance of ``p`` inside the convex hull of ``points`` (negative: outside)."""
    try:
        hull = scipy.spatial.ConvexHull(points)
    except scipy.spatial.QhullError:  # degenerate (points on a line)
        return -np.inf
    normals, offsets = hull.equations[:, :2], hull.equations[:, 2]
    return float(-np.max(normals @ p + offsets))


def check_clip(clip: Clip, robot: RobotModel, limits: Limits = Limits()) -> Report:
    """Every check of a clip whose joints are in the robot description's order (``loader.load_clip``)."""
    qpos = robot.qpos(clip)
    qvel = robot.qvel(clip, qpos)
    kin = kinematics(robot, qpos)
    points = kin["points"]
    contact = contacts(points, limits, clip.foot_contact)
    checks = []
    names = robot.desc.joint_names

    lo, hi = robot.joint_range[:, 0], robot.joint_range[:, 1]
    beyond = np.maximum(clip.joint_pos - hi, lo - clip.joint_pos)
    worst = np.unravel_index(np.argmax(beyond), beyond.shape)
    checks.append(Check("joints within range", bool(beyond.max() <= limits.range_tolerance),
                        f"{max(beyond.max(), 0.0):.3f} rad beyond",
                        f"worst: {names[worst[1]]} at frame {worst[0]} "
                        f"({clip.joint_pos[worst]:.3f}, range {lo[worst[1]]:.3f}..{hi[worst[1]]:.3f})"))
    speed = np.abs(qvel[:, robot.dof_idx])
    worst = np.unravel_index(np.argmax(speed), speed.shape)
    checks.append(Check("joint speeds under the servo limit", bool(speed.max() <= robot.desc.max_joint_speed),
                        f"{speed.max():.1f} rad/s", f"limit {robot.desc.max_joint_speed:g} rad/s; worst "
                                                     f"{names[worst[1]]} at frame {worst[0]}"))

    dyn = inverse_dynamics(robot, qpos, qvel, clip.fps, contact, points, limits.friction)
    # accelerations within two frames of either end lean on one-sided differences: judged on the others
    inner = slice(2, -2) if clip.num_frames > 8 else slice(None)
    tau = np.abs(dyn["torques"][inner])
    within = np.all(tau <= robot.torque_limit, axis=1)
    worst = np.unravel_index(np.argmax(tau / robot.torque_limit), tau.shape)
    checks.append(Check(TORQUE_CHECK, bool(within.mean() >= limits.torque_share),
                        f"{100 * within.mean():.1f} % of frames, peak {tau.max():.2f} N m",
                        f"limit {robot.torque_limit.max():g} N m on {100 * limits.torque_share:g} % of frames; peak "
                        f"{names[worst[1]]} at frame {worst[0] + (inner.start or 0)}"))
    inside = dyn["zmp_margin"][inner] >= limits.zmp_margin
    checks.append(Check("ZMP inside the support polygon", bool(inside.mean() >= limits.zmp_share),
                        f"{100 * inside.mean():.1f} % of frames, min margin {1000 * np.min(dyn['zmp_margin'][inner]):.0f} mm",
                        f"{100 * limits.zmp_share:g} % of frames within {1000 * -limits.zmp_margin:g} mm"))

    slide, sink = 0.0, -points[..., 2].min() + min(robot.home_sole_height, 0.0)
    for k in range(contact.shape[1]):
        for a, b in _phases(contact[:, k] > 0.5):
            if b - a < 2:
                continue
            drift = np.linalg.norm(points[a:b, k, :, :2] - points[a, k, :, :2], axis=-1)
            slide = max(slide, float(drift.max()))
    checks.append(Check(SLIDE_CHECK, bool(slide <= limits.slide), f"{1000 * slide:.1f} mm",
                        f"a stance sole point may move {1000 * limits.slide:g} mm"))
    checks.append(Check("feet do not sink into the floor", bool(sink <= limits.sink), f"{1000 * max(sink, 0):.1f} mm",
                        f"below the home pose's own {1000 * -robot.home_sole_height:.1f} mm, at most "
                        f"{1000 * limits.sink:g} mm"))
    swings = [points[a:b, k, :, 2].min(axis=-1).max() for k in range(contact.shape[1])
              for a, b in _phases(contact[:, k] < 0.5)]
    low = min(swings) if swings else np.inf
    checks.append(Check("swing feet clear the floor", bool(low >= limits.clearance) if swings else True,
                        f"{1000 * low:.0f} mm" if swings else "no swing",
                        f"each swing lifts the sole's lowest point at least {1000 * limits.clearance:g} mm"))

    descriptors = gait_descriptors(qpos, clip.fps, contact, points, robot.root_qpos, loop=clip.loop)
    if clip.command is not None:
        vx, vy, wz = clip.command
        ev = np.hypot(descriptors["speed_vx"] - vx, descriptors["speed_vy"] - vy)
        ew = abs(descriptors["turning_rate"] - wz)
        ok = ev <= limits.speed_error and ew <= limits.yaw_rate_error
        checks.append(Check("realises its command", bool(ok),
                            f"vx {descriptors['speed_vx']:+.3f} vy {descriptors['speed_vy']:+.3f} m/s, "
                            f"yaw {descriptors['turning_rate']:+.3f} rad/s",
                            f"command {vx:+.2f} {vy:+.2f} {wz:+.2f}; allowed error {limits.speed_error:g} m/s, "
                            f"{limits.yaw_rate_error:g} rad/s"))
    descriptors["torque_peak"] = float(tau.max())
    descriptors["stance_slide"] = slide  # m, the farthest a stance sole point moved in one stance
    series = {"torques": dyn["torques"], "zmp_margin": dyn["zmp_margin"], "contact": contact,
              "sole_height": points[..., 2].min(axis=-1)}
    return Report(clip=clip.name, checks=checks, descriptors=descriptors, series=series)
