"""PPO training throughput next to its unavoidable parts, measured side by side in one run.

    uv run python bench/train_throughput.py [--env wildrobot] [--num-envs 1024] [--chunks 4] [overrides...]

1. the real trainer (``Trainer.run``: chunks of jitted iterations, logging, the final checkpoint),
   timed over every chunk after the first (a run's first chunk is one iteration, right after
   compiling);
2. the env alone: the same batched env (auto-reset included) stepped with random actions;
3. the PPO update alone (GAE + epochs of minibatches) on one rollout of the same size.

The order is trainer (the first run: compile time and peak memory), parts, then ``--rounds``
times: trainer again (its programs from the compilation cache), parts again. Each round's
overhead compares that trainer run with the mean of the parts timed just before and just after
it, so a shared machine that speeds up or slows down over the minutes of the benchmark moves
both sides alike; the headline is the median over rounds, and the spread is printed beside it.

``overhead = trainer rate / (1 / (1/env rate + 1/update rate))``, per sample: 1.0 means the
trainer adds nothing to the serial sum of its parts. Also: trainer rate / env rate, peak resident
memory after the first training run, and the time from start to the end of the first iteration
(env build, init, compile, one iteration) of the first run. The last line holds the headline
figures as name=value pairs.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
from common import random_action_rollout, trainer_rate

from wildrobot.cli import load_config
from wildrobot.dispatch import trainer_class
from wildrobot.envs.factory import make_env
from wildrobot.jax_setup import configure_jax


def timed(fn, *args, repeats: int):
    out = fn(*args)
    jax.block_until_ready(out)  # warm-up / compile
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / repeats, out


def run_trainer(cfg):
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_class(cfg)(cfg, Path(tmp) / "run")
        assert trainer.run() == 0
    return trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="wildrobot")
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--chunks", type=int, default=4, help="iterations to run, in units of log_every (all but the first iteration are timed)")
    p.add_argument("--log-every", type=int, default=2, help="iterations per chunk")
    p.add_argument("--rounds", type=int, default=3,
                   help="trainer runs from the compilation cache, each bracketed by timings of the parts")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. algo.policy.hidden_sizes=[512,256,128]")
    args = p.parse_args()
    if args.chunks * args.log_every < 2:
        p.error("run at least 2 iterations (--chunks x --log-every): the first one is not timed")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    configure_jax()

    iterations = args.chunks * args.log_every  # chunks of 1, log_every - 1, then log_every iterations
    cfg = load_config([f"env={args.env}", "algo=ppo", f"trainer.num_envs={args.num_envs}",
                       f"trainer.iterations={iterations}", f"trainer.log_every={args.log_every}",
                       "trainer.eval_every=0", "trainer.checkpoint_every=0", "trainer.progress=false", *args.overrides])
    a = cfg.algo
    print(f"device={jax.devices()[0].device_kind} env={args.env} num_envs={args.num_envs} unroll={a.unroll_length} "
          f"epochs={a.num_epochs} minibatches={a.num_minibatches} policy={a.policy.hidden_sizes} value={a.value.hidden_sizes}")

    samples = args.num_envs * a.unroll_length

    # 1. the trainer, end to end: a new run, compiling (first iteration and peak memory)
    first_run = run_trainer(cfg)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    first_s = first_run.seconds_to_first_chunk

    # 2. the env alone (same batch, same wrapper, random actions) and 3. the update alone (on one
    # real rollout), timed before and after each of the later trainer runs
    algo = first_run.make_algorithm(make_env(cfg.env))
    state = algo.init(jax.random.key(0))
    env_only = jax.jit(random_action_rollout(algo.env, a.unroll_length))
    _, traj, _ = jax.jit(algo.rollout)(state, jax.random.key(2))
    update = jax.jit(algo.update)
    repeats = max(2, args.chunks)

    def time_parts() -> tuple[float, float]:
        env_seconds, _ = timed(env_only, state.env_state, jax.random.key(1), repeats=repeats)
        update_seconds, _ = timed(update, state, traj, jax.random.key(3), repeats=repeats)
        return env_seconds, update_seconds

    def serial_rate(parts: tuple[float, float]) -> float:
        """Samples per second of the env alone and the update alone, one after the other."""
        return samples / sum(parts)

    parts = [time_parts()]
    trainer_rates, overheads = [], []
    for r in range(args.rounds):
        trainer_rates.append(trainer_rate(run_trainer(cfg), samples))
        parts.append(time_parts())
        bracket = tuple(0.5 * (b + c) for b, c in zip(parts[-2], parts[-1]))
        overheads.append(trainer_rates[-1] / serial_rate(bracket))
        print(f"round {r + 1}: trainer {trainer_rates[-1]:,.0f} steps/s | env alone {samples / parts[-2][0]:,.0f} "
              f"before, {samples / parts[-1][0]:,.0f} after | update alone {samples / parts[-2][1]:,.0f} before, "
              f"{samples / parts[-1][1]:,.0f} after samples/s | overhead {overheads[-1]:.3f}", flush=True)

    env_seconds = statistics.mean(e for e, _ in parts)
    update_seconds = statistics.mean(u for _, u in parts)
    env_sps, update_sps = samples / env_seconds, samples / update_seconds
    trainer_sps = statistics.median(trainer_rates)
    overhead = statistics.median(overheads)
    first_sps = trainer_rate(first_run, samples)
    print(f"first run (compiling): trainer {first_sps:,.0f} steps/s, overhead {first_sps / serial_rate(parts[0]):.3f} "
          f"against the parts timed after it")
    print(f"{args.rounds} rounds: overhead median {overhead:.3f}, from {min(overheads):.3f} to {max(overheads):.3f}; "
          f"{update_seconds:.3f} s per update of {samples} samples")
    print(f"overhead={overhead:.3f} overhead_min={min(overheads):.3f} overhead_max={max(overheads):.3f} "
          f"trainer_vs_env={trainer_sps / env_sps:.3f} trainer_sps={trainer_sps:.0f} "
          f"env_sps={env_sps:.0f} update_sps={update_sps:.0f} peak_rss_mb={peak_rss_mb:.0f} "
          f"first_iteration_s={first_s:.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
