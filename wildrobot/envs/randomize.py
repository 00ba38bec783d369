"""Domain randomisation, pushes, action delay and observation noise.

Per-episode parameters are sampled in ``reset`` and kept in ``state.info["dr"]`` (same
structure whether or not an item is enabled: nominal values when off). ``apply_to_model``
replaces the matching fields of the physics' model pytree (``mjx.Model``, or MuJoCo C's
``MujocoModel``) inside the (vmapped) step, so the model becomes per-env under ``jax.vmap``; items
that are switched off leave their fields shared (no cost in MJX).
Servo kp is the exception: it goes to ``Physics.step`` as ``kp_scale``; MJX scales it through the
servo setpoint (``physics.scaled_servo_setpoint``, exact within the control range, the actuator
fields stay shared), MuJoCo C through each simulation's own servo gains.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from wildrobot.envs.wildrobot_config import NoiseConfig, PushConfig, RandomizationConfig, RandomRange


def _uniform(key: jax.Array, r: RandomRange, shape: tuple[int, ...], nominal: float, on: bool) -> jax.Array:
    if not (on and r.enabled):
        return jnp.full(shape, nominal, jnp.float32)
    return jax.random.uniform(key, shape, minval=r.low, maxval=r.high)


def sample_params(key: jax.Array, cfg: RandomizationConfig, *, nbody: int, nu: int) -> dict[str, jax.Array]:
    k = jax.random.split(key, 6)
    on = cfg.enabled
    delay = cfg.action_delay
    return {
        "floor_friction": _uniform(k[0], cfg.floor_friction, (), 1.0, on),
        "mass_scale": _uniform(k[1], cfg.link_mass_scale, (nbody,), 1.0, on),
        "kp_scale": _uniform(k[2], cfg.kp_scale, (nu,), 1.0, on),
        "frictionloss_scale": _uniform(k[3], cfg.frictionloss_scale, (nu,), 1.0, on),
        "joint_offset": _uniform(k[4], cfg.joint_offset, (nu,), 0.0, on),
        "delay": (
            jax.random.bernoulli(k[5], delay.probability).astype(jnp.float32)
            if on and delay.enabled
            else jnp.zeros((), jnp.float32)
        ),
    }


def apply_to_model(model: Any, p: dict[str, jax.Array], cfg: RandomizationConfig, dof_idx) -> Any:
    """The episode's model. Only enabled items touch the model (static Python branches); kp is
    randomised by ``Physics.step`` instead (``kp_scale``)."""
    if not cfg.enabled:
        return model
    upd = {}
    if cfg.floor_friction.enabled:
        # MuJoCo combines two geoms' friction with max: set every geom's sliding friction.
        upd["geom_friction"] = model.geom_friction.at[:, 0].set(p["floor_friction"])
    if cfg.link_mass_scale.enabled:
        upd["body_mass"] = model.body_mass * p["mass_scale"]
        upd["body_inertia"] = model.body_inertia * p["mass_scale"][:, None]
    if cfg.frictionloss_scale.enabled:
        upd["dof_frictionloss"] = model.dof_frictionloss.at[dof_idx].multiply(p["frictionloss_scale"])
    return model.replace(**upd) if upd else model


def kp_scale(p: dict[str, jax.Array], cfg: RandomizationConfig) -> jax.Array | None:
    """Per-servo kp scale for ``Physics.step``, or None when kp is not randomised (no cost)."""
    return p["kp_scale"] if cfg.enabled and cfg.kp_scale.enabled else None


def delayed_action(action: jax.Array, prev_action: jax.Array, p: dict[str, jax.Array]) -> jax.Array:
    """The action the servos receive: this step's, or last step's in a delayed episode."""
    return jnp.where(p["delay"] > 0, prev_action, action)


def sample_push_interval(key: jax.Array, cfg: PushConfig, dt: float) -> jax.Array:
    lo, hi = cfg.interval_s
    return jnp.round(jax.random.uniform(key, (), minval=lo, maxval=hi) / dt).astype(jnp.int32)


def push_top(cfg: PushConfig, training_steps: jax.Array | None) -> jax.Array | float:
    """The largest kick (m/s) after ``training_steps`` env steps of the training batch: the
    configured high end, grown linearly to ``grow_to`` over ``grow_steps`` when that is set."""
    hi = cfg.velocity[1]
    if cfg.grow_to is None or training_steps is None:
        return hi
    start, end = cfg.grow_steps
    share = jnp.clip((training_steps - start) / (end - start), 0.0, 1.0)
    return hi + (cfg.grow_to - hi) * share


def push_kick(key: jax.Array, cfg: PushConfig, top: jax.Array | float | None = None) -> jax.Array:
    """A horizontal velocity change (world frame, m/s) in a random direction, of a speed drawn
    between ``cfg.velocity``'s ends (the high end replaced by ``top`` when given)."""
    k1, k2 = jax.random.split(key)
    angle = jax.random.uniform(k1, (), minval=-jnp.pi, maxval=jnp.pi)
    hi = cfg.velocity[1] if top is None else top
    speed = jax.random.uniform(k2, (), minval=cfg.velocity[0], maxval=hi)
    return speed * jnp.array([jnp.cos(angle), jnp.sin(angle), 0.0])


def add_noise(key: jax.Array, cfg: NoiseConfig, parts: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Noisy copies of the IMU and joint readings that feed the actor."""
    if not cfg.enabled:
        return parts
    k = jax.random.split(key, 4)
    out = dict(parts)
    g = parts["gravity"] + cfg.gravity * jax.random.normal(k[0], (3,))
    out["gravity"] = g / jnp.maximum(jnp.linalg.norm(g), 1e-6)
    out["gyro"] = parts["gyro"] + cfg.gyro * jax.random.normal(k[1], (3,))
    out["joint_pos"] = parts["joint_pos"] + cfg.joint_pos * jax.random.normal(k[2], parts["joint_pos"].shape)
    out["joint_vel"] = parts["joint_vel"] + cfg.joint_vel * jax.random.normal(k[3], parts["joint_vel"].shape)
    return out
