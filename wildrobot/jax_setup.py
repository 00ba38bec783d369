"""JAX settings every entry point applies before any compilation."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from pathlib import Path

import jax


class _DropMjxDeviceNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Using JAX default device")


def configure_jax() -> None:
    # Orbax logs every save step at INFO through absl; keep the console for our own progress.
    logging.getLogger("absl").setLevel(logging.WARNING)
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    # MJX announces the device on the root logger at every put_model/put_data (4 lines per run).
    root = logging.getLogger()
    if not any(isinstance(f, _DropMjxDeviceNotice) for f in root.filters):
        root.addFilter(_DropMjxDeviceNotice())
    # A persistent compilation cache saves the jit time on every rerun, on the CPU too.
    cache = os.environ.get("WILDROBOT_JAX_CACHE", str(Path.home() / ".cache" / "wildrobot" / "jax"))
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # TF32 matmuls on Ampere+ GPUs hurt RL training; exact float32 costs little here.
    jax.config.update("jax_default_matmul_precision", "highest")


def release_freed_memory() -> None:
    """Give memory that XLA freed back to the OS (glibc only; elsewhere a no-op).

    A compilation frees most of what it allocated, but glibc keeps freed blocks of its per-thread
    arenas mapped, so without this each compile's peak stays in the process's resident memory
    and the next compile adds its own on top.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def start_distributed() -> int:
    """Join a run of several processes before JAX starts its backends; the number of processes.

    Two ways in: ``python -m wildrobot.launch`` sets ``WILDROBOT_COORDINATOR``,
    ``WILDROBOT_NUM_PROCESSES`` and ``WILDROBOT_PROCESS_ID``; a SLURM step with several tasks
    (``srun``, or hydra-submitit with ``tasks_per_node`` > 1) has ``SLURM_STEP_NUM_TASKS`` > 1, and
    ``jax.distributed.initialize()`` reads SLURM's variables by itself. CPU collectives go over gloo (loopback on one
    machine, the network between hosts). One process: nothing to do."""
    processes = int(os.environ.get("WILDROBOT_NUM_PROCESSES", "1") or 1)
    in_slurm_step = "SLURM_STEP_ID" in os.environ and int(os.environ.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1
    if processes <= 1 and not in_slurm_step:
        return 1
    if jax.distributed.is_initialized():  # a second run in this process (a sweep's jobs, one after another)
        return jax.process_count()
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if processes > 1:
        jax.distributed.initialize(coordinator_address=os.environ["WILDROBOT_COORDINATOR"],
                                   num_processes=processes, process_id=int(os.environ["WILDROBOT_PROCESS_ID"]))
    else:
        jax.distributed.initialize()
    return jax.process_count()


def give_back_device_put_replicated() -> None:
    """Restore ``jax.device_put_replicated`` (removed in jax 0.10) for libraries that still call
    it, such as Brax 0.14's ``ppo.train`` (docs/environment.md): ``x`` stacked once per device on a
    leading axis and laid out one slice per device, as jax < 0.10 made it. Leaves a jax that still
    has the function alone."""
    if hasattr(jax, "device_put_replicated"):
        return
    import jax.numpy as jnp

    def device_put_replicated(x, devices):
        devices = list(devices)
        stacked = jax.tree.map(lambda a: jnp.stack([jnp.asarray(a)] * len(devices)), x)
        mesh = jax.sharding.Mesh(devices, ("devices",))
        return jax.device_put(stacked, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("devices")))

    jax.device_put_replicated = device_put_replicated
