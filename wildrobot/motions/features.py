"""Reference clips as the env sees them: every frame, at the env's control rate, through the env's
own feature function (``WildRobotEnv.features``), the one a policy's states go through too; and a
dataset as what ``algo=ppo_amp`` trains with (``reference_data``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildrobot.motions.checks import Limits, contacts, gait_phase, kinematics
from wildrobot.motions.clip import Clip, MotionError
from wildrobot.motions.loader import load_dataset, resample
from wildrobot.motions.model import RobotModel

# The datasets that ship with the package; a relative algo.motion_dataset that is not found in the
# working directory is looked up here (find_dataset).
SHIPPED = Path(__file__).parent / "data"
# The gait library (``python -m wildrobot.motions generate`` on the default grid, the commands it
# realises): what algo=ppo_amp uses without algo.motion_dataset.
BUILTIN_DATASET = SHIPPED / "walk" / "manifest.yaml"


def find_dataset(dataset: str | Path) -> Path:
    """A dataset path made absolute: the gait library when empty; a relative path from the working
    directory or, when it is not there, from the datasets that ship (e.g. ``walk/no_turning.yaml``)."""
    if not str(dataset):
        return BUILTIN_DATASET
    path = Path(dataset).expanduser()
    if not path.is_absolute() and not path.exists() and (SHIPPED / path).exists():
        return SHIPPED / path
    return path.absolute()


def reference_features(env, clip: Clip) -> np.ndarray:
    """(T, F): ``env.features(qpos, qvel)`` of each frame of ``clip`` (loaded for ``env.desc``),
    resampled to the env's control rate."""
    clip = resample(clip, 1.0 / env.dt)
    return _features(env, *RobotModel(env.desc).states(clip))


def _features(env, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
    import jax

    return np.asarray(jax.jit(jax.vmap(env.features))(qpos.astype(np.float32), qvel.astype(np.float32)))


@dataclass(frozen=True)
class ReferenceData:
    """A dataset at the env's control rate: its transitions for a discriminator and its frames for
    reference state initialisation."""

    transitions: np.ndarray  # (M, 2, F): features of consecutive frames (s, s') of every clip
    weights: np.ndarray  # (M,): sampling probability of each transition (a clip's weight over its transitions)
    # {"qpos": (N, nq), "qvel": (N, nv), "command": (N, 3), "phase": (N,)}: every frame, with its phase
    # in the clip's gait cycle (checks.gait_phase; NaN in a clip that stands) for the env's gait clock
    starts: dict[str, np.ndarray]
    start_features: np.ndarray  # (N, F): the features of each frame of ``starts``
    clips: tuple[Clip, ...]  # the clips (as loaded: their own rate), for gait comparisons
    seconds: float  # the dataset's length

    @property
    def commands(self) -> np.ndarray | None:
        """The distinct commands its clips realise (K, C); None when a clip does not say. A reference
        without clips (the stub env's synthetic style) gives its frames' commands."""
        if not self.clips:
            return np.unique(np.asarray(self.starts["command"], np.float32), axis=0) if "command" in self.starts else None
        if any(clip.command is None for clip in self.clips):
            return None
        return np.unique(np.stack([np.asarray(clip.command, np.float32) for clip in self.clips]), axis=0)


def reference_data(env, dataset: str | Path = BUILTIN_DATASET) -> ReferenceData:
    """Every clip of ``dataset`` (a clip, a folder or a manifest) loaded for ``env.desc`` (the loader's
    checks stop at the first bad clip with its message) and seen through the env's own features."""
    loaded = load_dataset(dataset, env.desc)
    if not loaded:
        raise MotionError(f"the motion dataset {dataset} holds no clips")
    robot = RobotModel(env.desc)
    weights, qpos_all, qvel_all, commands, phases, clips, seconds = [], [], [], [], [], [], 0.0
    for clip, weight in loaded:
        if weight <= 0:
            continue
        at_rate = resample(clip, 1.0 / env.dt)
        if at_rate.num_frames < 2:
            raise MotionError(f"{clip.name}: {clip.num_frames} frame(s) at {clip.fps:g} fps is shorter than one "
                              f"control step of the env ({env.dt:g} s); a clip needs two frames at the env's rate")
        qpos, qvel = robot.states(at_rate)
        qpos_all.append(qpos)
        qvel_all.append(qvel)
        weights.append(np.full(len(qpos) - 1, weight / (len(qpos) - 1)))
        command = clip.command if clip.command is not None else np.zeros(3)
        commands.append(np.tile(np.asarray(command, np.float32), (len(qpos), 1)))
        given = at_rate.foot_contact
        contact = contacts(None if given is not None else kinematics(robot, qpos)["points"], Limits(), given)
        phases.append(gait_phase(contact, loop=at_rate.loop))
        clips.append(clip)
        seconds += clip.num_frames / clip.fps
    if not clips:
        raise MotionError(f"every clip of the motion dataset {dataset} has weight 0")
    features = _features(env, np.concatenate(qpos_all), np.concatenate(qvel_all))  # one program for all frames
    ends = np.cumsum([len(q) for q in qpos_all])[:-1]
    pairs = [np.stack([f[:-1], f[1:]], axis=1) for f in np.split(features, ends)]
    w = np.concatenate(weights)
    return ReferenceData(
        transitions=np.concatenate(pairs).astype(np.float32),
        weights=(w / w.sum()).astype(np.float32),
        starts={"qpos": np.concatenate(qpos_all).astype(np.float32),
                "qvel": np.concatenate(qvel_all).astype(np.float32),
                "command": np.concatenate(commands).astype(np.float32),
                "phase": np.concatenate(phases).astype(np.float32)},
        start_features=features.astype(np.float32),
        clips=tuple(clips),
        seconds=seconds,
    )
