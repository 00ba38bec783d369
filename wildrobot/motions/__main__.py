"""Reference gaits: generate a library, check clips, show one, convert a JSON clip.

    uv run python -m wildrobot.motions generate --out motions/walk [--vx 0,0.1,...] [--vy ...] [--yaw ...]
    uv run python -m wildrobot.motions check motions/walk            (a folder, a manifest or one clip)
    uv run python -m wildrobot.motions show motions/walk/<clip>.npz  [--video PATH|none] [--png PATH]
    uv run python -m wildrobot.motions convert clip.json --quat-order xyzw|wxyz [--joints a,b,...] [--out X.npz]

See docs/motions.md for the format, the generator and the checks.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from wildrobot.motions.clip import MotionError, dataset_files, save_clip


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _robot(path: Optional[str]):
    from wildrobot.robot.description import load_robot_description

    return load_robot_description(path)


# -- generate --------------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    from wildrobot.motions.generator import GaitSettings
    from wildrobot.motions.library import default_grid, generate_library

    if args.vx is not None or args.vy is not None or args.yaw is not None:
        grid = [(vx, vy, yaw) for vx in (args.vx or [0.0]) for vy in (args.vy or [0.0]) for yaw in (args.yaw or [0.0])]
    else:
        grid = default_grid()
    given = {"step_time": args.step_time, "swing_height": args.swing_height, "pelvis_drop": args.pelvis_drop,
             "cycles": args.cycles}
    settings = GaitSettings(**{k: v for k, v in given.items() if v is not None})
    out = Path(args.out)
    started = time.perf_counter()
    print(f"Generating {len(grid)} clips into {out} on {args.workers} process(es) ...", flush=True)
    results = generate_library(out, grid, settings, workers=args.workers, robot=args.robot)
    print(f"{'command (vx vy yaw)':<24} {'clip':<36} cadence  stride  speed  turning")
    for r in results:
        cmd = " ".join(f"{c:+.2f}" for c in r.command)
        if r.file:
            d = r.descriptors
            print(f"{cmd:<24} {r.file:<36} {d['cadence']:6.2f} {d['stride_length']:7.3f} {d['speed_vx']:6.3f} "
                  f"{d['turning_rate']:+8.3f}" + (f"  {r.variant}" if r.variant else ""))
        else:
            print(f"{cmd:<24} NOT REALISED: {r.why}")
    written = sum(bool(r.file) for r in results)
    print(f"{written} of {len(grid)} commands realised in {time.perf_counter() - started:.1f} s; "
          + (f"manifest: {out / 'manifest.yaml'}" if written else "none written"))
    return 0 if written else 1


# -- check -----------------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from wildrobot.motions.checks import check_clip
    from wildrobot.motions.loader import load_clip, quaternion_order_note
    from wildrobot.motions.model import RobotModel

    desc = _robot(args.robot)
    robot = RobotModel(desc)
    failed = 0
    files = dataset_files(args.path)
    for path, weight in files:
        clip = load_clip(path, desc, ignore_extra_joints=args.ignore_extra_joints)
        report = check_clip(clip, robot)
        failed += not report.passed
        print(f"== {path.name} ({clip.num_frames} frames at {clip.fps:g} fps, weight {weight:g}): "
              f"{'PASS' if report.passed else 'FAIL'}")
        note = quaternion_order_note(clip)
        if note:
            print(f"  Note: {note}")
        for c in report.checks:
            print(f"  {'ok  ' if c.passed else 'FAIL'} {c.name}: {c.value}" + (f"  ({c.detail})" if not c.passed else ""))
        d = report.descriptors
        print(f"  gait: cadence {d['cadence']:.2f} steps/s, stride {d['stride_length']:.3f} m, duty factor "
              f"{d['duty_factor']:.2f}, swing clearance {1000 * d['swing_clearance']:.0f} mm, speed vx "
              f"{d['speed_vx']:+.3f} vy {d['speed_vy']:+.3f} m/s, turning {d['turning_rate']:+.3f} rad/s, "
              f"root height {clip.root_pos[:, 2].mean():.3f} m")  # the env's base_height_target for this gait
    print(f"{len(files) - failed} of {len(files)} clips pass")
    return 1 if failed else 0


# -- show ------------------------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    from wildrobot.motions.loader import load_clip
    from wildrobot.motions.model import RobotModel
    from wildrobot.motions.show import plot_clip, render_clip
    from wildrobot.render import NoRenderer

    desc = _robot(args.robot)
    robot = RobotModel(desc)
    clip = load_clip(args.clip, desc, ignore_extra_joints=args.ignore_extra_joints)
    base = Path(args.clip).with_suffix("")
    png = plot_clip(clip, robot, Path(args.png) if args.png else base.with_suffix(".png"))
    print(f"Plot: {png}")
    if args.video.lower() == "none":
        print("Video: off (--video none)")
        return 0
    try:
        video = render_clip(clip, robot, Path(args.video) if args.video != "auto" else base.with_suffix(".mp4"))
        print(f"Video: {video}")
    except NoRenderer as e:
        print(f"Video: skipped: {e}")
    return 0


# -- convert ---------------------------------------------------------------------------------------
def cmd_convert(args: argparse.Namespace) -> int:
    from wildrobot.motions.convert import convert_json
    from wildrobot.motions.loader import load_clip, quaternion_order_note

    clip = convert_json(args.file, args.quat_order, args.joints.split(",") if args.joints else None, args.fps)
    out = Path(args.out) if args.out else Path(args.file).with_suffix(".npz")
    out = out if out.suffix == ".npz" else out.with_suffix(".npz")
    if out.exists() and not args.force:
        raise MotionError(f"{out} exists: pass --force to replace it, or --out another file")
    # checked before it takes the output's place: a clip the robot cannot load never replaces anything
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".converting-") as tmp:
        trial = save_clip(Path(tmp) / out.name, clip)
        load_clip(trial, _robot(args.robot), ignore_extra_joints=args.ignore_extra_joints)  # refuses with the reason
        trial.replace(out)
    print(f"Wrote {out} ({clip.num_frames} frames at {clip.fps:g} fps, {len(clip.joint_names)} joints)")
    print("It loads for the robot: joints mapped by name, quaternions upright, ranges and velocities consistent")
    note = quaternion_order_note(clip, converted_from=args.file)
    if note:
        print(f"Note: {note}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wildrobot.motions", description=__doc__.split("\n\n")[0])
    p.add_argument("--robot", default=None, help="robot description YAML (default: the shipped WildRobot)")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write a library of walking clips for a grid of commands")
    g.add_argument("--out", required=True, help="folder for the clips and their manifest.yaml")
    g.add_argument("--vx", type=_floats, default=None, help="forward speeds, m/s (with --vy/--yaw: a grid)")
    g.add_argument("--vy", type=_floats, default=None, help="lateral speeds, m/s")
    g.add_argument("--yaw", type=_floats, default=None, help="turning rates, rad/s")
    # defaults: GaitSettings' own (0.35 s, 0.025 m, 0.02 m, 2 cycles), applied in cmd_generate, so that
    # building this parser does not load the generator (MuJoCo, SciPy) for every command
    g.add_argument("--step-time", type=float, default=None, help="seconds per step (default 0.35)")
    g.add_argument("--swing-height", type=float, default=None, help="swing clearance, m (default 0.025)")
    g.add_argument("--pelvis-drop", type=float, default=None,
                   help="how far the pelvis sits below its home height, m (default 0.02)")
    g.add_argument("--cycles", type=int, default=None, help="gait cycles per clip (default 2)")
    g.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                   help="processes (default: the CPUs, at most 4)")
    g.set_defaults(run=cmd_generate)
    c = sub.add_parser("check", help="the physical checks and gait descriptors of clips")
    c.add_argument("path", help="a clip (.npz), a folder of clips, or a manifest (.yaml)")
    c.add_argument("--ignore-extra-joints", action="store_true", help="drop clip joints the robot lacks")
    c.set_defaults(run=cmd_check)
    s = sub.add_parser("show", help="a PNG of a clip's joints and feet, and a video of it")
    s.add_argument("clip")
    s.add_argument("--video", default="auto", help="video file (default: next to the clip, .mp4), or none")
    s.add_argument("--png", default=None, help="plot file (default: next to the clip, .png)")
    s.add_argument("--ignore-extra-joints", action="store_true")
    s.set_defaults(run=cmd_show)
    v = sub.add_parser("convert", help="import a JSON clip (AMP_for_hardware, Open Duck) into the .npz format")
    v.add_argument("file")
    v.add_argument("--quat-order", required=True, choices=("xyzw", "wxyz"),
                   help="the order of the file's root quaternions (Open Duck's generator writes xyzw)")
    v.add_argument("--joints", default=None, help="joint names in the file's order (default: the file's 'Joints')")
    v.add_argument("--fps", type=float, default=None, help="frame rate (default: the file's FPS or FrameDuration)")
    v.add_argument("--out", default=None, help="output .npz (default: next to the file)")
    v.add_argument("--force", action="store_true", help="replace the output file if it exists")
    v.add_argument("--ignore-extra-joints", action="store_true")
    v.set_defaults(run=cmd_convert)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.run(args)
    except MotionError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
