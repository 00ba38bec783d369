"""Typed configuration of the stub env (``wildrobot.envs.stub``): a point mass, no physics."""

from __future__ import annotations

from dataclasses import dataclass

from wildrobot.errors import require


@dataclass
class StubEnvConfig:
    """A pure-JAX point mass that must track a commanded velocity (no physics, compiles fast)."""

    name: str = "stub"
    episode_length: int = 100
    dt: float = 0.05
    max_speed: float = 2.0  # the episode terminates (a "fall") above this speed
    command_range: float = 1.0  # commands are drawn from U(-range, range) per axis
    tracking_sigma: float = 0.25

    def validate(self) -> None:
        require(self.episode_length >= 1, "env.episode_length", self.episode_length, "an integer >= 1")
        require(self.dt > 0, "env.dt", self.dt, "a number > 0")
