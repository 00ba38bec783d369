"""Loading reference clips for a robot: joints mapped by name onto the robot description's actuator
order, every refusal with a message that says what is wrong and how to fix it, and resampling to
the env's control rate (joints by cubic spline, orientations by slerp).

Refused: a pickled or object array, a missing field, NaN or infinite values (``clip.read_clip``);
joints the robot lacks or robot joints the clip lacks; a non-unit quaternion; a quaternion order
that contradicts the data; joint values outside the robot's ranges; joint velocities that disagree
with the positions (and what fps would make them agree); a wrong or missing fps.
"""

from __future__ import annotations

from pathlib import Path
import numpy as np
import scipy.interpolate
from scipy.spatial.transform import Rotation, Slerp

from wildrobot.motions.clip import Clip, MotionError, dataset_files, read_clip
from wildrobot.robot.description import RobotDescription

QUAT_NORM_TOLERANCE = 0.01  # |1 - |q|| allowed (then normalised)
RANGE_TOLERANCE = 0.02  # rad a joint may stand outside its range (rounding, retargeting noise)
UPRIGHT = 0.5  # the root's up axis must point at least this much up, on average (cos 60 degrees)


def map_joints(clip: Clip, desc: RobotDescription, ignore_extra_joints: bool = False) -> Clip:
    """The clip with its joints in the robot description's order, whatever order the file has."""
    robot, have = list(desc.joint_names), list(clip.joint_names)
    missing = [j for j in robot if j not in have]
    extra = [j for j in have if j not in robot]
    if missing:
        instead = f"; the clip has instead: {', '.join(extra)}" if extra else ""
        raise MotionError(f"{clip.name}: the clip lacks the robot's joint(s) {', '.join(missing)} (robot "
                          f"'{desc.name}' has {', '.join(robot)}){instead}. Rename the clip's joints to the robot "
                          f"description's names (convert --joints), or retarget the motion to this robot.")
    if extra and not ignore_extra_joints:
        raise MotionError(f"{clip.name}: the clip has joint(s) the robot lacks: {', '.join(extra)}. Rename them "
                          f"to the robot description's names, or pass ignore_extra_joints (motions: "
                          f"--ignore-extra-joints) to drop them.")
    order = [have.index(j) for j in robot]
    return clip.replace(joint_names=tuple(robot), joint_pos=clip.joint_pos[:, order],
                        joint_vel=None if clip.joint_vel is None else clip.joint_vel[:, order])


def _up(q: np.ndarray) -> np.ndarray:
    """z of the body's z axis in the world, for (w, x, y, z)."""
    return 1 - 2 * (q[:, 1] ** 2 + q[:, 2] ** 2)


def _forward_speed(q: np.ndarray, root_pos: np.ndarray, fps: float) -> float:
    """Mean velocity along the body's own heading (its x axis projected on the floor)."""
    yaw = np.arctan2(2 * (q[:, 0] * q[:, 3] + q[:, 1] * q[:, 2]), 1 - 2 * (q[:, 2] ** 2 + q[:, 3] ** 2))
    v = np.gradient(root_pos[:, :2], 1.0 / fps, axis=0)
    return float(np.mean(np.cos(yaw) * v[:, 0] + np.sin(yaw) * v[:, 1]))


def _other_reading(clip: Clip, quat: np.ndarray) -> tuple[str, np.ndarray]:
    """(the other quaternion order, the source's numbers read in it as (w, x, y, z)), for ``quat``
    (the clip's quaternions as read under its declared order, unit norm)."""
    if clip.quat_order == "wxyz":
        return "xyzw", quat[:, [3, 0, 1, 2]]
    return "wxyz", quat[:, [1, 2, 3, 0]]


def check_quaternions(clip: Clip) -> Clip:
    """Refuse non-unit quaternions and an order that contradicts the data; normalise the rest.

    The data contradicts the declared order when the root's up axis points sideways or down under
    it but up under the other order, or (heading-only rotations read either way stay upright: the
    identity read in the other order is a half turn about z) when the clip's command walks forward
    but the robot moves backwards along its own heading under the declared order and forwards under
    the other."""
    norm = np.linalg.norm(clip.root_quat, axis=-1)
    bad = np.abs(norm - 1.0) > QUAT_NORM_TOLERANCE
    if bad.any():
        i = int(np.argmax(bad))
        raise MotionError(f"{clip.name}: root_quat at frame {i} has norm {norm[i]:.4f}, not 1: not a rotation "
                          f"quaternion (or not four quaternion components: check the columns)")
    quat = clip.root_quat / norm[:, None]
    other_order, other = _other_reading(clip, quat)
    fix = (f"The file almost certainly stores {', '.join(other_order)}: set quat_order to '{other_order}' "
           f"(convert --quat-order {other_order}).")
    if _up(quat).mean() < UPRIGHT:
        if _up(other).mean() >= UPRIGHT:
            raise MotionError(f"{clip.name}: under its declared quaternion order ({clip.quat_order}) the robot's root "
                              f"points sideways or down (mean up-axis z {_up(quat).mean():+.2f}); read as "
                              f"{other_order} it stands upright ({_up(other).mean():+.2f}). {fix}")
        raise MotionError(f"{clip.name}: the robot's root is not upright in this clip (mean up-axis z "
                          f"{_up(quat).mean():+.2f}) under either quaternion order; a walking clip needs an "
                          f"upright root (check root_quat)")
    if clip.command is not None and clip.command[0] > 0.05 and _up(other).mean() >= UPRIGHT:
        mine, theirs = (_forward_speed(q, clip.root_pos, clip.fps) for q in (quat, other))
        if mine < -0.02 and theirs > 0.02:
            raise MotionError(f"{clip.name}: its command walks forward (vx {clip.command[0]:+.2f} m/s), but under its "
                              f"declared quaternion order ({clip.quat_order}) the robot moves backwards along its own "
                              f"heading ({mine:+.2f} m/s; read as {other_order}: {theirs:+.2f} m/s). {fix}")
    return clip.replace(root_quat=quat)


def quaternion_order_note(clip: Clip, converted_from: str | None = None) -> str | None:
    """For a clip without a command (which ``check_quaternions`` cannot hold its motion against): a
    note when, under its quaternion order, the robot moves backwards along its own heading while
    read in the other order it walks forwards: the sign of a (half-turn) misread order, or a clip
    that really walks backwards. None otherwise."""
    if clip.command is not None:
        return None
    quat = clip.root_quat / np.linalg.norm(clip.root_quat, axis=-1, keepdims=True)  # (w, x, y, z) as read
    other_order, other = _other_reading(clip, quat)
    if _up(other).mean() < UPRIGHT:
        return None
    mine, theirs = (_forward_speed(q, clip.root_pos, clip.fps) for q in (quat, other))
    if mine < -0.05 and theirs > 0.05:
        if converted_from:  # the source file and the order it was read in are known
            fix = (f"its source stores {other_order}: convert it again with --quat-order {other_order} --force")
        else:  # a stored clip: its numbers are (w, x, y, z) now, whatever order the source had
            fix = ("its quaternions were probably converted from the other order than their source's: convert the "
                   "source again with the other --quat-order (and --force)")
        return (f"{clip.name}: the robot moves backwards along its own heading ({mine:+.2f} m/s) under the quaternion "
                f"order it was read with ({clip.quat_order}); read in the other order it walks forwards "
                f"({theirs:+.2f} m/s). Unless the clip walks backwards, {fix} (a misread order turns the body half "
                f"round, so its feet slide).")
    return None


def check_ranges(clip: Clip, desc: RobotDescription, tolerance: float = RANGE_TOLERANCE) -> None:
    lo, hi = np.asarray(desc.joint_range).T
    beyond = np.maximum(clip.joint_pos - hi, lo - clip.joint_pos)
    if beyond.max() > tolerance:
        t, j = np.unravel_index(np.argmax(beyond), beyond.shape)
        raise MotionError(f"{clip.name}: joint {desc.joint_names[j]} is {clip.joint_pos[t, j]:.3f} rad at frame {t}, "
                          f"outside its range {lo[j]:.3f}..{hi[j]:.3f} by {beyond[t, j]:.3f} rad (tolerance "
                          f"{tolerance:g}). Degrees instead of radians, a sign convention or an offset differs "
                          f"from the robot description's.")


def finite_difference(x: np.ndarray, fps: float) -> np.ndarray:
    return np.gradient(x, 1.0 / fps, axis=0)


def check_velocities(clip: Clip) -> None:
    """Given joint velocities must agree with the positions; if a factor would make them agree, the fps
    is probably wrong and the message says which fps fits."""
    if clip.joint_vel is None:
        return
    inner = slice(2, -2) if clip.num_frames > 8 else slice(None)  # the ends' differences are one-sided
    derived = finite_difference(clip.joint_pos, clip.fps)[inner]
    given = clip.joint_vel[inner]
    scale = np.sqrt(np.mean(derived ** 2)) + 1e-9
    error = np.sqrt(np.mean((given - derived) ** 2)) / scale
    if scale < 1e-6 or error <= 0.25:
        return
    ratio = float(np.sum(given * derived) / np.sum(derived ** 2))
    hint = ""
    if ratio > 0 and np.sqrt(np.mean((given - ratio * derived) ** 2)) / (abs(ratio) * scale) <= 0.25:
        hint = (f" They agree if the clip runs at about {clip.fps * ratio:.0f} fps rather than the {clip.fps:g} it "
                f"declares: fix fps.")
    raise MotionError(f"{clip.name}: joint_vel disagrees with the rate of change of joint_pos (relative RMS error "
                      f"{error:.2f}).{hint or ' Recompute joint_vel, or drop it (it is then derived).'}")


def load_clip(source: str | Path | Clip, desc: RobotDescription, ignore_extra_joints: bool = False) -> Clip:
    """A validated clip in the robot description's joint order (joint velocities filled in)."""
    clip = read_clip(source) if not isinstance(source, Clip) else source
    if not (np.isfinite(clip.fps) and clip.fps > 0):
        raise MotionError(f"{clip.name}: fps must be a positive number; got {clip.fps}")
    clip = map_joints(clip, desc, ignore_extra_joints)
    clip = check_quaternions(clip)
    check_ranges(clip, desc)
    check_velocities(clip)
    if clip.joint_vel is None:
        clip = clip.replace(joint_vel=finite_difference(clip.joint_pos, clip.fps))
    return clip


def load_dataset(path: str | Path, desc: RobotDescription,
                 ignore_extra_joints: bool = False) -> list[tuple[Clip, float]]:
    """Every clip of a dataset (a clip, a folder, or a manifest) with its weight, validated; the first
    bad clip stops the load with its message."""
    return [(load_clip(f, desc, ignore_extra_joints), w) for f, w in dataset_files(path)]


def resample(clip: Clip, fps: float) -> Clip:
    """The clip at ``fps``: joint angles and root position by cubic spline (their velocities by its
    derivative), the root orientation by slerp. Over the same time span; a loop keeps looping."""
    if abs(fps - clip.fps) < 1e-9:
        return clip
    t = np.arange(clip.num_frames) / clip.fps
    count = int(np.floor(t[-1] * fps + 1e-9)) + 1
    new_t = np.arange(count) / fps
    joints = scipy.interpolate.CubicSpline(t, clip.joint_pos, axis=0)
    root = scipy.interpolate.CubicSpline(t, clip.root_pos, axis=0)
    rot = Slerp(t, Rotation.from_quat(clip.root_quat[:, [1, 2, 3, 0]]))(new_t).as_quat()
    contact = None
    if clip.foot_contact is not None:
        nearest = np.clip(np.round(new_t * clip.fps).astype(int), 0, clip.num_frames - 1)
        contact = clip.foot_contact[nearest]
    return clip.replace(fps=float(fps), root_pos=root(new_t), root_quat=rot[:, [3, 0, 1, 2]],
                        joint_pos=joints(new_t), joint_vel=joints(new_t, 1), foot_contact=contact)
