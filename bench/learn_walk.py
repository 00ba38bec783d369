"""Does PPO teach WildRobot to walk, and in how many env steps? A full training run with domain
randomisation and pushes on, then a deterministic evaluation over the command grid
vx ∈ {0, 0.1, 0.2, 0.3, 0.4} m/s × yaw rate ∈ {-0.5, 0, 0.5} rad/s (randomisation off, 20 s episodes).

    uv run python bench/learn_walk.py [--env-steps 20000000] [--num-envs 1024] [--out bench/results/learn_walk] [overrides...]
    uv run python bench/learn_walk.py --evaluate-only RUN_DIR [--out DIR]   # the newest checkpoint of a run

A run stopped early (Ctrl-C / SIGTERM saves a checkpoint) can be evaluated with --evaluate-only, or
continued with the override trainer.resume=RUN_DIR.

Writes the learning curves (PNG), the evaluation table (printed and JSON) under --out.
Goals (issue: PPO): vx error ≤ 0.05 m/s, yaw-rate error ≤ 0.1 rad/s, falls ≤ 1 % within 20 M steps.
The last line holds the headline figures as name=value pairs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax

from wildrobot.cli import load_config
from wildrobot.dispatch import trainer_class
from wildrobot.eval import evaluate_policy, format_table
from wildrobot.jax_setup import configure_jax
from wildrobot.plot import make_plots
from wildrobot.runs import load_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env-steps", type=float, default=20e6)
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--episodes", type=int, default=4, help="evaluation episodes per command")
    p.add_argument("--out", type=Path, default=Path("bench/results/learn_walk"))
    p.add_argument("--evaluate-only", type=Path, metavar="RUN_DIR", help="skip training: evaluate this run's newest checkpoint")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = p.parse_args()
    configure_jax()

    if args.evaluate_only:
        evaluate(args.evaluate_only.absolute(), args.out, args.episodes, minutes=None)
        return
    base = load_config(["env=wildrobot", "algo=ppo", f"trainer.num_envs={args.num_envs}", *args.overrides])
    per_iteration = args.num_envs * base.algo.unroll_length
    chunks = max(1, round(args.env_steps / per_iteration / args.log_every))
    iterations = chunks * args.log_every
    every = args.log_every * max(1, chunks // 10)
    cfg = load_config(["env=wildrobot", "algo=ppo", f"trainer.num_envs={args.num_envs}",
                       f"trainer.iterations={iterations}", f"trainer.log_every={args.log_every}",
                       f"trainer.eval_every={every}", f"trainer.checkpoint_every={every}", *args.overrides])
    run_dir = args.out.absolute() / "run"
    start = time.perf_counter()
    code = trainer_class(cfg)(cfg, run_dir).run()
    if code:
        raise SystemExit(code)
    evaluate(run_dir, args.out, args.episodes, minutes=(time.perf_counter() - start) / 60)


def evaluate(run_dir: Path, out: Path, episodes: int, minutes: float | None) -> None:
    loaded = load_run(run_dir)
    results = evaluate_policy(loaded, episodes=episodes, key=jax.random.key(12345))
    print(format_table(results))
    overall = results.overall()
    out.mkdir(parents=True, exist_ok=True)
    plots = make_plots([str(run_dir)], out=out)
    (out / "evaluation.json").write_text(json.dumps(results.to_dict(), indent=2))
    print(f"curves: {', '.join(str(p) for p in plots)}")
    env_steps = loaded.step * loaded.cfg.trainer.num_envs * loaded.cfg.algo.unroll_length
    took = f" minutes={minutes:.1f}" if minutes is not None else ""
    print(f"env_steps={env_steps}{took} vx_err={overall['tracking/vx_error']:.3f} "
          f"yaw_err={overall['tracking/yaw_rate_error']:.3f} falls_pct={100 * overall['fall']:.1f} "
          f"return={overall['return']:.2f}")


if __name__ == "__main__":
    main()
