"""One observation spec per env: the actor and critic views, their sizes, the export layout, the
command's slice and the mirror map all follow from one table of blocks, and a further view reads
the same quantities whether they come from the env's state or from a plain MuJoCo frame."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from wildrobot.envs.observation import Block, ObservationView, flips, unchanged
from wildrobot.envs.wildrobot import WildRobotEnv
from wildrobot.envs.wildrobot_config import ObsConfig, ResetConfig, WildRobotEnvConfig


def test_a_view_concatenates_its_blocks_and_describes_them():
    view = ObservationView((Block("a", 2, lambda q: q["a"], "m", flips(1, -1)),
                            Block("b", 1, lambda q: q["b"] * 2, "s", unchanged(1))), history=2)
    q = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([3.0])}
    frame = view.frame(q)
    np.testing.assert_array_equal(frame, [1.0, 2.0, 6.0])
    assert (view.frame_size, view.size, view.slice("b")) == (3, 9, slice(2, 3))
    older = jnp.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(view.stacked(frame, older), [1, 2, 6, 0, 1, 2, 3, 4, 5])
    assert [(b["name"], b["start"], b["size"]) for b in view.layout()] == [
        ("a", 0, 2), ("b", 2, 1), ("a[t-1]", 3, 2), ("b[t-1]", 5, 1), ("a[t-2]", 6, 2), ("b[t-2]", 8, 1)]
    perm, sign = view.mirror()
    np.testing.assert_array_equal(perm, np.arange(9))
    np.testing.assert_array_equal(sign, [1, -1, 1] * 3)
    with pytest.raises(KeyError, match="no block 'c'"):
        view.slice("c")


@pytest.fixture(scope="module", params=[(True, 0), (False, 2)], ids=["gait_clock", "no_clock_two_old_frames"])
def env(request):
    gait_phase, history = request.param
    return WildRobotEnv(WildRobotEnvConfig(obs=ObsConfig(gait_phase=gait_phase, history=history)))


def test_sizes_layout_command_slice_and_mirror_follow_the_views(env):
    actor, critic = env.observation["actor"], env.observation["critic"]
    assert env.observation_size == {"actor": actor.size, "critic": critic.size}
    n, feet = env.action_size, len(env.desc.foot_names)
    frame = 3 + 3 + 3 * n + 3 + (2 if env.cfg.obs.gait_phase else 0)
    assert actor.size == frame * (1 + env.cfg.obs.history)
    assert critic.size == frame + 3 + 1 + 3 * feet + 2
    layout = env.observation_layout
    assert [b["start"] for b in layout] == list(np.cumsum([0] + [b["size"] for b in layout[:-1]]))
    assert sum(b["size"] for b in layout) == actor.size and all(b["unit"] for b in layout)
    command = next(b for b in layout if b["name"] == "command")
    assert actor.slice("command") == critic.slice("command") == slice(command["start"], command["start"] + 3)
    mirror = env.mirror
    assert sorted(mirror.obs_perm) == list(range(actor.size))
    twice = np.arange(actor.size, dtype=np.float32) + 1
    np.testing.assert_array_equal(mirror.actor_obs(mirror.actor_obs(twice)), twice)  # its own inverse
    np.testing.assert_array_equal(mirror.action(mirror.action(np.arange(n) + 1.0)), np.arange(n) + 1.0)


# The mirror image through the sagittal plane, written out by hand: mirrored[element] = sign * x[source].
# Joints: left <-> right; hip pitch and roll change sign (their axes mirror onto opposite ones, as the
# description's mirror pairs say), the waist's yaw flips, the rest keep theirs.
JOINT_MIRROR = {"left_hip_pitch": ("right_hip_pitch", -1), "left_hip_roll": ("right_hip_roll", -1),
                "left_knee_pitch": ("right_knee_pitch", 1), "left_ankle_pitch": ("right_ankle_pitch", 1),
                "left_ankle_roll": ("right_ankle_roll", 1), "waist_yaw": ("waist_yaw", -1)}
JOINT_MIRROR.update({right: (left, s) for left, (right, s) in JOINT_MIRROR.items()})
VECTOR_MIRROR = {  # per component: (source component, sign)
    "gravity": [(0, 1), (1, -1), (2, 1)],  # y flips
    "gyro": [(0, -1), (1, 1), (2, -1)],  # roll and yaw rates flip
    "command": [(0, 1), (1, -1), (2, -1)],  # vy and yaw rate flip
    "gait_phase": [(0, -1), (1, -1)],  # half a period on: the other foot's clock
}


def test_the_mirror_maps_each_observation_element_to_its_mirror_partner(env):
    """Every element of the actor observation, in the current frame and in each older one, against the
    hand-written table above; and the action mirror against the same joint map."""
    names = env.desc.joint_names
    assert sorted(JOINT_MIRROR) == sorted(names)
    layout = env.observation_layout
    history = env.cfg.obs.history
    frame_blocks = ["gravity", "gyro", "joint_pos", "joint_vel", "prev_action", "command"] + (
        ["gait_phase"] if env.cfg.obs.gait_phase else [])
    assert [b["name"] for b in layout] == frame_blocks + [f"{b}[t-{k}]" for k in range(1, history + 1)
                                                          for b in frame_blocks]
    expected = {}  # element -> (source element, sign)
    for block in layout:
        base, start = block["name"].split("[")[0], block["start"]
        if base in VECTOR_MIRROR:
            for k, (src, sign) in enumerate(VECTOR_MIRROR[base]):
                expected[start + k] = (start + src, sign)
        else:  # a joint block
            for k, name in enumerate(names):
                partner, sign = JOINT_MIRROR[name]
                expected[start + k] = (start + names.index(partner), sign)
    assert sorted(expected) == list(range(env.observation_size["actor"]))
    x = np.arange(env.observation_size["actor"], dtype=np.float32) + 1.0  # every element distinct
    want = np.array([sign * x[src] for _, (src, sign) in sorted(expected.items())])
    np.testing.assert_array_equal(np.asarray(env.mirror.actor_obs(x)), want)

    a = np.arange(len(names), dtype=np.float32) + 1.0
    mirrored = np.asarray(env.mirror.action(a))
    for i, name in enumerate(names):
        partner, sign = JOINT_MIRROR[name]
        assert mirrored[i] == sign * a[names.index(partner)], name
    assert mirrored[names.index("left_hip_pitch")] == -a[names.index("right_hip_pitch")]


def test_set_command_writes_the_command_block_of_every_view(env):
    state = env.set_command(jax.jit(env.reset)(jax.random.key(0)), jnp.array([0.3, -0.1, 0.5]))
    for name, view in env.observation.items():
        np.testing.assert_allclose(state.obs[name][view.slice("command")], [0.3, -0.1, 0.5])


def test_a_further_view_reads_a_policy_state_and_a_plain_mujoco_frame_alike():
    """A view of kinematic blocks (as a discriminator's features would be) from the same table:
    from the env's own state it equals the critic's blocks, and from a plain MuJoCo ``MjData``
    set to that state's qpos/qvel (as a reference motion's frame would be) it gives the same
    vector, through the same ``quantities`` function."""
    from wildrobot.envs.wildrobot_observation import blocks

    cfg = WildRobotEnvConfig(reset=ResetConfig(joint_noise=0.05))
    cfg = dataclasses.replace(cfg, **{g: dataclasses.replace(getattr(cfg, g), enabled=False)
                                      for g in ("randomization", "push", "noise")})
    env = WildRobotEnv(cfg)
    names = ("joint_pos", "joint_vel", "base_lin_vel", "base_height")
    table = blocks(env.desc, cfg, env.physics.total_mass * 9.81)
    kinematic = ObservationView(tuple(table[name] for name in names))

    state = jax.jit(env.reset)(jax.random.key(3))
    step = jax.jit(env.step)
    for action in 0.5 * jax.random.normal(jax.random.key(4), (5, env.action_size)):
        state = step(state, action)
    from_state = np.asarray(kinematic.frame(env.quantities(state.data, state.info)))
    critic = env.observation["critic"]
    # (eager here, jitted in the env: the last bit may differ)
    np.testing.assert_allclose(from_state, np.concatenate([state.obs["critic"][critic.slice(k)] for k in names]),
                               rtol=0, atol=1e-6)

    model = env.mj_model
    frame = mujoco.MjData(model)
    frame.qpos[:], frame.qvel[:] = np.asarray(state.data.qpos), np.asarray(state.data.qvel)
    mujoco.mj_forward(model, frame)
    from_mujoco = kinematic.frame(env.quantities(env.physics.view(env.physics.arrays_of(frame)), state.info))
    np.testing.assert_allclose(np.asarray(from_mujoco), from_state, rtol=0, atol=1e-6)
    assert np.abs(from_state).max() > 0.05  # a moving robot, not a trivially equal rest pose
