"""Where a cold first run's time goes: trace, lower and compile the trainer's chunk alone.

    uv run python bench/compile_time.py [--num-envs 1024] [--log-every 2] [--run] [overrides...]

The persistent compilation cache is off, so every figure is a cold compile. XLA and JAX
settings come from the environment as usual, e.g. ``XLA_FLAGS=--xla_backend_optimization_level=1``
or ``JAX_DEFAULT_PRNG_IMPL=rbg``; Hydra overrides change the env or PPO (e.g.
``env.randomization.enabled=false``). ``--run`` also times one call of the compiled chunk (after
a first call), so a setting that compiles faster can be checked for what it costs at run time.
The last line holds the figures as name=value pairs.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import jax
import numpy as np

from wildrobot.config import load_config
from wildrobot.dispatch import trainer_class
from wildrobot.envs.factory import make_env
from wildrobot.jax_setup import configure_jax
from wildrobot.train.runner import CHUNK_LENGTH


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="wildrobot")
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--log-every", type=int, default=2, help="iterations per chunk")
    p.add_argument("--run", action="store_true", help="also time one call of the compiled chunk")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = p.parse_args()
    configure_jax()
    jax.config.update("jax_enable_compilation_cache", False)

    cfg = load_config([f"env={args.env}", "algo=ppo", f"trainer.num_envs={args.num_envs}",
                       f"trainer.log_every={args.log_every}", "trainer.progress=false", *args.overrides])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_class(cfg)(cfg, tmp)
        algo = trainer.make_algorithm(make_env(cfg.env))
        key = jax.random.key(cfg.seed)
        start = time.perf_counter()
        chunk = jax.jit(trainer._make_chunk(algo), donate_argnums=0)
        traced = chunk.trace(jax.eval_shape(algo.init, key), CHUNK_LENGTH)
        traced_at = time.perf_counter()
        lowered = traced.lower()
        lowered_at = time.perf_counter()
        compiled = lowered.compile()
        compiled_at = time.perf_counter()
        print(f"prng={jax.config.jax_default_prng_impl} num_envs={args.num_envs} log_every={args.log_every}: "
              f"trace {traced_at - start:.1f} s, lower {lowered_at - traced_at:.1f} s, "
              f"compile {compiled_at - lowered_at:.1f} s")
        figures = (f"trace_s={traced_at - start:.1f} lower_s={lowered_at - traced_at:.1f} "
                   f"compile_s={compiled_at - lowered_at:.1f}")
        if args.run:
            carry = jax.jit(algo.init)(key)
            length = np.int32(args.log_every)
            carry, _ = compiled(carry, length)
            jax.block_until_ready(carry)
            run_start = time.perf_counter()
            carry, _ = compiled(carry, length)
            jax.block_until_ready(carry)
            figures += f" chunk_run_s={time.perf_counter() - run_start:.2f}"
    print(figures)


if __name__ == "__main__":
    main()
