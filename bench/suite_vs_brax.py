"""Our PPO against Brax's PPO on MuJoCo Playground's dm_control suite, side by side in one run.

For each task: Brax's ``ppo.train`` with Playground's published settings for it
(``mujoco_playground.config.dm_control_suite_params.brax_ppo_config``: 2048 envs, 16 epochs x 32
minibatches of 1024 x 30 steps, discount 0.995, reward scale 10, ...), then this framework's PPO
(``env=playground env.task=<task> experiment=suite trainer.num_envs=1024``, with the task's published
discount), both for exactly the same env steps (Brax's whole training steps; ours a whole number of
iterations, each 1/32 of Brax's), both on Playground's own env with ``impl=jax``. Each side's return
is the mean undiscounted return of 128 full-length episodes of its final policy with its actions
deterministic (Brax: ``deterministic_eval=True``, its own evaluator; ours: ``algo.num_eval_envs=128``),
and its wall-clock time runs from the call that builds the trainer to the end of that final
evaluation (compiling, training and evaluation included; no evaluation before training on either
side: Brax's ``num_evals`` is 1). Brax's envs are reset as often as in the published run (there,
``num_resets_per_eval`` resets every env after each training step: ``brax_schedule``).

    uv run python bench/suite_vs_brax.py [--tasks CartpoleBalance,CartpoleSwingup] [--env-steps 5e6] [--seeds 0,1] [overrides...]

The overrides go to our side (e.g. ``trainer.num_envs=2048``). Any suite task works by name; one
whose published settings repeat actions (``action_repeat`` > 1) would be refused, since our trainer
has none (in Playground 0.2.0 none does: its rule for "PendulumSwingUp" misses the task's name,
PendulumSwingup). Needs the dev dependencies (``brax`` and ``playground`` are
in the dev group: plain ``uv sync`` installs them).
Brax 0.14.2's trainer calls ``jax.device_put_replicated``, which jax 0.10 removed: this benchmark
gives it back (``wildrobot.jax_setup.give_back_device_put_replicated``), so both sides run on the same jax.

With several seeds, each seed runs both sides in turn and a task's figures are the means over
its seeds (one seed's return at a few million steps swings by hundreds on the swing-up).

Goal (issue: interop): at least Brax's return in at most Brax's wall-clock time, on each task.
The last line: ``<task>_ours_return=... <task>_brax_return=... <task>_ours_min=... <task>_brax_min=...``
and ``<task>_time_ratio`` (ours / Brax's minutes) per task, means over the seeds.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import tempfile
import time
from pathlib import Path

import jax

EVAL_EPISODES = 128  # Brax's default num_eval_envs


def published_settings(task: str) -> dict:
    """Playground's Brax PPO settings for ``task``; refuses what our side cannot match."""
    from mujoco_playground.config import dm_control_suite_params

    params = dm_control_suite_params.brax_ppo_config(task).to_dict()
    if params.get("action_repeat", 1) != 1:
        raise SystemExit(f"{task}: Playground's settings for it repeat each action {params['action_repeat']} "
                         "times, which our trainer does not do, so the two sides would not be comparable; "
                         "pick a task with action_repeat 1 (e.g. CartpoleBalance, CartpoleSwingup)")
    return params


def brax_schedule(published: dict, env_steps: int) -> dict:
    """``num_evals`` and ``num_resets_per_eval`` for a run of ``env_steps`` with one evaluation, after
    training, whose envs are reset as often as in the published run: every ``k`` training steps, k
    being what the published ``num_timesteps``, ``num_evals`` and ``num_resets_per_eval`` give."""
    per_step = (published["batch_size"] * published["num_minibatches"] * published["unroll_length"]
                * published.get("action_repeat", 1))
    resets = published.get("num_resets_per_eval", 0)
    if not resets:
        return {"num_evals": 1, "num_resets_per_eval": 0}
    epochs = max(published["num_evals"] - 1, 1)
    k = math.ceil(published["num_timesteps"] / (epochs * per_step * resets))  # training steps per reset
    return {"num_evals": 1, "num_resets_per_eval": max(1, math.ceil(env_steps / (per_step * k)))}


def brax_side(task: str, env_steps: int, seed: int) -> dict:
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo
    from mujoco_playground import registry, wrapper

    from wildrobot.jax_setup import give_back_device_put_replicated

    give_back_device_put_replicated()
    published = published_settings(task)
    params = dict(published, num_timesteps=env_steps, num_eval_envs=EVAL_EPISODES, deterministic_eval=True,
                  **brax_schedule(published, env_steps))
    network = params.pop("network_factory", None)
    factory = functools.partial(ppo_networks.make_ppo_networks, **(network or {}))
    curve: list[tuple[int, float, float]] = []
    start = time.perf_counter()
    env = registry.load(task, config_overrides={"impl": "jax"})

    def progress(step, metrics):
        curve.append((int(step), time.perf_counter() - start, float(metrics["eval/episode_reward"])))
        print(f"  brax {task}: {int(step):,} env steps, {curve[-1][1] / 60:.1f} min, return {curve[-1][2]:.1f}", flush=True)

    ppo.train(environment=env, wrap_env_fn=wrapper.wrap_for_brax_training, network_factory=factory,
              progress_fn=progress, seed=seed, **params)
    return {"return": curve[-1][2], "minutes": (time.perf_counter() - start) / 60, "env_steps": curve[-1][0],
            "curve": curve, "settings": {k: v for k, v in published.items() if k != "network_factory"},
            "run_with": {k: params[k] for k in ("num_timesteps", "num_evals", "num_resets_per_eval",
                                                "num_eval_envs", "deterministic_eval")}}


def log_cadence(iterations: int) -> int:
    """A progress line about every tenth of the run, at a divisor of ``iterations`` (the final
    evaluation must fall on one), so the run is exactly ``iterations`` long."""
    return min((d for d in range(1, iterations + 1) if iterations % d == 0),
               key=lambda d: abs(d - iterations / 10))


def our_side(task: str, env_steps: int, seed: int, overrides: list[str]) -> dict:
    from wildrobot.cli import load_config
    from wildrobot.dispatch import trainer_class

    discount = published_settings(task)["discounting"]
    base = ["env=playground", f"env.task={task}", "algo=ppo", "experiment=suite", f"seed={seed}",
            f"algo.discount={discount}", "trainer.num_envs=1024", f"algo.num_eval_envs={EVAL_EPISODES}",
            *overrides]
    probe = load_config(base)
    per_iteration = probe.trainer.num_envs * probe.algo.unroll_length
    iterations = max(1, math.ceil(env_steps / per_iteration))  # Brax's steps exactly at the default sizes
    log_every = log_cadence(iterations)
    cfg = load_config([*base, f"trainer.iterations={iterations}", f"trainer.log_every={log_every}",
                       f"trainer.eval_every={iterations}", f"trainer.checkpoint_every={iterations}"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = trainer_class(cfg)(cfg, Path(run_dir) / "run")
        code = trainer.run()
        if code:
            raise SystemExit(code)
    minutes = (time.perf_counter() - start) / 60
    ret = trainer.final_metrics["eval/return"]
    print(f"  ours {task}: {iterations * per_iteration:,} env steps, {minutes:.1f} min, return {ret:.1f}", flush=True)
    return {"return": ret, "minutes": minutes, "env_steps": iterations * per_iteration,
            "settings": {"num_envs": cfg.trainer.num_envs, "unroll_length": cfg.algo.unroll_length,
                         "num_epochs": cfg.algo.num_epochs, "num_minibatches": cfg.algo.num_minibatches,
                         "discount": cfg.algo.discount, "learning_rate": cfg.algo.learning_rate,
                         "lr_schedule": cfg.algo.lr_schedule, "entropy_coef": cfg.algo.entropy_coef,
                         "reward_scale": cfg.algo.reward_scale, "hidden": list(cfg.algo.policy.hidden_sizes)}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="CartpoleBalance,CartpoleSwingup")
    p.add_argument("--env-steps", type=float, default=5e6)
    p.add_argument("--seeds", default="0", help="comma-separated; both sides run each seed, the figures are means")
    p.add_argument("--out", type=Path, default=Path("bench/results/suite_vs_brax.json"))
    p.add_argument("overrides", nargs="*", help="Hydra overrides for our side")
    args = p.parse_args()
    from wildrobot.envs.playground_config import check_task
    from wildrobot.jax_setup import configure_jax

    tasks = [t for t in args.tasks.split(",") if t]
    for task in tasks:  # a wrong name, or a task we cannot match, stops here, before anything compiles
        check_task(task)
        published_settings(task)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        p.error(f"--seeds {args.seeds!r}: give whole numbers separated by commas, e.g. --seeds 0,1")
    if not seeds:
        p.error("--seeds is empty: give at least one seed, e.g. --seeds 0")
    configure_jax()
    jax.numpy.zeros(1).block_until_ready()  # the backend starts here, on neither side's clock
    steps = int(args.env_steps)
    results, last = {}, []
    for task in tasks:
        runs = []
        for seed in seeds:
            brax = brax_side(task, steps, seed)
            ours = our_side(task, brax["env_steps"], seed, args.overrides)  # exactly Brax's count (at least, with other sizes)
            runs.append({"seed": seed, "brax": brax, "ours": ours})
            print(f"{task} seed {seed}: ours {ours['return']:.1f} in {ours['minutes']:.1f} min "
                  f"({ours['env_steps']:,} steps), Brax {brax['return']:.1f} in {brax['minutes']:.1f} min "
                  f"({brax['env_steps']:,} steps)", flush=True)
        mean = {side: {k: sum(r[side][k] for r in runs) / len(runs) for k in ("return", "minutes")}
                for side in ("brax", "ours")}
        results[task] = {"runs": runs, "mean": mean}
        ours, brax = mean["ours"], mean["brax"]
        ratio = ours["minutes"] / brax["minutes"]
        print(f"{task}, mean of {len(runs)} seed(s): ours {ours['return']:.1f} in {ours['minutes']:.1f} min, "
              f"Brax {brax['return']:.1f} in {brax['minutes']:.1f} min: time ratio {ratio:.2f}, "
              f"goal met: {ours['return'] >= brax['return'] and ratio <= 1.0}", flush=True)
        last += [f"{task}_ours_return={ours['return']:.1f}", f"{task}_brax_return={brax['return']:.1f}",
                 f"{task}_ours_min={ours['minutes']:.2f}", f"{task}_brax_min={brax['minutes']:.2f}",
                 f"{task}_time_ratio={ratio:.3f}"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"env_steps": steps, "seeds": seeds, "device": str(jax.devices()[0]),
                                    "overrides": args.overrides, "tasks": results}, indent=2))
    print(" ".join(last))


if __name__ == "__main__":
    main()
