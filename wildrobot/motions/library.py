"""A library of generated walking clips: one per command of a grid, each checked, written only if
it passes, with a ``manifest.yaml`` of what was written (the ``generate`` command)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Optional, Sequence

from wildrobot.motions.clip import MotionError, save_clip, write_manifest
from wildrobot.motions.generator import GaitSettings

DEFAULT_VX = (0.0, 0.1, 0.2, 0.3, 0.4)
DEFAULT_YAW = (-0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5)
DEFAULT_LATERAL = ((0.0, 0.1, 0.0), (0.0, -0.1, 0.0), (0.2, 0.1, 0.0), (0.2, -0.1, 0.0))
# A clip that breaks the servos' torque limit is tried again as a faster walk: a shorter double
# support (5 % of a step) and a swing whose acceleration is bounded (docs/motions.md, "Faster walks")
FASTER = {"double_support": 0.05, "swing_ramp": 0.05}


def default_grid() -> list[tuple[float, float, float]]:
    """Forward speed x turning rate (standing still among them), and sideways steps."""
    grid = [(vx, 0.0, yaw) for vx in DEFAULT_VX for yaw in DEFAULT_YAW]
    return grid + [c for c in DEFAULT_LATERAL if c not in grid]


@dataclass
class Generated:
    command: tuple[float, float, float]
    file: Optional[str]  # the clip's file name, or None when the command was not realised
    why: str = ""  # what failed, when not realised
    descriptors: dict = field(default_factory=dict)
    faster: bool = False  # realised with the FASTER settings


def faster_settings(settings: GaitSettings) -> GaitSettings:
    """The settings of the second try at a clip that needs more torque than the servos have."""
    return replace(settings, **FASTER)


_WORKER: dict = {}


def generate_one(command: Sequence[float], settings: GaitSettings, out: str | Path,
                 robot: Optional[str] = None) -> Generated:
    """Generate, check and (if it passes) write the clip of one command. A clip over the servos'
    torque limit is tried again as a faster walk (``FASTER``). Walkers are built once per process
    and settings."""
    from wildrobot.motions.checks import TORQUE_CHECK, check_clip
    from wildrobot.motions.generator import Walker, generate_clip
    from wildrobot.motions.model import RobotModel
    from wildrobot.robot.description import load_robot_description

    if _WORKER.get("robot_path", "unset") != robot:
        desc = load_robot_description(robot)
        _WORKER.update(robot_path=robot, desc=desc, robot=RobotModel(desc), walkers={})
    walkers = _WORKER["walkers"]
    command = tuple(float(c) for c in command)

    def attempt(s: GaitSettings):
        if s not in walkers:
            walkers[s] = Walker(_WORKER["desc"], s)
        try:
            clip = generate_clip(_WORKER["desc"], command, s, walker=walkers[s])
        except MotionError as e:
            return None, str(e), None
        report = check_clip(clip, _WORKER["robot"])
        return clip, "; ".join(f"{c.name}: {c.value}" for c in report.failures), report

    clip, why, report = attempt(settings)
    faster = False
    over_torque = report is not None and any(c.name == TORQUE_CHECK for c in report.failures)
    if over_torque and faster_settings(settings) != settings:
        clip2, why2, report2 = attempt(faster_settings(settings))
        if report2 is not None and report2.passed:
            clip, why, report, faster = clip2, "", report2, True
        else:
            why += f" (as a faster walk: {why2})"
    if report is None or not report.passed:
        if command[2] and "stance feet do not slide" in why:
            pivot = abs(command[2]) * settings.step_time * (1 + settings.double_support)
            why += (f" (without a hip yaw the robot turns by pivoting each stance sole about its centre, "
                    f"{pivot:.3f} rad a stance here: a faster turn than the check allows needs a sliding foot)")
        return Generated(command, None, why, report.descriptors if report is not None else {})
    return Generated(command, save_clip(Path(out) / f"{clip.name}.npz", clip).name, "", report.descriptors, faster)


def _job(args: tuple) -> Generated:
    return generate_one(*args)


def generate_library(out: str | Path, grid: Sequence[Sequence[float]], settings: GaitSettings = GaitSettings(),
                     workers: int = 1, robot: Optional[str] = None) -> list[Generated]:
    """Every command of ``grid`` generated into ``out`` (in ``workers`` processes), and the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(tuple(c), settings, str(out), robot) for c in grid]
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_job, jobs))
    else:
        results = [_job(j) for j in jobs]
    written = sorted(r.file for r in results if r.file)
    if written:
        write_manifest(out, [(name, 1.0) for name in written])
    return results
