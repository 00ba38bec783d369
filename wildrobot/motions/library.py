"""A library of generated walking clips: one per command of a grid, each checked, written only if
it passes, with a ``manifest.yaml`` of what was written (the ``generate`` command)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from wildrobot.motions.clip import Clip, MotionError, save_clip, write_manifest
from wildrobot.motions.generator import GaitSettings

if TYPE_CHECKING:
    from wildrobot.motions.checks import Report

DEFAULT_VX = (0.0, 0.1, 0.2, 0.3, 0.4)
DEFAULT_YAW = (-0.5, -0.25, -0.2, -0.15, -0.1, 0.0, 0.1, 0.15, 0.2, 0.25, 0.5)
DEFAULT_LATERAL = ((0.0, 0.1, 0.0), (0.0, -0.1, 0.0), (0.2, 0.1, 0.0), (0.2, -0.1, 0.0))
# A clip that breaks the servos' torque limit is tried again as a faster walk: a shorter double
# support (5 % of a step) and a swing whose acceleration is bounded (docs/motions.md, "Faster walks")
FASTER = {"double_support": 0.05, "swing_ramp": 0.05}
# A turn whose stance soles pivot further than the slide check allows is tried again with shorter
# steps: a sole pivots by the turning rate times its stance time, so its points move in proportion
# to the step time (docs/motions.md, "Turning"). Tried longest first (the swing leg's torque grows
# as the steps shorten), each only where that proportion says the pivot can fit.
QUICKER_STEPS = (0.30, 0.25)


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
    step_time: Optional[float] = None  # realised with these shorter steps (QUICKER_STEPS), else the settings' own

    @property
    def variant(self) -> str:
        """How the realised clip's settings differ from those asked for ("" when they do not)."""
        parts = [f"with {self.step_time:.2f} s steps"] if self.step_time is not None else []
        if self.faster:
            parts.append(f"as a faster walk ({', '.join(f'{k} {v:g}' for k, v in FASTER.items())})")
        return ", ".join(parts)


def faster_settings(settings: GaitSettings) -> GaitSettings:
    """The settings of the second try at a clip that needs more torque than the servos have."""
    return replace(settings, **FASTER)


_WORKER: dict = {}


@dataclass
class _Try:
    """One planned clip of a command (and its faster walk, when the first broke the torque limit)."""

    clip: Optional[Clip]  # None when the plan failed
    why: str  # what failed
    report: Optional[Report]  # its checks, None when the plan failed
    faster: bool  # the clip is the faster walk's
    over_torque: bool  # the torque limit still breaks, as a faster walk too
    slid: bool  # a stance sole slid too far, in either attempt
    slide: float  # m: the smaller stance slide of the two attempts (inf when neither was checked)


def generate_one(command: Sequence[float], settings: GaitSettings, out: str | Path,
                 robot: Optional[str] = None) -> Generated:
    """Generate, check and (if it passes) write the clip of one command. A clip over the servos'
    torque limit is tried again as a faster walk (``FASTER``); a turn whose stance soles slide, with
    shorter steps (``QUICKER_STEPS``, each also as a faster walk). Walkers are built once per process
    and settings."""
    from wildrobot.motions.checks import SLIDE_CHECK, TORQUE_CHECK, Limits, check_clip
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

    def failed(report, name: str) -> bool:
        return report is not None and any(c.name == name for c in report.failures)

    def with_faster(s: GaitSettings) -> _Try:
        """An attempt with ``s`` and, when it breaks the torque limit, one as a faster walk."""
        clip, why, report = attempt(s)
        slide = report.descriptors["stance_slide"] if report is not None else float("inf")
        if not failed(report, TORQUE_CHECK):
            return _Try(clip, why, report, False, False, failed(report, SLIDE_CHECK), slide)
        if faster_settings(s) == s:
            return _Try(clip, why, report, False, True, failed(report, SLIDE_CHECK), slide)
        clip2, why2, report2 = attempt(faster_settings(s))
        if report2 is not None and report2.passed:
            return _Try(clip2, "", report2, True, False, False, report2.descriptors["stance_slide"])
        if report2 is not None:  # the faster walk's shorter double support pivots the soles less
            slide = min(slide, report2.descriptors["stance_slide"])
        return _Try(clip, why + f" (as a faster walk: {why2})", report, False, failed(report2, TORQUE_CHECK),
                    failed(report, SLIDE_CHECK) or failed(report2, SLIDE_CHECK), slide)

    first = with_faster(settings)
    clip, why, report, faster, step_time = first.clip, first.why, first.report, first.faster, None
    if report is not None and not report.passed and command[2] and first.slid:
        limit = Limits().slide
        shorter = [t for t in QUICKER_STEPS if t < settings.step_time]
        # a sole's pivot, and with it the slide, scales with the stance time, i.e. the step time
        fits = [] if first.over_torque else [t for t in shorter if first.slide * t / settings.step_time <= limit]
        last = None
        for t in fits:
            last = with_faster(replace(settings, step_time=t))
            if last.report is not None and last.report.passed:
                clip, why, report, faster, step_time = last.clip, "", last.report, last.faster, t
                break
            why += f" (with {t:.2f} s steps: {last.why})"
            if last.over_torque:  # still shorter steps would need still more torque
                break
        kept_within = last is not None and last.report is not None and not last.slid
        if step_time is None and not kept_within:
            pivot = abs(command[2]) * settings.step_time * (1 + settings.double_support)
            why += (f" (without a hip yaw the robot turns by pivoting each stance sole about its centre, "
                    f"{pivot:.3f} rad a stance here: a faster turn than the check allows needs a sliding foot")
            if shorter and first.over_torque:
                why += "; shorter steps, which need more torque, not tried"
            elif shorter and not fits:
                why += (f"; with {min(shorter):.2f} s steps, the shortest of the quicker steps, its points would "
                        f"still move about {1000 * first.slide * min(shorter) / settings.step_time:.1f} mm")
            why += ")"
        elif step_time is None:
            why += " (quicker steps keep the stance soles within the slide check here, but fail the checks above)"
    if report is None or not report.passed:
        return Generated(command, None, why, report.descriptors if report is not None else {})
    return Generated(command, save_clip(Path(out) / f"{clip.name}.npz", clip).name, "", report.descriptors,
                     faster, step_time)


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
