"""WildRobot's observation spec: one table of named blocks, and the views made of them.

Every block reads the step's quantities (``WildRobotEnv.quantities``: IMU, joints, base, feet from
the physics state, plus the episode's command, previous action, feet air time and randomisation
draws). The actor sees what the robot senses (with sensor noise in training); the critic sees the
noise-free actor frame and privileged state. Mirror images reflect through the sagittal (x-z)
plane: vectors flip y, angular velocities flip x and z, joints follow the robot description's
mirror map, feet swap, the command flips vy and yaw rate, and the gait clock moves half a period
on (the other foot's phase).
"""

from __future__ import annotations

import numpy as np

from wildrobot.envs.observation import Block, ObservationView, flips, unchanged
from wildrobot.envs.wildrobot_config import WildRobotEnvConfig
from wildrobot.robot.description import RobotDescription


def blocks(desc: RobotDescription, cfg: WildRobotEnvConfig, weight: float) -> dict[str, Block]:
    """Every block an observation view of this robot can hold, by name."""
    n, nfeet = desc.num_joints, len(desc.foot_names)
    joints = (desc.mirror_permutation, desc.mirror_signs)
    feet = (np.arange(nfeet)[::-1].copy(), np.ones(nfeet, np.float32))  # left <-> right (two feet)
    home = np.asarray(desc.home, np.float32)
    max_speed = desc.max_joint_speed
    table = [
        # what the robot senses (the actor frame)
        Block("gravity", 3, lambda q: q["gravity"], "unit gravity direction in the IMU frame", flips(1, -1, 1)),
        Block("gyro", 3, lambda q: q["gyro"], "IMU angular velocity, rad/s, IMU frame", flips(-1, 1, -1)),
        Block("joint_pos", n, lambda q: q["joint_pos"] - home, "joint angle minus home, rad, actuator order", joints),
        Block("joint_vel", n, lambda q: q["joint_vel"] / max_speed,
              f"joint velocity / max_joint_speed ({max_speed} rad/s)", joints),
        Block("prev_action", n, lambda q: q["prev_action"], "the previous action, in [-1, 1]", joints),
        Block("command", 3, lambda q: q["command"], "vx, vy (m/s, heading frame), yaw rate (rad/s)", flips(1, -1, -1)),
        Block("gait_phase", 2, lambda q: q["phase_obs"],
              (f"sin, cos of the gait clock's phase: 2 pi {cfg.obs.gait_frequency} Hz * dt per control step"
               + (f", + {cfg.obs.gait_frequency_per_yaw_rate} Hz per rad/s of |yaw rate command| beyond "
                  f"{cfg.obs.gait_frequency_yaw_from}" if cfg.obs.gait_frequency_per_yaw_rate else "")), flips(-1, -1)),
        # privileged state (the critic)
        Block("base_lin_vel", 3, lambda q: q["base_vel_heading"], "base linear velocity, m/s, heading frame",
              flips(1, -1, 1)),
        Block("base_height", 1, lambda q: q["base_height"][None], "root height, m", unchanged(1)),
        Block("foot_contact_force", nfeet, lambda q: q["contact_force"] / weight,
              "normal contact force per foot / robot weight", feet),
        Block("foot_height", nfeet, lambda q: q["foot_height"], "sole height per foot, m", feet),
        Block("air_time", nfeet, lambda q: q["air_time"], "time since each foot left the floor, s", feet),
        Block("floor_friction", 1, lambda q: q["floor_friction"][None], "the episode's floor friction", unchanged(1)),
        Block("action_delay", 1, lambda q: q["action_delay"][None], "1 in an episode with one step of action delay",
              unchanged(1)),
        # the kinematic state (WildRobotEnv.kinematics: from qpos and qvel alone, for policy states and
        # reference frames alike)
        Block("joint_angle", n, lambda q: q["joint_angle"] - home, "joint angle minus home, rad (no servo offset)",
              joints),
        Block("base_ang_vel", 3, lambda q: q["base_angvel_heading"], "base angular velocity, rad/s, heading frame",
              flips(-1, 1, -1)),
        Block("feet_pos", 3 * nfeet, lambda q: q["feet_pos_heading"].reshape(-1),
              "sole positions relative to the base, m, heading frame (left x, y, z, then right)",
              (np.array([3, 4, 5, 0, 1, 2]), np.array([1, -1, 1, 1, -1, 1], np.float32)) if nfeet == 2 else None),
    ]
    return {b.name: b for b in table}


ACTOR_FRAME = ("gravity", "gyro", "joint_pos", "joint_vel", "prev_action", "command", "gait_phase")
PRIVILEGED = ("base_lin_vel", "base_height", "foot_contact_force", "foot_height", "air_time", "floor_friction",
              "action_delay")


# what a motion-style discriminator compares between the policy's transitions and reference gaits
FEATURES = ("joint_angle", "joint_vel", "base_height", "base_lin_vel", "base_ang_vel", "feet_pos")


def feature_view(desc: RobotDescription, cfg: WildRobotEnvConfig, weight: float) -> ObservationView:
    """The kinematic features of a state (``FEATURES``), read from ``WildRobotEnv.kinematics``."""
    table = blocks(desc, cfg, weight)
    return ObservationView(tuple(table[name] for name in FEATURES))


def views(desc: RobotDescription, cfg: WildRobotEnvConfig, weight: float) -> dict[str, ObservationView]:
    """{"actor": the deployable observation (``obs.history`` older frames after the current one),
    "critic": the noise-free actor frame and the privileged blocks}."""
    table = blocks(desc, cfg, weight)
    frame = tuple(table[name] for name in ACTOR_FRAME if name != "gait_phase" or cfg.obs.gait_phase)
    return {
        "actor": ObservationView(frame, history=cfg.obs.history),
        "critic": ObservationView(frame + tuple(table[name] for name in PRIVILEGED)),
    }
