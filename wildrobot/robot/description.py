"""The robot description: one typed object read from ``description.yaml``.

The env, the motion tools and the policy exporter take a ``RobotDescription``; none of them
hard-codes a joint name, an index or a sign. Angles are radians here (degrees in the YAML).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

DEFAULT_DESCRIPTION = Path(__file__).with_name("description.yaml")


@dataclass(frozen=True)
class RobotDescription:
    name: str
    mjcf_path: str  # absolute path of the scene MJCF
    home_keyframe: str
    root_body: str
    torso_body: str
    imu_site: str
    max_joint_speed: float
    joint_names: tuple[str, ...]  # actuator order
    joint_range: tuple[tuple[float, float], ...]  # rad
    home: tuple[float, ...]  # rad
    hardware_signs: tuple[int, ...]
    action_scale: tuple[float, ...]  # rad per unit action
    foot_names: tuple[str, ...]
    foot_bodies: tuple[str, ...]
    foot_sites: tuple[str, ...]
    foot_geoms: tuple[tuple[str, ...], ...]
    mirror_pairs: tuple[tuple[str, str, int], ...]
    mirror_centre: tuple[tuple[str, int], ...]

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def joint_index(self, name: str) -> int:
        return self.joint_names.index(name)

    @property
    def mirror_permutation(self) -> np.ndarray:
        """perm, such that mirrored[i] = mirror_signs[i] * q[perm[i]]."""
        perm = np.arange(self.num_joints)
        for left, right, _ in self.mirror_pairs:
            i, j = self.joint_index(left), self.joint_index(right)
            perm[i], perm[j] = j, i
        return perm

    @property
    def mirror_signs(self) -> np.ndarray:
        signs = np.ones(self.num_joints, np.float32)
        for left, right, s in self.mirror_pairs:
            signs[self.joint_index(left)] = s
            signs[self.joint_index(right)] = s
        for joint, s in self.mirror_centre:
            signs[self.joint_index(joint)] = s
        return signs

    def mirror_joints(self, q: np.ndarray) -> np.ndarray:
        """The left/right mirror image of joint values in actuator order (last axis)."""
        return np.asarray(q)[..., self.mirror_permutation] * self.mirror_signs


def _fail(path: Path, msg: str) -> None:
    raise ValueError(f"robot description {path}: {msg}")


def load_robot_description(path: str | Path | None = None) -> RobotDescription:
    """Read and check a description file; ``None`` gives the shipped 11-DOF WildRobot."""
    path = Path(path) if path is not None else DEFAULT_DESCRIPTION
    raw = yaml.safe_load(path.read_text())
    joints = raw["joints"]
    names = tuple(j["name"] for j in joints)
    if len(set(names)) != len(names):
        _fail(path, "duplicate joint names")
    for j in joints:
        lo, hi = j["range"]
        if not lo < hi:
            _fail(path, f"joint {j['name']}: range {j['range']} is empty")
        if not lo <= math.degrees(j["home"]) <= hi:
            _fail(path, f"joint {j['name']}: home {j['home']} rad lies outside its range")
        if j["sign"] not in (1, -1):
            _fail(path, f"joint {j['name']}: sign must be 1 or -1")
    mirror = raw.get("mirror", {})
    pairs = tuple((str(a), str(b), int(s)) for a, b, s in mirror.get("pairs", []))
    centre = tuple((str(a), int(s)) for a, s in mirror.get("centre", []))
    mirrored = [a for a, b, _ in pairs] + [b for a, b, _ in pairs] + [a for a, _ in centre]
    if sorted(mirrored) != sorted(names):
        _fail(path, "the mirror map must name every joint exactly once")
    mjcf = (path.parent / raw["mjcf"]).resolve()
    if not mjcf.exists():
        _fail(path, f"MJCF {mjcf} not found")
    feet = raw["feet"]
    return RobotDescription(
        name=str(raw["name"]),
        mjcf_path=str(mjcf),
        home_keyframe=str(raw["home_keyframe"]),
        root_body=str(raw["root_body"]),
        torso_body=str(raw["torso_body"]),
        imu_site=str(raw["imu_site"]),
        max_joint_speed=float(raw["max_joint_speed"]),
        joint_names=names,
        joint_range=tuple((math.radians(j["range"][0]), math.radians(j["range"][1])) for j in joints),
        home=tuple(float(j["home"]) for j in joints),
        hardware_signs=tuple(int(j["sign"]) for j in joints),
        action_scale=tuple(float(j["scale"]) for j in joints),
        foot_names=tuple(str(f["name"]) for f in feet),
        foot_bodies=tuple(str(f["body"]) for f in feet),
        foot_sites=tuple(str(f["site"]) for f in feet),
        foot_geoms=tuple(tuple(str(g) for g in f["geoms"]) for f in feet),
        mirror_pairs=pairs,
        mirror_centre=centre,
    )
