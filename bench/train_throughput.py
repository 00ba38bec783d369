"""PPO training throughput next to its unavoidable parts, measured side by side in one run.

    uv run python bench/train_throughput.py [--env wildrobot] [--num-envs 1024] [--chunks 4] [overrides...]

1. the real trainer (``Trainer.run``: chunks of jitted iterations, logging, the final checkpoint),
   timed over every chunk after the first (a run's first chunk is one iteration, right after
   compiling);
2. the env alone: the same batched env (auto-reset included) stepped with random actions;
3. the PPO update alone (GAE + epochs of minibatches) on one rollout of the same size.

``overhead = trainer rate / (1 / (1/env rate + 1/update rate))``, per sample: 1.0 means the
trainer adds nothing to the serial sum of its parts. Also: trainer rate / env rate, peak resident
memory after the training phase, and the time from start to the end of the first iteration
(env build, init, compile, one iteration). The last line holds the headline figures as name=value pairs.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import jax
from common import random_action_rollout

from wildrobot.config import load_config
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="wildrobot")
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--chunks", type=int, default=4, help="iterations to run, in units of log_every (all but the first iteration are timed)")
    p.add_argument("--log-every", type=int, default=2, help="iterations per chunk")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. algo.policy.hidden_sizes=[512,256,128]")
    args = p.parse_args()
    if args.chunks * args.log_every < 2:
        p.error("run at least 2 iterations (--chunks x --log-every): the first one is not timed")
    configure_jax()

    iterations = args.chunks * args.log_every  # chunks of 1, log_every - 1, then log_every iterations
    cfg = load_config([f"env={args.env}", "algo=ppo", f"trainer.num_envs={args.num_envs}",
                       f"trainer.iterations={iterations}", f"trainer.log_every={args.log_every}",
                       "trainer.eval_every=0", "trainer.checkpoint_every=0", "trainer.progress=false", *args.overrides])
    a = cfg.algo
    print(f"device={jax.devices()[0].device_kind} env={args.env} num_envs={args.num_envs} unroll={a.unroll_length} "
          f"epochs={a.num_epochs} minibatches={a.num_minibatches} policy={a.policy.hidden_sizes} value={a.value.hidden_sizes}")

    # 1. the trainer, end to end
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_class(cfg)(cfg, Path(tmp) / "run")
        assert trainer.run() == 0
    samples = args.num_envs * a.unroll_length
    # every chunk after the first (one iteration, run right after compiling)
    trainer_sps = sum(trainer.chunk_iterations[1:]) * samples / sum(trainer.chunk_seconds[1:])
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    first_s = trainer.seconds_to_first_chunk

    # 2. the env alone, same batch, same wrapper, random actions
    algo = trainer.make_algorithm(make_env(cfg.env))
    env = algo.env
    state = algo.init(jax.random.key(0))

    env_only = jax.jit(random_action_rollout(env, a.unroll_length))

    env_seconds, _ = timed(env_only, state.env_state, jax.random.key(1), repeats=max(2, args.chunks))
    env_sps = samples / env_seconds

    # 3. the PPO update alone, on one real rollout
    _, traj, _ = jax.jit(algo.rollout)(state, jax.random.key(2))
    update = jax.jit(algo.update)
    update_seconds, _ = timed(update, state, traj, jax.random.key(3), repeats=max(2, args.chunks))
    update_sps = samples / update_seconds

    serial = 1.0 / (1.0 / env_sps + 1.0 / update_sps)
    overhead = trainer_sps / serial
    print(f"trainer {trainer_sps:,.0f} steps/s | env alone {env_sps:,.0f} | update alone {update_sps:,.0f} samples/s "
          f"({update_seconds:.3f} s per update of {samples} samples) | serial sum of parts {serial:,.0f}")
    print(f"overhead={overhead:.3f} trainer_vs_env={trainer_sps / env_sps:.3f} trainer_sps={trainer_sps:.0f} "
          f"env_sps={env_sps:.0f} update_sps={update_sps:.0f} peak_rss_mb={peak_rss_mb:.0f} "
          f"first_iteration_s={first_s:.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
