"""A side-by-side video: the reference clip of a command next to trained policies walking it.

    uv run python bench/gait_video.py RUN [RUN ...] [--command 0.2,0,0] [--dataset DATASET] [--seconds 6] [--out gait.mp4]

Each panel follows its robot: the reference clip (``--dataset``, default the gait library that
ships; the clip nearest the command, looped), then one deterministic episode of each run's newest
checkpoint with the command fixed (randomisation off), labelled by the run's algorithm. The first
second of an episode is the start from standing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def reference_qpos(clip, robot, fps: float, frames: int) -> np.ndarray:
    """(frames, nq): the clip at ``fps``, looped, each loop continuing where the last one ended."""
    from wildrobot.motions.loader import resample

    clip = resample(clip, fps)
    one = robot.qpos(clip)
    r = robot.root_qpos
    step = one[-1, r:r + 3] - one[0, r:r + 3]
    step = step * clip.num_frames / max(clip.num_frames - 1, 1)
    step[2] = 0.0
    loops = []
    for k in range(int(np.ceil(frames / clip.num_frames))):
        q = one.copy()
        q[:, r:r + 3] += k * step
        loops.append(q)
    return np.concatenate(loops)[:frames]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--command", default="0.2,0,0")
    p.add_argument("--dataset", type=Path, default=None)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--out", type=Path, default=Path("gait.mp4"))
    args = p.parse_args()

    import jax
    import mujoco

    from wildrobot.eval import evaluate_policy
    from wildrobot.jax_setup import configure_jax
    from wildrobot.motions.compare import nearest_clip
    from wildrobot.motions.features import BUILTIN_DATASET
    from wildrobot.motions.loader import load_dataset
    from wildrobot.motions.model import RobotModel
    from wildrobot.render import OffscreenRenderer, Overlay, write_video
    from wildrobot.runs import load_run

    configure_jax()
    command = np.array([float(x) for x in args.command.split(",")], np.float32)
    loaded = [load_run(run) for run in args.runs]
    env = loaded[0].env
    robot = RobotModel(env.desc)
    clips = [c for c, _ in load_dataset(args.dataset or BUILTIN_DATASET, env.desc)]
    clip = nearest_clip(clips, command, tolerance=1.0)
    fps = 1.0 / env.dt
    frames = int(round(args.seconds * fps)) + 1
    panels = [("reference clip", reference_qpos(clip, robot, fps, frames))]
    for run in loaded:
        res = evaluate_policy(run, commands=command[None], steps=frames - 1, key=jax.random.key(0), record=True)
        panels.append((f"{run.cfg.algo.name} ({run.step * run.cfg.trainer.num_envs * run.cfg.algo.unroll_length / 1e6:.1f} M steps)",
                       res.recording["qpos"][:, 0]))
    skip = 2  # 25 frames per second
    data = mujoco.MjData(robot.model)
    video = []
    with OffscreenRenderer(robot.model, 360, 300, track_body=robot.root_body) as renderer:
        for t in range(0, frames, skip):
            row = []
            for label, qpos in panels:
                data.qpos[:] = qpos[min(t, len(qpos) - 1)]
                mujoco.mj_forward(robot.model, data)
                row.append(renderer.render(data, Overlay("\ncommand\ntime", f"{label}\n{args.command}\n{t / fps:.1f} s")))
            video.append(np.concatenate(row, axis=1))
    print(f"wrote {write_video(args.out, video, fps / skip)}")


if __name__ == "__main__":
    main()
