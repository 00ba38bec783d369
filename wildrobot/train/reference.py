"""The reference motions of an ``algo=ppo_amp`` run: its dataset loaded for the run's env (refused
with the loader's message, as a ``ConfigError``, before anything compiles); the check that the
env's own feature function gives a reference frame's features once that frame is set into the
physics (``trainer=verify``); and the policy's gait next to the clips at each evaluation
(``GaitProbe``)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from wildrobot.algos.evaluation import run_episodes
from wildrobot.config import Config
from wildrobot.envs.core import Env
from wildrobot.errors import ConfigError
from wildrobot.motions.clip import Clip, MotionError
from wildrobot.motions.compare import compare_with_clip, summarize
from wildrobot.motions.features import BUILTIN_DATASET, ReferenceData, find_dataset, reference_data
from wildrobot.motions.model import RobotModel

PARITY_TOLERANCE = 1e-4  # float32 features of the same state through two routes


def dataset_path(cfg: Config) -> Path:
    """``algo.motion_dataset`` as an absolute path: the gait library that ships when empty; a
    relative path from the working directory, or, when it is not there, from the datasets that ship
    with the package (``wildrobot/motions/data``: e.g. ``walk/no_turning.yaml``)."""
    return find_dataset(cfg.algo.motion_dataset)


def load_reference(cfg: Config, env: Env) -> ReferenceData:
    """The run's dataset at the env's control rate through its own features; the stub env's is
    synthetic (``StubEnv.synthetic_reference``)."""
    dataset = cfg.algo.motion_dataset
    if cfg.env.name == "stub":
        if dataset:
            raise ConfigError(f"algo.motion_dataset={dataset}: the stub env reads no motion files (its reference "
                              f"style is synthetic: StubEnv.synthetic_reference); leave it empty")
        transitions, starts = env.synthetic_reference()
        weights = np.full(len(transitions), 1.0 / len(transitions), np.float32)
        # the stub's features are its velocity
        return ReferenceData(transitions, weights, starts, starts["velocity"], (), len(starts["velocity"]) * env.dt)
    if not hasattr(env, "desc"):
        raise ConfigError(f"algo=ppo_amp reads reference motions for a robot description; env "
                          f"'{cfg.env.name}' has none")
    try:
        return reference_data(env, dataset_path(cfg))
    except (MotionError, OSError) as e:
        raise ConfigError(f"algo.motion_dataset={dataset or BUILTIN_DATASET}: {e}") from None


def feature_parity(env: Env, reference: ReferenceData, frames: int = 64, seed: int = 0) -> float:
    """The largest difference between a reference frame's features in the dataset and the env's
    ``state_features`` of an episode started at that frame (``Env.reset_from``), over ``frames``
    frames spread through the dataset."""
    count = len(reference.start_features)
    rows = np.unique(np.linspace(0, count - 1, min(frames, count)).astype(int))
    starts = {k: v[rows] for k, v in reference.starts.items()}
    keys = jax.random.split(jax.random.key(seed), len(rows))
    got = jax.jit(jax.vmap(lambda k, f: env.state_features(env.reset_from(k, f))))(keys, starts)
    return float(np.max(np.abs(np.asarray(got) - reference.start_features[rows])))


class GaitProbe:
    """At each evaluation, one deterministic episode of ``seconds`` per reference clip command (the
    evaluation env: randomisation off), compared with its clip (``motions.compare``): the curves
    ``gait/dtw`` (mean joint-trajectory DTW) and ``gait/{cadence,stride,clearance}_ratio`` (policy /
    reference, walking clips)."""

    def __init__(self, env: Env, clips: tuple[Clip, ...], policy, seconds: float = 10.0):
        self.clips = [c for c in clips if c.command is not None]
        self.robot = RobotModel(env.desc)
        self.fps = 1.0 / env.dt
        steps = int(round(seconds * self.fps))
        self.commands = np.array([c.command for c in self.clips], np.float32)

        def rollout(params, obs_stats, keys, commands):
            return run_episodes(env, lambda obs: policy(params, obs_stats, obs), keys, steps, commands,
                                record=lambda s: s.data.qpos)[1]

        self._rollout = jax.jit(rollout)

    def __call__(self, params, obs_stats) -> dict[str, float]:
        if not self.clips:
            return {}
        keys = jax.random.split(jax.random.key(0), len(self.clips))
        first, (qpos, alive) = jax.device_get(self._rollout(params, obs_stats, keys, self.commands))
        qpos = np.concatenate([np.asarray(first)[None], np.asarray(qpos)])  # (steps + 1, clips, nq)
        rows = []
        for i, clip in enumerate(self.clips):
            standing = 1 + int(np.sum(np.asarray(alive)[:, i] > 0))
            row = compare_with_clip(qpos[:standing, i].astype(np.float64), self.fps, clip, self.robot)
            if row is not None:
                rows.append({"command": [float(x) for x in clip.command], **row})
        return {f"gait/{k}": v for k, v in summarize(rows).items() if np.isfinite(v)}
