"""A policy's gait next to reference clips: the imitation metrics between its joint trajectory and a
clip's (dynamic time warping, discrete Fréchet distance, per-joint RMS after phase alignment) and
the gait descriptors of both. Used by ``wildrobot.eval --reference``, by ``algo=ppo_amp`` at each
evaluation, and by ``bench/learn_walk.py``."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from wildrobot.motions.checks import Limits, contacts, gait_descriptors, kinematics
from wildrobot.motions.clip import Clip
from wildrobot.motions.loader import resample
from wildrobot.motions.metrics import aligned_rms, dtw_distance, frechet_distance
from wildrobot.motions.model import RobotModel

SETTLE_S = 1.0  # the start of an episode (from standing) is left out of the comparison


def nearest_clip(clips: Sequence[Clip], command: np.ndarray, tolerance: float = 0.05) -> Optional[Clip]:
    """The clip whose command is nearest ``command``, if within ``tolerance``."""
    candidates = [c for c in clips if c.command is not None]
    if not candidates:
        return None
    clip = min(candidates, key=lambda c: float(np.linalg.norm(c.command - command)))
    return clip if np.linalg.norm(clip.command - command) <= tolerance else None


def compare_with_clip(qpos: np.ndarray, fps: float, clip: Clip, robot: RobotModel) -> Optional[dict]:
    """``qpos`` (T, nq): one episode of a policy at ``fps`` (its frames while standing; the first
    ``SETTLE_S`` are skipped) next to ``clip`` (looped to the same length); None when too short."""
    qpos = qpos[int(SETTLE_S * fps):]
    if len(qpos) < 10:
        return None
    reference = resample(clip, fps)
    ref_qpos = robot.qpos(reference)
    window = min(len(qpos), 2 * reference.num_frames)
    policy_joints = qpos[:window, robot.qpos_idx]
    looped = np.tile(reference.joint_pos, (int(np.ceil(window / reference.num_frames)), 1))[:window]
    rms, _ = aligned_rms(policy_joints, reference.joint_pos)
    points = kinematics(robot, qpos)["points"]
    mine = gait_descriptors(qpos, fps, contacts(points, Limits()), points, robot.root_qpos)
    ref_points = kinematics(robot, ref_qpos)["points"]
    theirs = gait_descriptors(ref_qpos, fps, contacts(ref_points, Limits(), reference.foot_contact), ref_points,
                              robot.root_qpos, loop=reference.loop)
    return {"reference": clip.name, "dtw": dtw_distance(policy_joints, looped),
            "frechet": frechet_distance(policy_joints, looped), "joint_rms": float(rms.mean()),
            "joint_rms_per_joint": dict(zip(robot.desc.joint_names, map(float, rms))),
            "policy": mine, "reference_gait": theirs}


def summarize(rows: Sequence[dict]) -> dict[str, float]:
    """Mean DTW over the compared commands, and the mean policy / reference ratio of cadence, stride
    length and swing clearance over the walking ones (a reference with vx > 0)."""
    walking = [r for r in rows if r["command"][0] > 0]

    def ratio(key: str) -> float:
        values = [r["policy"][key] / r["reference_gait"][key] for r in walking if r["reference_gait"][key]]
        return float(np.mean(values)) if values else float("nan")

    return {"dtw": float(np.mean([r["dtw"] for r in rows])) if rows else float("nan"),
            "cadence_ratio": ratio("cadence"), "stride_ratio": ratio("stride_length"),
            "clearance_ratio": ratio("swing_clearance")}
