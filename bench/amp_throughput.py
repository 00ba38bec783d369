"""PPO+AMP's end-to-end training throughput next to PPO's, side by side in one run.

    uv run python bench/amp_throughput.py [--env wildrobot] [--num-envs 1024] [--rounds 3] [overrides...]

Both trainers run the same config: ``algo=ppo_amp``'s with the overrides (on WildRobot with the env's
gait terms of ``conf/algo_env/ppo_amp_wildrobot.yaml``), and for PPO the same env and the same PPO
settings (minibatches, epochs, networks, ...) under ``algo=ppo``, so that the ratio is the cost of AMP
alone (the discriminator's updates, features, replay and reference starts). Each runs through
``Trainer.run``, compiled once each first; then ``--rounds`` times each, the order alternating from
round to round, so a shared machine that drifts moves both alike. A run's rate is
its env steps over the seconds of every chunk after the first (the first chunk is one iteration,
right after compiling). The headline is the median over rounds of AMP's rate / PPO's rate in the
same round (goal: >= 0.85). The last line holds the figures as name=value pairs.

``--without-updates`` adds a third trainer to each round: AMP with its discriminator updates left
out (``auxiliary_step`` returns the discriminator unchanged), so that ``amp_no_updates_vs_ppo`` shows
what everything else of AMP costs (features, reference starts, the style reward, the replay buffer)
and the gap to ``amp_vs_ppo`` what the updates cost. A diagnostic only: that trainer learns no style.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
from common import trainer_rate

from wildrobot.algos.ppo_config import PPOConfig
from wildrobot.cli import load_config
from wildrobot.dispatch import trainer_class
from wildrobot.jax_setup import configure_jax

NO_UPDATES = "ppo_amp_no_updates"  # the --without-updates trainer: AMP whose discriminator is never updated


def rate(cfg, without_updates: bool = False) -> float:
    """Env steps per second of one training run, over every chunk after the first."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_class(cfg)(cfg, Path(tmp) / "run")
        if without_updates:
            make = trainer.make_algorithm

            def make_without_updates(env):
                algo = make(env)
                algo.auxiliary_step = lambda amp: (amp, {"amp/accuracy": jnp.zeros(())})
                return algo

            trainer.make_algorithm = make_without_updates
        assert trainer.run() == 0
    return trainer_rate(trainer, trainer.algo.env_steps_per_iteration)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="wildrobot")
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--chunks", type=int, default=3, help="chunks per run (the first, one iteration, is not timed)")
    p.add_argument("--log-every", type=int, default=2, help="iterations per chunk")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--without-updates", action="store_true",
                   help="also time AMP without its discriminator updates (what the rest of AMP costs)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for both algorithms")
    args = p.parse_args()
    if args.chunks < 2 or args.rounds < 1:
        p.error("--chunks must be >= 2 and --rounds >= 1")
    configure_jax()
    common = [f"env={args.env}", f"trainer.num_envs={args.num_envs}", f"trainer.iterations={args.chunks * args.log_every}",
              f"trainer.log_every={args.log_every}", "trainer.eval_every=0", "trainer.checkpoint_every=0",
              "trainer.progress=false", *args.overrides]
    amp = load_config(["algo=ppo_amp", *common])
    ppo = PPOConfig(**{f.name: getattr(amp.algo, f.name) for f in dataclasses.fields(PPOConfig) if f.name != "name"})
    configs = {"ppo": dataclasses.replace(amp, algo=ppo), "ppo_amp": amp}
    if args.without_updates:
        configs[NO_UPDATES] = amp
    print(f"device={jax.devices()[0].device_kind} env={args.env} num_envs={args.num_envs} "
          f"iterations per run={args.chunks * args.log_every}", flush=True)
    for name, cfg in configs.items():  # compile both (and fill the compilation cache)
        print(f"first run of {name} (compiling): {rate(cfg, name == NO_UPDATES):,.0f} steps/s", flush=True)
    rates = {name: [] for name in configs}
    for r in range(args.rounds):
        order = list(configs) if r % 2 == 0 else list(configs)[::-1]
        for name in order:
            rates[name].append(rate(configs[name], name == NO_UPDATES))
        print(f"round {r + 1}: " + ", ".join(f"{name} {rates[name][-1]:,.0f} steps/s" for name in configs)
              + f", ratio {rates['ppo_amp'][-1] / rates['ppo'][-1]:.3f}", flush=True)
    ratios = [a / b for a, b in zip(rates["ppo_amp"], rates["ppo"])]
    last = (f"amp_vs_ppo={statistics.median(ratios):.3f} amp_vs_ppo_min={min(ratios):.3f} "
            f"amp_vs_ppo_max={max(ratios):.3f} ppo_sps={statistics.median(rates['ppo']):.0f} "
            f"amp_sps={statistics.median(rates['ppo_amp']):.0f}")
    if args.without_updates:
        rest = [a / b for a, b in zip(rates[NO_UPDATES], rates["ppo"])]
        last += f" amp_no_updates_vs_ppo={statistics.median(rest):.3f}"
    print(last)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
