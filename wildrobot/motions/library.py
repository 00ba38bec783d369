"""A library of generated walking clips: one per command of a grid, each checked, written only if
it passes, with a ``manifest.yaml`` of what was written (the ``generate`` command)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Optional, Sequence

from wildrobot.motions.clip import MotionError, save_clip, write_manifest
from wildrobot.motions.generator import GaitSettings

DEFAULT_VX = (0.0, 0.1, 0.2, 0.3, 0.4)
DEFAULT_YAW = (-0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5)
DEFAULT_LATERAL = ((0.0, 0.1, 0.0), (0.0, -0.1, 0.0), (0.2, 0.1, 0.0), (0.2, -0.1, 0.0))


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


_WORKER: dict = {}


def generate_one(command: Sequence[float], settings: GaitSettings, out: str | Path,
                 robot: Optional[str] = None) -> Generated:
    """Generate, check and (if it passes) write the clip of one command; the Walker is built once
    per process."""
    from wildrobot.motions.checks import check_clip
    from wildrobot.motions.generator import Walker, generate_clip
    from wildrobot.motions.model import RobotModel
    from wildrobot.robot.description import load_robot_description

    key = (robot, settings)
    if _WORKER.get("key") != key:
        desc = load_robot_description(robot)
        _WORKER.update(key=key, desc=desc, walker=Walker(desc, settings), robot=RobotModel(desc))
    command = tuple(float(c) for c in command)
    try:
        clip = generate_clip(_WORKER["desc"], command, settings, walker=_WORKER["walker"])
    except MotionError as e:
        return Generated(command, None, str(e))
    report = check_clip(clip, _WORKER["robot"])
    if not report.passed:
        why = "; ".join(f"{c.name}: {c.value}" for c in report.failures)
        if command[2] and any(c.name == "stance feet do not slide" for c in report.failures):
            pivot = abs(command[2]) * settings.step_time * (1 + settings.double_support)
            why += (f" (without a hip yaw the robot turns by pivoting each stance sole about its centre, "
                    f"{pivot:.3f} rad a stance here: a faster turn than the check allows needs a sliding foot)")
        return Generated(command, None, why, report.descriptors)
    return Generated(command, save_clip(Path(out) / f"{clip.name}.npz", clip).name, "", report.descriptors)


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
