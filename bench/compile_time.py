"""Where a cold first run's time goes: trace, lower and compile the trainer's chunk alone, or
one of its parts.

    uv run python bench/compile_time.py [--part chunk] [--num-envs 1024] [--log-every 2] [--run] [overrides...]

``--part``: ``chunk`` (the trainer's program: rollouts, GAE, updates), ``env`` (the batched env
stepped over one rollout with random actions), ``update`` (PPO's update alone), ``physics`` (one
control step of the env's bare physics for the batch, with the model shared by every env) or
``physics-one`` (the same for one robot, unbatched).

The persistent compilation cache is off, so every figure is a cold compile. XLA and JAX
settings come from the environment as usual, e.g. ``XLA_FLAGS=--xla_backend_optimization_level=1``
or ``JAX_DEFAULT_PRNG_IMPL=rbg``; Hydra overrides change the env or PPO (e.g.
``env.randomization.enabled=false``). ``--by-source N`` lists where the compiled program's
instructions come from (MJX, or a function of this project) and the share of random-number
generation: what a change would have to shrink. ``--run`` also times one call of the compiled chunk (after
a first call), so a setting that compiles faster can be checked for what it costs at run time.
The last line holds the figures as name=value pairs.
"""

from __future__ import annotations

import argparse
import collections
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from common import random_action_rollout

import wildrobot
from wildrobot.cli import load_config
from wildrobot.dispatch import trainer_class
from wildrobot.envs.factory import make_env
from wildrobot.jax_setup import configure_jax
from wildrobot.train.chunks import CHUNK_LENGTH, make_chunk


PARTS = ("chunk", "env", "update", "physics", "physics-one")
RANDOM_OPS = re.compile(r"threefry|random_bits|jit\((?:_uniform|_normal|_bernoulli|_randint|_shuffle)\)")


def instructions_by_source(hlo: str) -> tuple[collections.Counter, int]:
    """Count the optimised program's instructions by the Python that produced them: the innermost
    frame in this project (file:function), or "mujoco.mjx" for MJX's own code; and how many come
    from random-number generation. Read from the stack-frame tables at the top of the HLO text."""
    def table(name: str, until: str) -> str:
        if f"\n{name}\n" not in hlo:
            raise SystemExit(f"the compiled program's text has no {name} table (XLA metadata off?): "
                             "--by-source needs it")
        return hlo.split(f"\n{name}\n", 1)[1].split(f"\n{until}\n", 1)[0]

    files = dict(re.findall(r'^(\d+) "(.*)"$', table("FileNames", "FunctionNames"), re.M))
    functions = dict(re.findall(r'^(\d+) "(.*)"$', table("FunctionNames", "FileLocations"), re.M))
    locations = {int(i): (f, fn) for i, f, fn in re.findall(
        r"^(\d+) \{file_name_id=(\d+) function_name_id=(\d+)", table("FileLocations", "StackFrames"), re.M)}
    frames = {int(i): (int(loc), int(parent)) for i, loc, parent in re.findall(
        r"^(\d+) \{file_location_id=(\d+) parent_frame_id=(\d+)", table("StackFrames", ""), re.M)}
    # XLA prints a parent id one above the frame it names (0, no parent, prints as 1): a frame that
    # seems to be its own or a later frame's child gives that away.
    shift = 1 if any(parent >= i for i, (_, parent) in frames.items()) else 0
    project_roots = (str(Path(wildrobot.__file__).parent) + "/", str(Path(__file__).parent) + "/")

    def source(frame: int) -> str:
        while frame in frames:  # innermost frame first
            loc, parent = frames[frame]
            path, function = files[locations[loc][0]], functions[locations[loc][1]]
            if "/mujoco/mjx/" in path:
                return "mujoco.mjx"
            if path.startswith(project_roots):
                return f"{Path(path).parent.name}/{Path(path).name}:{function.split('.<locals>')[0]}"
            frame = parent - shift
        return "other (JAX, Flax, Optax)"

    counts, random_ops = collections.Counter(), 0
    for line in re.finditer(r"^\s+(?:ROOT )?%\S+ = .*stack_frame_id=(\d+)", hlo, re.M):
        if " fusion(" in line.group(0):
            continue  # a call of a fused computation, whose instructions are counted themselves
        counts[source(int(line.group(1)))] += 1
        random_ops += bool(RANDOM_OPS.search(line.group(0)))
    return counts, random_ops


def program(part: str, trainer, algo, key: jax.Array) -> tuple[Any, tuple]:
    """(jitted function, abstract arguments) of one part of the trainer's chunk."""
    state = jax.eval_shape(algo.init, key)
    if part == "chunk":
        return jax.jit(make_chunk(algo, trainer.cfg.trainer.log_every), donate_argnums=0), (state, CHUNK_LENGTH)
    if part == "update":
        traj = jax.eval_shape(algo.rollout, state, key)[1]
        return jax.jit(algo.update), (state, traj, key)
    env = algo.env
    if part == "env":
        return jax.jit(random_action_rollout(env, trainer.cfg.algo.unroll_length)), (state.env_state, key)
    physics = env.env.physics  # the WildRobot env inside the batch wrapper
    substeps = trainer.cfg.env.sim.substeps
    one_data = jax.eval_shape(lambda: physics.home_data)
    one_ctrl = jax.ShapeDtypeStruct((physics.mj_model.nu,), np.float32)
    if part == "physics-one":
        return jax.jit(lambda d, c: physics.step(physics.model, d, c, substeps)), (one_data, one_ctrl)
    n = trainer.cfg.trainer.num_envs
    batched = jax.tree.map(lambda x: jax.ShapeDtypeStruct((n, *x.shape), x.dtype), (one_data, one_ctrl))
    return jax.jit(jax.vmap(lambda d, c: physics.step(physics.model, d, c, substeps))), batched


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=PARTS, default="chunk", help="what to compile (see above)")
    p.add_argument("--env", default="wildrobot")
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--log-every", type=int, default=2, help="iterations per chunk")
    p.add_argument("--run", action="store_true", help="also time one call of the compiled chunk")
    p.add_argument("--by-source", type=int, default=0, metavar="N",
                   help="also list the N sources with the most instructions in the compiled program")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = p.parse_args()
    if args.run and args.part != "chunk":
        p.error("--run times the trainer's chunk: use it with --part chunk")
    configure_jax()
    jax.config.update("jax_enable_compilation_cache", False)

    cfg = load_config([f"env={args.env}", "algo=ppo", f"trainer.num_envs={args.num_envs}",
                       f"trainer.log_every={args.log_every}", "trainer.progress=false", *args.overrides])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_class(cfg)(cfg, tmp)
        algo = trainer.make_algorithm(make_env(cfg.env))
        key = jax.random.key(cfg.seed)
        fn, abstract_args = program(args.part, trainer, algo, key)
        start = time.perf_counter()
        traced = fn.trace(*abstract_args)
        traced_at = time.perf_counter()
        lowered = traced.lower()
        lowered_at = time.perf_counter()
        compiled = lowered.compile()
        compiled_at = time.perf_counter()
        print(f"{args.part}: prng={jax.config.jax_default_prng_impl} num_envs={args.num_envs} "
              f"log_every={args.log_every}: "
              f"trace {traced_at - start:.1f} s, lower {lowered_at - traced_at:.1f} s, "
              f"compile {compiled_at - lowered_at:.1f} s")
        figures = (f"trace_s={traced_at - start:.1f} lower_s={lowered_at - traced_at:.1f} "
                   f"compile_s={compiled_at - lowered_at:.1f}")
        if args.by_source:
            counts, random_ops = instructions_by_source(compiled.as_text())
            total = sum(counts.values())
            print(f"{total} instructions with a source, {100 * random_ops / total:.1f} % of them random-number "
                  "generation; the largest sources:")
            for name, n in counts.most_common(args.by_source):
                print(f"  {100 * n / total:5.1f} %  {name}")
            figures += f" instructions={total} mjx_pct={100 * counts['mujoco.mjx'] / total:.1f} " \
                       f"random_pct={100 * random_ops / total:.1f}"
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
