"""Reference clips as the env sees them: every frame, at the env's control rate, through the env's
own feature function (``WildRobotEnv.features``), the one a policy's states go through too."""

from __future__ import annotations

import numpy as np

from wildrobot.motions.clip import Clip
from wildrobot.motions.loader import resample
from wildrobot.motions.model import RobotModel


def reference_features(env, clip: Clip) -> np.ndarray:
    """(T, F): ``env.features(qpos, qvel)`` of each frame of ``clip`` (loaded for ``env.desc``),
    resampled to the env's control rate."""
    import jax

    clip = resample(clip, 1.0 / env.dt)
    qpos, qvel = RobotModel(env.desc).states(clip)
    return np.asarray(jax.jit(jax.vmap(env.features))(qpos.astype(np.float32), qvel.astype(np.float32)))
