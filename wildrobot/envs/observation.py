"""Observation specs: named blocks, and views that concatenate them.

A ``Block`` says what one part of an observation is (name, size, unit), how it is read from one
step's quantities (a dict of named arrays the env computes once per step, e.g. from the physics
state), and how it mirrors left/right. An ``ObservationView`` is an ordered tuple of blocks
(optionally with older copies of its frame stacked after it); from it follow the flat vector, its
size, the layout written into the export sidecar, the slice of any block, and the mirror map.
An env declares its views (WildRobot: "actor", "critic") from one table of blocks, so a new view
(e.g. a discriminator's features) is a new tuple of blocks read by the same functions from the
same quantities, whether they come from a policy's state or from a reference motion's frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

Quantities = Mapping[str, jax.Array]


def unchanged(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The mirror of a block that is its own mirror image (a scalar, a height, a flag)."""
    return np.arange(size), np.ones(size, np.float32)


def flips(*signs: float) -> tuple[np.ndarray, np.ndarray]:
    """The mirror of a block whose components stay in place, some changing sign."""
    return np.arange(len(signs)), np.asarray(signs, np.float32)


@dataclass(frozen=True)
class Block:
    name: str
    size: int
    read: Callable[[Quantities], jax.Array]  # the step's quantities -> this block, shape (size,)
    unit: str = ""
    # (perm, sign) within the block: mirrored[i] = sign[i] * block[perm[i]]; None: no mirror image
    mirror: Optional[tuple[np.ndarray, np.ndarray]] = None


@dataclass(frozen=True)
class ObservationView:
    """One flat observation vector: ``blocks`` in order (the current frame), then ``history`` older
    copies of that frame, newest first (the env keeps them)."""

    blocks: tuple[Block, ...]
    history: int = 0

    @property
    def frame_size(self) -> int:
        return sum(b.size for b in self.blocks)

    @property
    def size(self) -> int:
        return self.frame_size * (1 + self.history)

    def frame(self, quantities: Quantities) -> jax.Array:
        """The current frame: every block read from ``quantities``, concatenated (float32)."""
        return jnp.concatenate([b.read(quantities) for b in self.blocks]).astype(jnp.float32)

    def stacked(self, frame: jax.Array, older: Optional[jax.Array] = None) -> jax.Array:
        """The whole vector: the current ``frame``, then the ``history`` older frames (newest first,
        shape (history, frame_size))."""
        return frame if not self.history else jnp.concatenate([frame, older.reshape(-1)])

    def slice(self, name: str) -> slice:
        """Where block ``name`` lies in the current frame (and so in the vector)."""
        start = 0
        for b in self.blocks:
            if b.name == name:
                return slice(start, start + b.size)
            start += b.size
        raise KeyError(f"no block '{name}' in this view ({', '.join(b.name for b in self.blocks)})")

    def layout(self) -> list[dict]:
        """Name, start, size and unit of each block of the whole vector (older frames named
        ``<block>[t-k]``): what the export sidecar describes."""
        layout, start = [], 0
        for age in range(1 + self.history):
            for b in self.blocks:
                layout.append({"name": b.name if age == 0 else f"{b.name}[t-{age}]", "start": start, "size": b.size,
                               "unit": b.unit})
                start += b.size
        return layout

    def mirror(self) -> tuple[np.ndarray, np.ndarray]:
        """(perm, sign) over the whole vector: ``mirrored = sign * x[perm]``, block by block."""
        perm, sign, start = [], [], 0
        for _ in range(1 + self.history):
            for b in self.blocks:
                if b.mirror is None:
                    raise ValueError(f"block '{b.name}' has no mirror image")
                local_perm, local_sign = b.mirror
                perm.append(start + np.asarray(local_perm))
                sign.append(np.asarray(local_sign, np.float32))
                start += b.size
        return np.concatenate(perm), np.concatenate(sign)
