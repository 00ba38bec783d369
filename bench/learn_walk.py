"""Does PPO (or PPO+AMP) teach WildRobot to walk, and in how many env steps? A full training run with
domain randomisation and pushes on, then a deterministic evaluation over the command grid
vx ∈ {0, 0.1, 0.2, 0.3, 0.4} m/s × yaw rate ∈ {-0.5, 0, 0.5} rad/s (randomisation off, 20 s episodes),
and the gait next to the shipped reference gaits (``wildrobot.eval.compare_gaits``) for the
commands those clips realise.

    uv run python bench/learn_walk.py [--algo ppo|ppo_amp] [--env-steps 20000000] [--num-envs 1024] [--out bench/results/learn_walk] [overrides...]
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
from wildrobot.eval import compare_gaits, evaluate_policy, format_gait_table, format_table
from wildrobot.jax_setup import configure_jax
from wildrobot.plot import make_plots
from wildrobot.runs import load_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", default="ppo", choices=("ppo", "ppo_amp"))
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
    base = load_config(["env=wildrobot", f"algo={args.algo}", f"trainer.num_envs={args.num_envs}", *args.overrides])
    per_iteration = args.num_envs * base.algo.unroll_length
    chunks = max(1, round(args.env_steps / per_iteration / args.log_every))
    iterations = chunks * args.log_every
    every = args.log_every * max(1, chunks // 10)
    cfg = load_config(["env=wildrobot", f"algo={args.algo}", f"trainer.num_envs={args.num_envs}",
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
    gait = gait_figures(loaded)
    out.mkdir(parents=True, exist_ok=True)
    plots = make_plots([str(run_dir)], out=out)
    (out / "evaluation.json").write_text(json.dumps({**results.to_dict(), "gait": gait["rows"]}, indent=2))
    print(f"curves: {', '.join(str(p) for p in plots)}")
    env_steps = loaded.step * loaded.cfg.trainer.num_envs * loaded.cfg.algo.unroll_length
    took = f" minutes={minutes:.1f}" if minutes is not None else ""
    print(f"algo={loaded.cfg.algo.name} env_steps={env_steps}{took} vx_err={overall['tracking/vx_error']:.3f} "
          f"yaw_err={overall['tracking/yaw_rate_error']:.3f} falls_pct={100 * overall['fall']:.1f} "
          f"return={overall['return']:.2f} dtw={gait['dtw']:.3f} cadence_ratio={gait['cadence_ratio']:.3f} "
          f"stride_ratio={gait['stride_ratio']:.3f} clearance_ratio={gait['clearance_ratio']:.3f}")


def gait_figures(loaded) -> dict:
    """The policy's gait next to the shipped reference clips, one 20 s episode per clip command
    (``wildrobot.motions.compare.summarize``: mean DTW, and cadence, stride and clearance ratios)."""
    import numpy as np

    from wildrobot.motions.clip import dataset_files, read_clip
    from wildrobot.motions.compare import summarize
    from wildrobot.motions.features import BUILTIN_DATASET

    commands = np.array([read_clip(f).command for f, _ in dataset_files(BUILTIN_DATASET)], np.float32)
    res = evaluate_policy(loaded, commands=commands, episodes=1, key=jax.random.key(54321), record=True)
    rows = compare_gaits(res, loaded.env, BUILTIN_DATASET)
    print(format_gait_table(rows))
    return {"rows": rows, **summarize(rows)}


if __name__ == "__main__":
    main()
