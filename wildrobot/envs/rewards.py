"""Named reward terms, each a small pure function of one step's quantities.

Every term takes ``c`` (a dict of arrays the env builds once per step in ``WildRobotEnv.step``: the
step's ``quantities``, the command and actions, the feet's touchdowns and air time, the fall flag)
and the ``RewardConfig``, and returns an unweighted scalar.
The env multiplies each by its weight and the control dt, logs it as ``reward/<name>``, and sums
(clipping the sum at 0 when ``clip_at_zero``, as MuJoCo Playground does for its humanoids, and
adding the ``unclipped_terms`` after the clip).
Positive weights reward, negative weights penalise.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from wildrobot.envs.wildrobot_config import RewardConfig

Inputs = dict[str, jax.Array]


def tracking_lin_vel(c: Inputs, cfg: RewardConfig) -> jax.Array:
    err = jnp.sum(jnp.square(c["command"][:2] - c["base_vel_heading"][:2]))
    return jnp.exp(-err / cfg.tracking_sigma)


def tracking_ang_vel(c: Inputs, cfg: RewardConfig) -> jax.Array:
    err = jnp.square(c["command"][2] - c["yaw_rate"])
    return jnp.exp(-err / cfg.tracking_sigma_yaw)


def lin_vel_z(c: Inputs, cfg: RewardConfig) -> jax.Array:
    return jnp.square(c["base_vel_heading"][2])


def ang_vel_xy(c: Inputs, cfg: RewardConfig) -> jax.Array:
    return jnp.sum(jnp.square(c["base_angvel"][:2]))


def orientation(c: Inputs, cfg: RewardConfig) -> jax.Array:
    return jnp.sum(jnp.square(c["gravity"][:2]))


def base_height(c: Inputs, cfg: RewardConfig) -> jax.Array:
    return jnp.square(c["base_height"] - c["base_height_target"])


def torque(c: Inputs, cfg: RewardConfig) -> jax.Array:
    return jnp.sum(jnp.square(c["torque"]))


def action_rate(c: Inputs, cfg: RewardConfig) -> jax.Array:
    return jnp.sum(jnp.square(c["action"] - c["prev_action"]))


def joint_limits(c: Inputs, cfg: RewardConfig) -> jax.Array:
    lo, hi = c["joint_range"][:, 0], c["joint_range"][:, 1]
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * cfg.soft_limit_fraction
    return jnp.sum(jnp.maximum(jnp.abs(c["joint_pos"] - mid) - half, 0.0))


def pose(c: Inputs, cfg: RewardConfig) -> jax.Array:
    return jnp.sum(jnp.square(c["joint_pos"] - c["home"]))


def feet_slip(c: Inputs, cfg: RewardConfig) -> jax.Array:
    return jnp.sum(c["contact"] * jnp.sum(jnp.square(c["foot_vel"][:, :2]), axis=-1))


def feet_air_time(c: Inputs, cfg: RewardConfig) -> jax.Array:
    """On touchdown: + for swings longer than air_time_min (up to air_time_max), - for shorter."""
    air = jnp.minimum(c["air_time"], cfg.air_time_max) - cfg.air_time_min
    return c["moving"] * jnp.sum(c["first_contact"] * air)


def feet_phase(c: Inputs, cfg: RewardConfig) -> jax.Array:
    """Sole heights following the gait clock (a half-sine swing per foot; flat when standing): the
    soles' centres, or their lowest points (``feet_phase_point``)."""
    target = c["moving"] * cfg.swing_height * jnp.maximum(jnp.sin(c["phase"]), 0.0)
    height = c["sole_height"] if cfg.feet_phase_point == "lowest" else c["foot_height"]
    err = jnp.sum(jnp.square(height - target))
    return jnp.exp(-err / cfg.feet_phase_sigma)


def stand_still(c: Inputs, cfg: RewardConfig) -> jax.Array:
    return (1.0 - c["moving"]) * jnp.sum(jnp.abs(c["joint_pos"] - c["home"]))


def termination(c: Inputs, cfg: RewardConfig) -> jax.Array:
    return c["fall"]


TERMS: dict[str, Callable[[Inputs, RewardConfig], jax.Array]] = {
    f.__name__: f
    for f in (
        tracking_lin_vel,
        tracking_ang_vel,
        lin_vel_z,
        ang_vel_xy,
        orientation,
        base_height,
        torque,
        action_rate,
        joint_limits,
        pose,
        feet_slip,
        feet_air_time,
        feet_phase,
        stand_still,
        termination,
    )
}


def weighted_terms(c: Inputs, cfg: RewardConfig, dt: float) -> dict[str, jax.Array]:
    """{name: weight * value * dt} for every term with a non-zero weight."""
    out = {}
    for name, fn in TERMS.items():
        w = getattr(cfg.weights, name)
        if w != 0.0:
            out[name] = (w * dt) * fn(c, cfg).astype(jnp.float32)
    return out


def total(terms: dict[str, jax.Array], cfg: RewardConfig) -> jax.Array:
    """The step reward: the terms' sum, clipped at 0 when ``clip_at_zero``, plus the
    ``unclipped_terms`` (the fall penalty by default), which count whatever the others sum to."""
    zero = jnp.zeros((), jnp.float32)
    r = sum((v for k, v in terms.items() if k not in cfg.unclipped_terms), zero)
    r = jnp.maximum(r, 0.0) if cfg.clip_at_zero else r
    return r + sum((v for k, v in terms.items() if k in cfg.unclipped_terms), zero)
