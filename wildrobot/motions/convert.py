"""Importing the JSON clips of the small-biped community: AMP_for_hardware's ``Frames`` /
``FrameDuration`` files and the Open Duck reference-motion generator's output (``FPS``,
``Joints``, ``Frame_offset``). Each frame is a flat list: root position (3), root quaternion (4),
joint angles (J), then other fields; ``Frame_offset`` says where each field starts when the file
has it. The quaternion order is never guessed: Open Duck's generator writes scipy's ``as_quat()``
(x, y, z, w) while its comment says w, x, y, z, so the order is an argument, and the loader then
checks that the robot stands upright under it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from wildrobot.motions.clip import QUAT_ORDERS, Clip, MotionError


def _offsets(spec: dict, joints: int) -> dict[str, int]:
    offsets = spec.get("Frame_offset")
    if isinstance(offsets, list):
        offsets = offsets[0] if offsets else None
    if isinstance(offsets, dict):
        return {str(k): int(v) for k, v in offsets.items()}
    # AMP_for_hardware's layout: root position, root rotation, joint positions, ...
    return {"root_pos": 0, "root_quat": 3, "joints_pos": 7}


def convert_json(path: str | Path, quat_order: str, joint_names: Optional[Sequence[str]] = None,
                 fps: Optional[float] = None) -> Clip:
    """The clip in a community JSON file (joints in the file's order, quaternions converted to w, x, y, z)."""
    path = Path(path)
    if quat_order not in QUAT_ORDERS:
        raise MotionError(f"--quat-order must be one of {', '.join(QUAT_ORDERS)}; got {quat_order!r}")
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise MotionError(f"{path}: not a readable JSON clip ({e})") from None
    frames = spec.get("Frames") if isinstance(spec, dict) else None
    if not isinstance(frames, list) or not frames:
        raise MotionError(f"{path}: no 'Frames' list (a JSON clip holds one flat list of numbers per frame)")
    try:
        data = np.asarray(frames, np.float64)
    except (TypeError, ValueError):
        raise MotionError(f"{path}: 'Frames' must be lists of numbers of equal length") from None
    if data.ndim != 2:
        raise MotionError(f"{path}: 'Frames' must be lists of numbers of equal length")
    names = list(joint_names) if joint_names else [str(n) for n in spec.get("Joints", [])]
    if not names:
        raise MotionError(f"{path}: the file names no joints ('Joints'); give their names in file order with "
                          f"--joints name1,name2,...")
    if fps is None:
        if "FPS" in spec:
            fps = float(spec["FPS"])
        elif "FrameDuration" in spec and float(spec["FrameDuration"]) > 0:
            fps = 1.0 / float(spec["FrameDuration"])
        else:
            raise MotionError(f"{path}: the file gives no frame rate (FPS or FrameDuration); pass --fps")
    offsets = _offsets(spec, len(names))
    for key in ("root_pos", "root_quat", "joints_pos"):
        if key not in offsets:
            raise MotionError(f"{path}: Frame_offset has no '{key}'")
    j = len(names)
    end = offsets["joints_pos"] + j
    if data.shape[1] < end:
        raise MotionError(f"{path}: frames have {data.shape[1]} numbers, but root (7) and {j} joints need {end}: "
                          f"the joint list does not match the frames")
    quat = data[:, offsets["root_quat"]:offsets["root_quat"] + 4]
    if quat_order == "xyzw":
        quat = quat[:, [3, 0, 1, 2]]
    extra = {}
    if "joints_vel" in offsets and data.shape[1] >= offsets["joints_vel"] + j:
        extra["joint_vel"] = data[:, offsets["joints_vel"]:offsets["joints_vel"] + j]
    if "foot_contacts" in offsets and data.shape[1] >= offsets["foot_contacts"] + 2:
        extra["foot_contact"] = data[:, offsets["foot_contacts"]:offsets["foot_contacts"] + 2]
    command = [spec.get(k) for k in ("Vel_x", "Vel_y", "Yaw")]
    if all(isinstance(c, (int, float)) for c in command):
        extra["command"] = np.asarray(command, np.float64)
    return Clip(joint_names=tuple(names), fps=float(fps), root_pos=data[:, offsets["root_pos"]:offsets["root_pos"] + 3],
                root_quat=quat, joint_pos=data[:, offsets["joints_pos"]:end],
                loop=str(spec.get("LoopMode", "")).lower() == "wrap", name=path.stem, quat_order=quat_order, **extra)
