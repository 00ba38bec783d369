"""PPO on one device next to PPO with the env batch split over two (``trainer.devices=2``), side
by side in one run, and whether they train the same.

    uv run python bench/sharding.py [--num-envs 64] [--rounds 3] [overrides...]

On a CPU-only machine it runs on two fake CPU devices that share its cores
(``XLA_FLAGS=--xla_force_host_platform_device_count=2``, set here before JAX starts unless
XLA_FLAGS already asks for fake devices); with two or more accelerators, on the first two of them.
MJX physics (MuJoCo C cannot be split).

Each round runs the real trainer (``Trainer.run``) twice, one device then two, alternating which
goes first, each timed over every chunk after the first (``trainer_rate``); the headline is the
median over rounds of each round's ratio, so a machine whose speed drifts moves both sides alike.
Then one more run on one device with PPO's minibatches shuffled in the same two groups of envs
as on two devices (``algo.shards = 2``): its parameters against the two-device run's give
``max_param_diff`` and ``rel_param_diff`` (|difference| / |parameters|), and the same pair of runs
for one iteration gives ``first_iteration_diff``. Sharding itself changes
nothing but float rounding (sums over two devices add in another order), which Adam's
sign-like first steps and the physics' contacts then amplify: a parameter whose gradient is ~0
can move by 2 x the learning rate on rounding alone. The last line holds the headline figures as
name=value pairs.
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):  # before JAX starts
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from common import trainer_rate  # noqa: E402

from wildrobot.cli import load_config  # noqa: E402
from wildrobot.dispatch import trainer_class  # noqa: E402
from wildrobot.jax_setup import configure_jax  # noqa: E402
from wildrobot.train.sharding import grouped_like_devices  # noqa: E402


def run_trainer(cfg, shards: int = 0):
    """(trainer, final parameters) of one run; ``shards``: one device, minibatches shuffled in that many groups."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_class(cfg)(cfg, Path(tmp) / "run")
        if shards:
            grouped_like_devices(trainer, shards)
        finished = {}
        trainer.on_finish = lambda carry, metrics: finished.update(params=jax.device_get(carry.params))
        assert trainer.run() == 0
    return trainer, finished["params"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--chunks", type=int, default=3, help="iterations to run, in units of log_every")
    p.add_argument("--log-every", type=int, default=2, help="iterations per chunk")
    p.add_argument("--rounds", type=int, default=3, help="pairs of runs (one device, two devices)")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. algo.unroll_length=10")
    args = p.parse_args()
    configure_jax()
    if jax.device_count() < 2:
        sys.exit(f"JAX sees {jax.device_count()} device(s); this benchmark needs 2")

    base = ["env=wildrobot", "env.sim.backend=mjx", "algo=ppo", f"trainer.num_envs={args.num_envs}",
            f"trainer.iterations={args.chunks * args.log_every}", f"trainer.log_every={args.log_every}",
            "trainer.eval_every=0", "trainer.checkpoint_every=0", "trainer.progress=false", *args.overrides]
    single, sharded = load_config(base + ["trainer.devices=1"]), load_config(base + ["trainer.devices=2"])
    a = single.algo
    samples = args.num_envs * a.unroll_length
    print(f"devices={[d.device_kind for d in jax.devices()[:2]]} num_envs={args.num_envs} unroll={a.unroll_length} "
          f"epochs={a.num_epochs} minibatches={a.num_minibatches} policy={a.policy.hidden_sizes}", flush=True)

    rates: dict[str, list[float]] = {"single": [], "sharded": []}
    for r in range(args.rounds):
        order = [("single", single), ("sharded", sharded)]
        for name, cfg in order if r % 2 == 0 else order[::-1]:
            trainer, params = run_trainer(cfg)
            rates[name].append(trainer_rate(trainer, samples))
            if name == "sharded":
                sharded_params, trace_count = params, trainer.trace_count
        print(f"round {r + 1}: one device {rates['single'][-1]:,.0f} env steps/s, two devices "
              f"{rates['sharded'][-1]:,.0f} ({rates['sharded'][-1] / rates['single'][-1]:.3f} x)", flush=True)

    def difference(a, b) -> tuple[float, float]:
        x, y = (np.concatenate([np.ravel(v) for v in jax.tree.leaves(t)]) for t in (a, b))
        return float(np.max(np.abs(x - y))), float(np.linalg.norm(x - y) / np.linalg.norm(y))

    diff, relative = difference(sharded_params, run_trainer(single, shards=2)[1])
    # after one iteration (before rounding differences have gone through the physics of another rollout)
    one = ["trainer.iterations=1"]
    first_diff, _ = difference(run_trainer(load_config(base + one + ["trainer.devices=2"]))[1],
                               run_trainer(load_config(base + one), shards=2)[1])
    ratio = statistics.median(s / o for s, o in zip(rates["sharded"], rates["single"]))
    print(f"two devices / one: median {ratio:.3f} over {args.rounds} rounds; parameters after "
          f"{args.chunks * args.log_every} iterations differ by at most {diff:.2e} ({relative:.1e} of their norm) "
          f"from one device's with the same minibatch groups ({first_diff:.2e} after one iteration); the sharded "
          f"chunk was traced {trace_count} time(s)")
    print(f"sharded_vs_single={ratio:.3f} single_sps={statistics.median(rates['single']):.0f} "
          f"sharded_sps={statistics.median(rates['sharded']):.0f} max_param_diff={diff:.2e} "
          f"rel_param_diff={relative:.1e} first_iteration_diff={first_diff:.2e} trace_count={trace_count}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
