"""Rotations and the heading frame, in MuJoCo's conventions: quaternions (w, x, y, z), world x
forward, y left, z up. One implementation for the env (JAX, under jit and vmap) and for tools
that work on recorded NumPy arrays with leading (time, batch) axes: each function computes with
NumPy when given NumPy arrays and with JAX otherwise.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _xp(*arrays: Any):
    return np if all(isinstance(a, (np.ndarray, np.generic, float, int)) for a in arrays) else jnp


def quat_to_mat(q: Any) -> Any:
    """Rotation matrix (world from body, ``(..., 3, 3)``) of unit quaternions (w, x, y, z)."""
    xp = _xp(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return xp.stack([xp.stack(r, axis=-1) for r in rows], axis=-2)


def yaw_from_quat(q: Any) -> Any:
    """Heading angle (rotation about world z) of quaternions (w, x, y, z)."""
    xp = _xp(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return xp.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def yaw_quat(yaw: jax.Array) -> jax.Array:
    """(w, x, y, z) of a rotation by ``yaw`` about world z."""
    return jnp.array([jnp.cos(yaw / 2), 0.0, 0.0, jnp.sin(yaw / 2)])


def quat_mul(a: jax.Array, b: jax.Array) -> jax.Array:
    """The Hamilton product ``a * b`` of quaternions (w, x, y, z): rotate by ``b``, then by ``a``."""
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return jnp.stack([aw * bw - ax * bx - ay * by - az * bz,
                      aw * bx + ax * bw + ay * bz - az * by,
                      aw * by - ax * bz + ay * bw + az * bx,
                      aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def heading_velocity(quat: Any, linvel_world: Any, angvel_body: Any) -> tuple[Any, Any]:
    """(linear velocity in the heading frame (forward, left, up), world yaw rate) of a floating base
    with orientation ``quat``, world-frame linear velocity and body-frame angular velocity (MuJoCo's
    free-joint convention); any leading axes."""
    xp = _xp(quat, linvel_world, angvel_body)
    yaw = yaw_from_quat(quat)
    cy, sy = xp.cos(yaw), xp.sin(yaw)
    v = linvel_world
    heading = xp.stack([cy * v[..., 0] + sy * v[..., 1], -sy * v[..., 0] + cy * v[..., 1], v[..., 2]], axis=-1)
    yaw_rate = xp.einsum("...ij,...j->...i", quat_to_mat(quat), angvel_body)[..., 2]
    return heading, yaw_rate


def to_heading_frame(quat: Any, vec_world: Any) -> Any:
    """World vectors (..., 3) expressed in the heading frame of orientations ``quat`` (rotated about
    world z by minus the heading; z stays vertical)."""
    xp = _xp(quat, vec_world)
    yaw = yaw_from_quat(quat)
    cy, sy = xp.cos(yaw), xp.sin(yaw)
    v = vec_world
    return xp.stack([cy * v[..., 0] + sy * v[..., 1], -sy * v[..., 0] + cy * v[..., 1], v[..., 2]], axis=-1)


def xyzw_to_wxyz(q):
    """Motion files often store (x, y, z, w); convert once at that boundary."""
    return q[..., [3, 0, 1, 2]]


def wxyz_to_xyzw(q):
    return q[..., [1, 2, 3, 0]]
