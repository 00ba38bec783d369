"""Does PPO (or PPO+AMP) teach WildRobot to walk, and in how many env steps? A full training run with
domain randomisation and pushes on, then a deterministic evaluation over the command grid
vx ∈ {0, 0.1, 0.2, 0.3, 0.4} m/s × yaw rate ∈ {-0.5, 0, 0.5} rad/s (randomisation off, 20 s episodes),
the same evaluation with the training disturbances on (randomisation, pushes, sensor noise, action
delay: ``wildrobot.eval --randomize``; --robust-episodes episodes per command, 16 by default), and
the gait next to reference gaits (``wildrobot.eval.compare_gaits``) for the commands those clips realise:
--reference, by default the shipped clips without turning (``walk/no_turning.yaml``, the set every
gait figure of docs/benchmarks.md was measured on; ``walk/manifest.yaml`` adds the ±0.1 rad/s turns).

    uv run python bench/learn_walk.py [--algo ppo|ppo_amp] [--env-steps 20000000] [--num-envs N] [--out bench/results/learn_walk] [overrides...]
    uv run python bench/learn_walk.py --evaluate-only RUN_DIR [--out DIR]   # the newest checkpoint of a run

A run stopped early (Ctrl-C / SIGTERM saves a checkpoint) can be evaluated with --evaluate-only, or
continued with the override trainer.resume=RUN_DIR.

Minutes to walk: at each of --evaluations evenly spaced points of the run, the same deterministic
evaluation as the final one (the command grid, --episodes episodes each, the same key) runs on the
policy of that moment; the first at which all three goals hold gives the wall-clock minutes from
the start (building the env, compiling, training, every evaluation and checkpoint included) and the
env steps: `minutes_to_walk`, `steps_to_walk` on the last line (`nan` when the run never got there).
Each evaluation's figures go to TensorBoard as `walk/*` and to walk_progress.json under --out.

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
from wildrobot.eval import GridEvaluation, compare_gaits, evaluate_policy, format_gait_table, format_table
from wildrobot.jax_setup import configure_jax
from wildrobot.plot import make_plots
from wildrobot.runs import evaluation_env, load_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", default="ppo", choices=("ppo", "ppo_amp"))
    p.add_argument("--env-steps", type=float, default=20e6)
    p.add_argument("--num-envs", type=int, default=None,
                   help="trainer.num_envs; default: the config's (trainer=default's 512, or a preset's)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--episodes", type=int, default=4, help="evaluation episodes per command")
    p.add_argument("--robust-episodes", type=int, default=16,
                   help="episodes per command of the final evaluation with the training disturbances on (a fall "
                        "rate of at most 1 %% needs more than the clean evaluation's few: 16 x 15 commands = 240)")
    p.add_argument("--evaluations", type=int, default=20,
                   help="evaluations on the command grid during the run (the cadence of minutes to walk)")
    p.add_argument("--out", type=Path, default=Path("bench/results/learn_walk"))
    p.add_argument("--reference", default="walk/no_turning.yaml",
                   help="the clips to compare the gait with: a dataset path, or one of the shipped datasets "
                        "(wildrobot/motions/data) by its relative path")
    p.add_argument("--evaluate-only", type=Path, metavar="RUN_DIR", help="skip training: evaluate this run's newest checkpoint")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = p.parse_args()
    configure_jax()

    if args.evaluate_only:
        evaluate(args.evaluate_only.absolute(), args.out, args.episodes, args.robust_episodes, minutes=None, probe=None,
                 reference=args.reference)
        return
    sized = [] if args.num_envs is None else [f"trainer.num_envs={args.num_envs}"]
    base = load_config(["env=wildrobot", f"algo={args.algo}", *sized, *args.overrides])
    per_iteration = base.trainer.num_envs * base.algo.unroll_length
    chunks = max(1, round(args.env_steps / per_iteration / args.log_every))
    iterations = chunks * args.log_every
    every = args.log_every * max(1, chunks // args.evaluations)
    cfg = load_config(["env=wildrobot", f"algo={args.algo}", *sized, f"trainer.iterations={iterations}",
                       f"trainer.log_every={args.log_every}", f"trainer.eval_every={every}",
                       f"trainer.checkpoint_every={every}", *args.overrides])
    run_dir = args.out.absolute() / "run"
    start = time.perf_counter()
    trainer = trainer_class(cfg)(cfg, run_dir)
    probe = WalkProbe(trainer, args.episodes, start)
    code = trainer.run()
    if code:
        raise SystemExit(code)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "walk_progress.json").write_text(json.dumps(probe.rows, indent=2))
    # the run it wrote: trainer.resume=<run> continues (and writes) that run, not --out's
    evaluate(trainer.out_dir, args.out, args.episodes, args.robust_episodes,
             minutes=(time.perf_counter() - start) / 60, probe=probe, reference=args.reference)


class WalkProbe:
    """At each of the trainer's evaluations, the final evaluation's grid (``GridEvaluation``, the
    same commands, episodes and key) on the policy of that moment; ``first``: the first at which
    the three goals hold, with the wall-clock minutes since ``started`` once it is known."""

    GOALS = (("tracking/vx_error", 0.05), ("tracking/yaw_rate_error", 0.1), ("fall", 0.01))

    def __init__(self, trainer, episodes: int, started: float):
        self.trainer, self.episodes, self.started = trainer, episodes, started
        self.grid = None
        self.rows: list[dict] = []
        self.first: dict | None = None
        self._evaluate = trainer.evaluate
        trainer.evaluate = self.evaluate

    def evaluate(self, carry, it: int) -> dict[str, float]:
        out = self._evaluate(carry, it)
        algo = self.trainer.algo
        if self.grid is None:  # compiled once, for the env the trainer evaluates on
            self.grid = GridEvaluation(algo.eval_env, algo.deterministic_action, self.trainer.cfg.env.name,
                                       episodes=self.episodes)
        overall = self.grid(carry.params, carry.obs_stats, jax.random.key(12345), step=it).overall()
        walks = all(overall[k] <= goal for k, goal in self.GOALS)
        row = {"iteration": it, "env_steps": it * algo.env_steps_per_iteration,
               "minutes": (time.perf_counter() - self.started) / 60, "walks": walks,
               **{k: overall[k] for k, _ in self.GOALS}}
        self.rows.append(row)
        if walks and self.first is None:
            self.first = row
            print(f"walks at iteration {it} ({row['env_steps'] / 1e6:.1f} M env steps), {row['minutes']:.1f} min "
                  f"from the start: vx error {row['tracking/vx_error']:.3f}, yaw-rate error "
                  f"{row['tracking/yaw_rate_error']:.3f}, falls {100 * row['fall']:.1f} %", flush=True)
        out.update({"walk/vx_error": overall["tracking/vx_error"], "walk/yaw_rate_error":
                    overall["tracking/yaw_rate_error"], "walk/fall_rate": overall["fall"], "walk/walks": float(walks)})
        return out


def evaluate(run_dir: Path, out: Path, episodes: int, robust_episodes: int, minutes: float | None,
             probe: WalkProbe | None, reference: str) -> None:
    loaded = load_run(run_dir)
    results = evaluate_policy(loaded, episodes=episodes, key=jax.random.key(12345))
    print(format_table(results))
    overall = results.overall()
    # The robustness evaluation: the same grid and key with the training disturbances on
    # (randomisation, pushes, sensor noise, action delay; kicks of env.push.velocity, without training's
    # growth to env.push.grow_to: an evaluation's clock stays at 0); goal: falls ≤ 1 %, tracking within 1.5 x.
    robust = evaluate_policy(loaded, episodes=robust_episodes, key=jax.random.key(12345),
                             env=evaluation_env(loaded, disturbed=True))
    print("with randomisation, pushes, noise and delay as in training:")
    print(format_table(robust))
    rough = robust.overall()
    n_robust = robust.commands.shape[0] * robust.episodes
    gait = gait_figures(loaded, reference)
    out.mkdir(parents=True, exist_ok=True)
    plots = make_plots([str(run_dir)], out=out)
    (out / "evaluation.json").write_text(json.dumps({**results.to_dict(), "gait": gait["rows"],
                                                     "randomized": robust.to_dict()}, indent=2))
    print(f"curves: {', '.join(str(p) for p in plots)}")
    env_steps = loaded.step * loaded.cfg.trainer.num_envs * loaded.cfg.algo.unroll_length
    took = f" minutes={minutes:.1f}" if minutes is not None else ""
    if probe is not None:
        first = probe.first or {"minutes": float("nan"), "env_steps": float("nan")}
        took += f" minutes_to_walk={first['minutes']:.1f} steps_to_walk={first['env_steps']:.3g}"
    print(f"algo={loaded.cfg.algo.name} env_steps={env_steps}{took} vx_err={overall['tracking/vx_error']:.3f} "
          f"yaw_err={overall['tracking/yaw_rate_error']:.3f} falls_pct={100 * overall['fall']:.1f} "
          f"return={overall['return']:.2f} dtw={gait['dtw']:.3f} cadence_ratio={gait['cadence_ratio']:.3f} "
          f"stride_ratio={gait['stride_ratio']:.3f} clearance_ratio={gait['clearance_ratio']:.3f} "
          f"randomized_vx_err={rough['tracking/vx_error']:.3f} randomized_yaw_err={rough['tracking/yaw_rate_error']:.3f} "
          f"randomized_falls_pct={100 * rough['fall']:.1f} randomized_falls={round(rough['fall'] * n_robust)}/{n_robust}")


def gait_figures(loaded, reference: str) -> dict:
    """The policy's gait next to the ``reference`` clips, one 20 s episode per clip command
    (``wildrobot.motions.compare.summarize``: mean DTW, and cadence, stride and clearance ratios)."""
    import numpy as np

    from wildrobot.motions.clip import dataset_files, read_clip
    from wildrobot.motions.compare import summarize
    from wildrobot.motions.features import find_dataset

    dataset = find_dataset(reference)
    commands = np.array([read_clip(f).command for f, _ in dataset_files(dataset)], np.float32)
    res = evaluate_policy(loaded, commands=commands, episodes=1, key=jax.random.key(54321), record=True)
    rows = compare_gaits(res, loaded.env, dataset)
    print(format_gait_table(rows))
    return {"rows": rows, **summarize(rows)}


if __name__ == "__main__":
    main()
