"""Typed configuration of the WildRobot velocity-command locomotion env.

Everything a user tunes lives here (and in conf/env/wildrobot.yaml); robot facts (joints, home
pose, feet, IMU) live in the robot description (``robot``: path, None = the shipped 11-DOF one).
Only OmegaConf-friendly types: int, float, bool, str, Optional, lists, nested dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import List, Optional

from wildrobot.errors import require

# auto: MuJoCo C on the CPU backend (called from the jitted loop), MJX elsewhere (a GPU)
SIM_BACKENDS = ("auto", "mjx", "mujoco")


@dataclass
class SimConfig:
    # None keeps the MJCF's own value (5 ms, 2 Newton iterations, 3 line-search iterations).
    timestep: Optional[float] = None
    iterations: Optional[int] = None
    ls_iterations: Optional[int] = None
    substeps: int = 4  # control period = timestep * substeps (50 Hz with the MJCF's 5 ms)
    backend: str = "auto"  # one of SIM_BACKENDS


@dataclass
class CommandConfig:
    """Velocity commands (vx, vy in the heading frame, m/s; yaw rate, rad/s)."""

    vx: List[float] = field(default_factory=lambda: [0.0, 0.4])
    vy: List[float] = field(default_factory=lambda: [-0.1, 0.1])
    yaw_rate: List[float] = field(default_factory=lambda: [-0.7, 0.7])
    zero_probability: float = 0.1  # share of resampled commands that are exactly zero (stand)
    deadband: float = 0.05  # components smaller than this become 0
    resample_interval_s: float = 10.0


@dataclass
class RewardWeights:
    """Weight of each named term; every term is logged as reward/<name> (weight * value * dt)."""

    tracking_lin_vel: float = 1.5
    tracking_ang_vel: float = 3.0
    lin_vel_z: float = -1.0
    ang_vel_xy: float = -0.05
    orientation: float = -5.0
    base_height: float = -20.0
    torque: float = -1e-3
    action_rate: float = -0.01
    joint_limits: float = -2.0
    pose: float = -0.1
    feet_slip: float = -0.25
    feet_air_time: float = 2.0
    feet_phase: float = 1.0
    stand_still: float = -0.5
    termination: float = -1.0


@dataclass
class RewardConfig:
    weights: RewardWeights = field(default_factory=RewardWeights)
    # narrow enough that the last few cm/s and tenths of a rad/s still pay (0.1 and 0.2 before:
    # bench/learn_walk.py walked in about half the time with these, docs/benchmarks.md)
    tracking_sigma: float = 0.05  # exp(-|v_err|^2 / sigma), (m/s)^2
    tracking_sigma_yaw: float = 0.05  # (rad/s)^2
    base_height_target: Optional[float] = None  # m; None = root height at the home keyframe
    # joint_limits penalises leaving this share of each range, centred (MuJoCo Playground's 0.95): 0.9
    # halved the 10 deg of hip-roll adduction that turning uses (docs/environment.md)
    soft_limit_fraction: float = 0.95
    air_time_min: float = 0.15  # s; touchdowns after a shorter swing are penalised
    air_time_max: float = 0.4  # s; longer swings earn no more
    swing_height: float = 0.04  # m; peak sole height of the gait clock's swing (feet_phase)
    feet_phase_sigma: float = 0.002  # m^2: exp(-sum of squared sole-height errors / sigma)
    # which height of each sole feet_phase reads: "centre" (the sole site, the middle of its bottom
    # face) or "lowest" (its lowest point, the clearance the gait metrics read: a foot that pitches in
    # swing keeps its centre up and its toe or heel low)
    feet_phase_point: str = "centre"
    contact_threshold: float = 2.0  # N per foot, as the robot's foot switches
    clip_at_zero: bool = True  # Playground-style: per-step sum clipped at 0 (falls end the income)
    # terms added after that clip, so they count even when the others' sum is held at 0: a fall's
    # penalty inside the clip cost nothing to a stumbling robot whose penalties already held it there
    unclipped_terms: List[str] = field(default_factory=lambda: ["termination"])


@dataclass
class ObsConfig:
    gait_phase: bool = True  # (sin, cos) of a gait clock per foot in the actor obs
    gait_frequency: float = 2.0  # Hz; more steps per second turn this hip-yaw-less robot faster
    # Hz added per rad/s of commanded |yaw rate| beyond gait_frequency_yaw_from: a clock that steps
    # faster on fast turns (0: one frequency for every command)
    gait_frequency_per_yaw_rate: float = 0.0
    gait_frequency_yaw_from: float = 0.1  # rad/s
    history: int = 0  # extra past actor frames stacked into the actor obs


@dataclass
class RandomRange:
    enabled: bool = True
    low: float = 1.0
    high: float = 1.0


@dataclass
class DelayConfig:
    enabled: bool = True
    probability: float = 0.5  # share of episodes that run with one control step of action delay


@dataclass
class RandomizationConfig:
    """Per-episode domain randomisation; each item switchable, sampled uniformly in [low, high]."""

    enabled: bool = True
    floor_friction: RandomRange = field(default_factory=lambda: RandomRange(True, 0.4, 1.0))
    link_mass_scale: RandomRange = field(default_factory=lambda: RandomRange(True, 0.9, 1.1))
    kp_scale: RandomRange = field(default_factory=lambda: RandomRange(True, 0.9, 1.1))
    frictionloss_scale: RandomRange = field(default_factory=lambda: RandomRange(True, 0.8, 1.2))
    joint_offset: RandomRange = field(default_factory=lambda: RandomRange(True, -0.03, 0.03))  # rad
    action_delay: DelayConfig = field(default_factory=DelayConfig)


@dataclass
class PushConfig:
    """Random pushes: a horizontal velocity kick of the whole robot on a timer."""

    enabled: bool = True
    interval_s: List[float] = field(default_factory=lambda: [5.0, 10.0])
    velocity: List[float] = field(default_factory=lambda: [0.1, 0.5])  # m/s
    # A curriculum for training: the largest kick grows linearly from velocity[1] to grow_to (m/s)
    # between grow_steps[0] and grow_steps[1] env steps of the training batch (the clock that
    # wrap_for_training keeps). An evaluation's episodes are a fresh batch: they draw `velocity`.
    # None: kicks of `velocity` all run long.
    grow_to: Optional[float] = None
    grow_steps: List[float] = field(default_factory=lambda: [10e6, 16e6])  # as conf/env/wildrobot.yaml


@dataclass
class NoiseConfig:
    """Gaussian noise (standard deviations) on the actor observation only."""

    enabled: bool = True
    gyro: float = 0.05  # rad/s
    gravity: float = 0.035  # ~2 degrees of orientation error
    joint_pos: float = 0.01  # rad
    joint_vel: float = 0.1  # rad/s


@dataclass
class TerminationConfig:
    min_base_height: float = 0.25  # m, root body
    min_torso_up: float = 0.5  # z of the torso's up axis; 0.5 = tilted 60 degrees


@dataclass
class ResetConfig:
    joint_noise: float = 0.02  # rad, uniform around home
    random_heading: bool = True


@dataclass
class WildRobotEnvConfig:
    name: str = "wildrobot"
    robot: Optional[str] = None  # robot description YAML; None = the shipped 11-DOF WildRobot
    episode_length: int = 1000  # control steps (20 s at 50 Hz)
    action_scale: float = 1.0  # multiplies the description's per-joint scales
    sim: SimConfig = field(default_factory=SimConfig)
    command: CommandConfig = field(default_factory=CommandConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    obs: ObsConfig = field(default_factory=ObsConfig)
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    push: PushConfig = field(default_factory=PushConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    termination: TerminationConfig = field(default_factory=TerminationConfig)
    reset: ResetConfig = field(default_factory=ResetConfig)

    def validate(self) -> None:
        require(self.sim.backend in SIM_BACKENDS, "env.sim.backend", self.sim.backend,
                "auto (MuJoCo C on a CPU, MJX on a GPU), mjx or mujoco")
        require(self.sim.substeps >= 1, "env.sim.substeps", self.sim.substeps, "an integer >= 1")
        require(self.episode_length >= 1, "env.episode_length", self.episode_length, "an integer >= 1")
        terms = [f.name for f in fields(RewardWeights)]
        for t in self.reward.unclipped_terms:
            require(t in terms, "env.reward.unclipped_terms", list(self.reward.unclipped_terms),
                    f"names of reward terms ({', '.join(terms)}); {t!r} is not one")
        push = self.push
        require(len(push.velocity) == 2 and 0 <= push.velocity[0] <= push.velocity[1], "env.push.velocity",
                list(push.velocity), "[low, high] in m/s with 0 <= low <= high")
        if push.grow_to is not None:
            require(push.grow_to >= push.velocity[1], "env.push.grow_to", push.grow_to,
                    f"null or a kick in m/s at least env.push.velocity's high end ({push.velocity[1]})")
            require(len(push.grow_steps) == 2 and 0 <= push.grow_steps[0] < push.grow_steps[1],
                    "env.push.grow_steps", list(push.grow_steps),
                    "[start, end] env steps of the training batch with 0 <= start < end")
        require(self.obs.gait_frequency >= 0, "env.obs.gait_frequency", self.obs.gait_frequency, "Hz >= 0")
        require(self.obs.gait_frequency_per_yaw_rate >= 0, "env.obs.gait_frequency_per_yaw_rate",
                self.obs.gait_frequency_per_yaw_rate, "Hz per rad/s >= 0 (0: one clock frequency for every command)")
        require(self.obs.gait_frequency_yaw_from >= 0, "env.obs.gait_frequency_yaw_from",
                self.obs.gait_frequency_yaw_from, "a yaw rate in rad/s >= 0")
        require(self.reward.feet_phase_point in ("centre", "lowest"), "env.reward.feet_phase_point",
                self.reward.feet_phase_point, "centre (the sole site) or lowest (the sole's lowest point)")
