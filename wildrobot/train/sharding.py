"""Many devices (``trainer.devices``): the env batch split over a 1-D mesh of devices, everything
else in the carry replicated, and each chunk still one jitted program.

An algorithm names the fields of its carry whose every leaf has the env batch as its leading axis
(``batched_fields``: PPO's ``env_state``, which holds the observations and the per-env episode
statistics too). Those leaves are split along that axis (``NamedSharding(mesh, P("envs"))``);
every other leaf (parameters, optimiser state, normalisers, keys, AMP's discriminator and replay
buffer) is replicated. Which leaves are split comes from the algorithm, never from a leaf's shape
(a hidden layer 512 wide next to 512 envs stays replicated). XLA's partitioner carries the split
through the program: each device steps its own envs and computes its share of every minibatch
(PPO shuffles within each device's envs: ``ppo.shuffled_minibatches``); the means in the losses
are the all-reduces. With one device nothing here is used: ``OneDevice`` is the single-device
programs as they always were.
"""

from __future__ import annotations

from typing import Any, Union

import jax
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from wildrobot.algos.base import Algorithm
from wildrobot.config import Config, check_device_split
from wildrobot.envs.core import PHYSICS_NAMES
from wildrobot.errors import ConfigError

AXIS = "envs"  # the mesh's one axis: the env batch


def device_count(cfg: Config, physics: str) -> int:
    """``trainer.devices`` as a count, checked against this machine, the batch and the physics
    (a ``ConfigError`` before anything compiles)."""
    spec = cfg.trainer.devices
    available = jax.device_count()
    count = available if spec == "all" else int(spec)
    if count > available:
        raise ConfigError(
            f"trainer.devices={spec}: JAX sees {available} device(s) here ({jax.devices()[0].platform}). Use "
            f"trainer.devices=all or a count up to {available}. To try sharding on a CPU, start with "
            f"XLA_FLAGS=--xla_force_host_platform_device_count=N (set before JAX starts) for N fake devices.")
    if jax.process_count() > 1 and count != available:
        raise ConfigError(
            f"trainer.devices={spec}: this run has {jax.process_count()} processes (wildrobot.launch or srun) with "
            f"{available} devices in all, and each process must take its share of the env batch: use "
            f"trainer.devices=all.")
    check_device_split(cfg, count)
    if count > 1 and physics == "mujoco":
        backend = getattr(getattr(cfg.env, "sim", None), "backend", "mujoco")
        how = " (auto picks it on a CPU)" if backend == "auto" else ""
        raise ConfigError(
            f"trainer.devices={spec} ({count} devices) cannot split the {PHYSICS_NAMES['mujoco']} physics: "
            f"env.sim.backend={backend} runs it{how}, and its batch is one call into MuJoCo on the host per "
            f"control step. Use env.sim.backend=mjx to shard the env batch over devices, or trainer.devices=1"
            + (f" (this run has {jax.process_count()} processes: each would need its own run of MuJoCo C, which "
               f"is not supported; start one process per run instead)." if jax.process_count() > 1 else "."))
    return count


def carry_shardings(algo: Algorithm, abstract: Any, mesh: jax.sharding.Mesh) -> Any:
    """A ``NamedSharding`` per leaf of the carry: split along the mesh for the leaves of the
    algorithm's ``batched_fields``, replicated for all others."""
    batched = set(getattr(algo, "batched_fields", ()))
    split, replicated = NamedSharding(mesh, PartitionSpec(AXIS)), NamedSharding(mesh, PartitionSpec())
    devices = mesh.devices.size

    def of(path: tuple, leaf: Any) -> NamedSharding:
        field = getattr(path[0], "name", getattr(path[0], "key", None)) if path else None
        if field not in batched:
            return replicated
        if not leaf.shape or leaf.shape[0] % devices:
            raise ValueError(f"the carry's {jax.tree_util.keystr(path)} (shape {leaf.shape}) is in a batched field "
                             f"({field}) but has no leading env axis that splits over {devices} devices")
        return split

    return jax.tree_util.tree_map_with_path(of, abstract)


class OneDevice:
    """One device: the programs exactly as without sharding."""

    count = 1

    def __init__(self, abstract: Any):
        self.abstract = abstract  # the carry's shapes (what the first chunk compiles for)

    def jit_init(self, init: Any) -> Any:
        return jax.jit(init)

    def jit_chunk(self, chunk: Any) -> Any:
        return jax.jit(chunk, donate_argnums=0)

    def place(self, carry: Any) -> Any:
        return carry


class Sharded:
    """``count`` devices on one mesh axis: the carry's shardings, and ``init`` and the chunk
    jitted to take and give the carry with them (the chunk's carry still donated)."""

    def __init__(self, algo: Algorithm, abstract: Any, count: int):
        self.count = count
        self.mesh = jax.make_mesh((count,), (AXIS,), axis_types=(AxisType.Auto,), devices=jax.devices()[:count])
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.shardings = carry_shardings(algo, abstract, self.mesh)
        # what the first chunk compiles for and a checkpoint restores onto: shapes with their shardings
        self.abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                                     abstract, self.shardings)

    def jit_init(self, init: Any) -> Any:
        return jax.jit(init, out_shardings=self.shardings)

    def jit_chunk(self, chunk: Any) -> Any:
        """``chunk(carry, n) -> (carry, metrics)``: the carry in and out with its shardings, ``n``
        and the metrics replicated."""
        return jax.jit(chunk, donate_argnums=0, in_shardings=(self.shardings, self.replicated),
                       out_shardings=(self.shardings, self.replicated))

    def place(self, carry: Any) -> Any:
        """A carry (e.g. restored from a checkpoint) on the mesh with the carry's shardings."""
        return jax.device_put(carry, self.shardings)


def placement(algo: Algorithm, abstract: Any, count: int) -> Union[OneDevice, Sharded]:
    """How the carry lies on ``count`` devices. With more than one, the algorithm is told how many
    groups its env batch is split into (PPO's ``shards``: minibatches shuffled within each), before
    anything is traced."""
    if count == 1:
        return OneDevice(abstract)
    if hasattr(algo, "shards"):
        algo.shards = count
    return Sharded(algo, abstract, count)


def grouped_like_devices(trainer: Any, groups: int) -> Any:
    """``trainer`` (one device) with its PPO shuffling minibatches in ``groups`` groups of envs, as
    ``groups`` devices do: the run a sharded one equals up to float rounding (tests, benchmarks)."""
    make = trainer.make_algorithm

    def grouped(env):
        algo = make(env)
        algo.shards = groups
        return algo

    trainer.make_algorithm = grouped
    return trainer
