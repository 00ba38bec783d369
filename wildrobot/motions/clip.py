"""The reference-motion format: one clip per ``.npz`` file, readable with
``numpy.load(path, allow_pickle=False)``; a dataset is a folder of clips or a YAML manifest.

Fields of a clip file (docs/motions.md):

| key | shape | meaning |
|---|---|---|
| ``format`` | () str | ``wildrobot-motion/1`` |
| ``joint_names`` | (J,) str | the joints of ``joint_pos``, in the file's order |
| ``fps`` | () float | frames per second |
| ``root_pos`` | (T, 3) | the root body's position, metres, world frame (z up) |
| ``root_quat`` | (T, 4) | the root body's orientation, in ``quat_order`` |
| ``quat_order`` | () str | ``wxyz`` (MuJoCo's, ours) or ``xyzw`` |
| ``joint_pos`` | (T, J) | joint angles, radians |
| ``joint_vel`` | (T, J) | optional: joint velocities, rad/s (else computed from ``joint_pos``) |
| ``foot_contact`` | (T, 2) | optional: 1 where the left / right foot is on the floor |
| ``command`` | (3,) | optional: the command the clip realises: vx, vy (m/s, heading frame), yaw rate (rad/s) |
| ``loop`` | () bool | whether the last frame runs on into the first (shifted by the clip's own displacement) |
"""

from __future__ import annotations

import dataclasses
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import yaml

FORMAT = "wildrobot-motion/1"
QUAT_ORDERS = ("wxyz", "xyzw")
REQUIRED = ("joint_names", "fps", "root_pos", "root_quat", "quat_order", "joint_pos")


class MotionError(ValueError):
    """A clip or dataset that cannot be used; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Clip:
    """One reference motion. ``root_quat`` is always (w, x, y, z) here, whatever the file held."""

    joint_names: tuple[str, ...]
    fps: float
    root_pos: np.ndarray  # (T, 3)
    root_quat: np.ndarray  # (T, 4) w, x, y, z
    joint_pos: np.ndarray  # (T, J) in joint_names order
    joint_vel: Optional[np.ndarray] = None  # (T, J)
    foot_contact: Optional[np.ndarray] = None  # (T, 2): left, right
    command: Optional[np.ndarray] = None  # (3,): vx, vy, yaw rate
    loop: bool = False
    name: str = ""
    quat_order: str = "wxyz"  # the order the source declared (root_quat is converted to w, x, y, z)

    @property
    def num_frames(self) -> int:
        return int(self.joint_pos.shape[0])

    def replace(self, **changes) -> "Clip":
        return dataclasses.replace(self, **changes)


def save_clip(path: str | Path, clip: Clip) -> Path:
    """Write ``clip`` as one ``.npz`` of plain arrays (no pickles), quaternions (w, x, y, z)."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {
        "format": np.array(FORMAT),
        "joint_names": np.array(clip.joint_names, dtype=str),
        "fps": np.array(float(clip.fps)),
        "root_pos": np.asarray(clip.root_pos, np.float64),
        "root_quat": np.asarray(clip.root_quat, np.float64),
        "quat_order": np.array("wxyz"),
        "joint_pos": np.asarray(clip.joint_pos, np.float64),
        "loop": np.array(bool(clip.loop)),
    }
    for key in ("joint_vel", "foot_contact", "command"):
        value = getattr(clip, key)
        if value is not None:
            fields[key] = np.asarray(value, np.float64)
    np.savez(path, **fields)
    return path


def read_clip(path: str | Path) -> Clip:
    """A clip file as stored (joints in the file's order; quaternions converted to w, x, y, z).
    Refuses pickles, object arrays and missing or malformed fields; the robot-dependent checks
    are ``wildrobot.motions.loader.load_clip``'s."""
    path = Path(path)
    if not path.is_file():
        raise MotionError(f"{path}: no such clip file")
    if not zipfile.is_zipfile(path):
        if path.read_bytes()[:1] == b"\x80":  # pickle's protocol marker
            raise MotionError(f"{path}: a pickle file, which is never loaded (unpickling runs code). Convert the "
                              f"motion to the .npz format of docs/motions.md (plain arrays and joint names).")
        raise MotionError(f"{path}: not a .npz clip (a zip of plain arrays; docs/motions.md)")
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {k: data[k] for k in data.files}
    except ValueError as e:  # numpy's refusal of an object array without pickle
        raise MotionError(f"{path}: holds a pickled (object) array, which is never loaded: {e}. Save every field "
                          f"as a plain numeric or string array (wildrobot.motions.save_clip, or "
                          f"`python -m wildrobot.motions convert` for JSON clips).") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise MotionError(f"{path}: not a readable .npz clip ({type(e).__name__}: {e})") from None
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise MotionError(f"{path}: missing field(s) {', '.join(missing)}; a clip needs {', '.join(REQUIRED)} "
                          f"(docs/motions.md)")
    for key, value in raw.items():
        if value.dtype.kind == "O":
            raise MotionError(f"{path}: field '{key}' is an object array; store plain arrays only")

    def numeric(key: str, ndim: int, width: Optional[int] = None) -> np.ndarray:
        value = raw[key]
        if value.dtype.kind not in "fiub" or value.ndim != ndim or (width is not None and value.shape[-1] != width):
            shape = "(T, %s)" % (width if width is not None else "J") if ndim == 2 else "a scalar" if ndim == 0 \
                else f"({width},)"
            raise MotionError(f"{path}: field '{key}' must be a numeric array of shape {shape}; got "
                              f"{value.dtype} {value.shape}")
        value = value.astype(np.float64)
        if not np.all(np.isfinite(value)):
            bad = np.argwhere(~np.isfinite(value))[0]
            raise MotionError(f"{path}: field '{key}' holds NaN or infinite values (first at index "
                              f"{tuple(int(i) for i in bad)}); repair or cut those frames")
        return value

    names = raw["joint_names"]
    if names.dtype.kind not in "US" or names.ndim != 1:
        raise MotionError(f"{path}: 'joint_names' must be a 1-D string array; got {names.dtype} {names.shape}")
    names = tuple(str(n) for n in names)
    if len(set(names)) != len(names):
        raise MotionError(f"{path}: joint_names repeats a name: {sorted(n for n in set(names) if names.count(n) > 1)}")
    order = str(raw["quat_order"])
    if order not in QUAT_ORDERS:
        raise MotionError(f"{path}: quat_order {order!r} is not one of {', '.join(QUAT_ORDERS)} (MuJoCo's is wxyz)")
    fps = float(numeric("fps", 0))
    if not fps > 0:
        raise MotionError(f"{path}: fps must be > 0; got {fps}")
    joint_pos = numeric("joint_pos", 2, len(names))
    root_pos, root_quat = numeric("root_pos", 2, 3), numeric("root_quat", 2, 4)
    frames = joint_pos.shape[0]
    if frames < 2 or root_pos.shape[0] != frames or root_quat.shape[0] != frames:
        raise MotionError(f"{path}: joint_pos, root_pos and root_quat must have the same number of frames (>= 2); "
                          f"got {joint_pos.shape[0]}, {root_pos.shape[0]}, {root_quat.shape[0]}")
    if order == "xyzw":
        root_quat = root_quat[:, [3, 0, 1, 2]]
    optional = {}
    if "joint_vel" in raw:
        optional["joint_vel"] = numeric("joint_vel", 2, len(names))
    if "foot_contact" in raw:
        optional["foot_contact"] = numeric("foot_contact", 2, 2)
    if "command" in raw:
        optional["command"] = numeric("command", 1, 3)
    for key in ("joint_vel", "foot_contact"):
        if key in optional and optional[key].shape[0] != frames:
            raise MotionError(f"{path}: '{key}' has {optional[key].shape[0]} frames, joint_pos {frames}")
    return Clip(joint_names=names, fps=fps, root_pos=root_pos, root_quat=root_quat, joint_pos=joint_pos,
                loop=bool(raw["loop"]) if "loop" in raw else False, name=path.stem, quat_order=order, **optional)


def dataset_files(path: str | Path) -> list[tuple[Path, float]]:
    """(clip file, weight) of a dataset: one ``.npz``, a folder of them (weight 1 each), or a YAML
    manifest ``clips: [{path: ..., weight: ...}, ...]`` (paths relative to the manifest)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        manifest = path / "manifest.yaml"
        if manifest.is_file():
            return dataset_files(manifest)
        if not files:
            raise MotionError(f"{path}: no .npz clips in this folder (and no manifest.yaml)")
        return [(f, 1.0) for f in files]
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise MotionError(f"{path}: no such manifest")
        try:
            spec = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise MotionError(f"{path}: not valid YAML: {e}") from None
        entries = spec.get("clips") if isinstance(spec, dict) else None
        if not isinstance(entries, list) or not entries:
            raise MotionError(f"{path}: a manifest is `clips:` followed by a list of `- path: <clip.npz>` entries "
                              f"(each with an optional `weight:`)")
        out = []
        for i, entry in enumerate(entries):
            entry = {"path": entry} if isinstance(entry, str) else entry
            if not isinstance(entry, dict) or "path" not in entry:
                raise MotionError(f"{path}: clip entry {i} has no 'path'")
            weight = float(entry.get("weight", 1.0))
            if not weight > 0:
                raise MotionError(f"{path}: clip entry {i} ({entry['path']}) has weight {weight}; weights must be > 0")
            out.append(((path.parent / entry["path"]).resolve(), weight))
        return out
    if path.suffix == ".npz" or path.is_file():
        return [(path, 1.0)]
    raise MotionError(f"{path}: no such clip, folder or manifest")


def write_manifest(folder: str | Path, clips: list[tuple[str, float]]) -> Path:
    """``manifest.yaml`` in ``folder`` listing (file name, weight)."""
    path = Path(folder) / "manifest.yaml"
    path.write_text(yaml.safe_dump({"clips": [{"path": name, "weight": float(w)} for name, w in clips]},
                                   sort_keys=False))
    return path
