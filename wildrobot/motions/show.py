"""A clip as pictures: a PNG of its joint trajectories and sole heights, and a video of the robot
playing it (the project's headless renderer)."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from wildrobot.motions.checks import kinematics
from wildrobot.motions.clip import Clip
from wildrobot.motions.model import RobotModel


def plot_clip(clip: Clip, robot: RobotModel, path: Path) -> Path:
    """Joint angles (one panel per leg joint pair and the waist) and sole heights over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(clip.num_frames) / clip.fps
    names = list(clip.joint_names)
    points = kinematics(robot, robot.qpos(clip))["points"]
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for j, name in enumerate(names):
        axes[0].plot(t, clip.joint_pos[:, j], label=name, color=f"C{j % 10}", ls="-" if "right" not in name else "--")
    axes[0].set_ylabel("joint angle (rad)")
    axes[0].legend(fontsize=7, ncol=3, loc="upper right")
    for k, foot in enumerate(robot.desc.foot_names):
        axes[1].plot(t, 1000 * points[:, k, :, 2].min(axis=-1), label=f"{foot} sole")
        if clip.foot_contact is not None:
            axes[1].fill_between(t, 0, 5, where=clip.foot_contact[:, k] > 0.5, alpha=0.15, color=f"C{k}",
                                 label=f"{foot} contact")
    axes[1].set_ylabel("lowest sole point (mm)")
    axes[1].set_xlabel("time (s)")
    axes[1].legend(fontsize=7)
    command = "" if clip.command is None else "  command vx %+.2f vy %+.2f yaw %+.2f" % tuple(clip.command)
    fig.suptitle(f"{clip.name}: {clip.num_frames} frames at {clip.fps:g} fps{command}")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def render_clip(clip: Clip, robot: RobotModel, path: Path, loops: int = 2, width: int = 480,
                height: int = 320) -> Path:
    """The robot playing the clip (``loops`` times if it loops), a camera following it."""
    from wildrobot.render import OffscreenRenderer, Overlay, write_video

    qpos = robot.qpos(clip)
    frames = []
    d = mujoco.MjData(robot.model)
    offset = np.zeros(3)
    step = qpos[-1, robot.root_qpos:robot.root_qpos + 3] - qpos[0, robot.root_qpos:robot.root_qpos + 3]
    step = step * clip.num_frames / max(clip.num_frames - 1, 1)  # the displacement of one loop
    step[2] = 0.0
    command = "" if clip.command is None else "vx %+.2f  vy %+.2f  yaw %+.2f" % tuple(clip.command)
    with OffscreenRenderer(robot.model, width, height, track_body=robot.root_body) as renderer:
        for loop in range(loops if clip.loop else 1):
            for t, q in enumerate(qpos):
                d.qpos[:] = q
                d.qpos[robot.root_qpos:robot.root_qpos + 3] += offset
                mujoco.mj_forward(robot.model, d)
                frames.append(renderer.render(d, Overlay("clip\ncommand\ntime",
                                                         f"{clip.name}\n{command}\n{t / clip.fps:.2f} s")))
            offset = offset + step  # a straight loop continues where it ended (turning clips restart)
    return write_video(Path(path), frames, clip.fps)
