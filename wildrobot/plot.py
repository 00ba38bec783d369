"""Learning curves as PNG files, from the TensorBoard event files of one run or a sweep.

    uv run python -m wildrobot.plot <run dir> [<run dir> ...] [--out DIR] [--tags TAG ...]

A run directory holds tensorboard/ (or is itself a folder of event files); a sweep folder
(multirun/<date>/<time>) stands for every run inside it. Several runs share each panel, one line
per run, labelled by the overrides that differ between them (from each run's .hydra/). Writes:

  learning_curves.png   episode return and length, evaluation return, falls, tracking errors
  reward_terms.png      each reward term's episode sum
  training.png          losses, KL, entropy, explained variance, action std, throughput
  motion_style.png      algo=ppo_amp: the discriminator's scores, accuracy and penalty, the style and
                        task rewards, and the gait next to the reference at each evaluation
  custom.png            the tags given with --tags (instead of the three above)
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

FIGURES: dict[str, list[str]] = {
    "learning_curves": ["episode/return", "eval/return", "episode/length", "eval/length", "episode/fall",
                        "eval/fall_rate", "env/tracking/*", "eval/tracking/*", "eval/imitation/*", "env/imitation/*"],
    "reward_terms": ["episode/reward/*"],
    "training": ["loss/*", "ppo/*", "optim/*", "perf/steps_per_second"],
    "motion_style": ["amp/*", "reward/task", "reward/style", "gait/*"],
}


@dataclass
class Run:
    path: Path  # the folder the event files are under
    label: str
    scalars: dict[str, list[tuple[int, float]]]


def find_runs(paths: Sequence[str]) -> list[Path]:
    """Event-file folders for each argument: <run>/tensorboard, a folder of event files, or every
    run under a sweep folder."""
    out: list[Path] = []
    for arg in paths:
        p = Path(arg).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        if (p / "tensorboard").is_dir():
            out.append(p / "tensorboard")
        elif any(p.glob("events.out.tfevents.*")):
            out.append(p)
        else:
            found = sorted({e.parent for e in p.rglob("events.out.tfevents.*")}, key=lambda d: _natural(str(d)))
            if not found:
                raise FileNotFoundError(f"{p} holds no TensorBoard event files (events.out.tfevents.*)")
            out.extend(found)
    return out


def _natural(s: str) -> list:
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _run_dir(events_dir: Path) -> Path:
    return events_dir.parent if events_dir.name == "tensorboard" else events_dir


def labels_for(events_dirs: Sequence[Path]) -> list[str]:
    """The overrides that differ between runs (a sweep's varied keys), else the folder names."""
    from wildrobot.runs import run_overrides

    dirs = [_run_dir(d) for d in events_dirs]
    ovs = [run_overrides(d) for d in dirs]
    common = set.intersection(*(set(o) for o in ovs)) if ovs else set()
    labels = [" ".join(o for o in ov if o not in common) for ov in ovs]
    names = [d.name for d in dirs]
    if len(set(names)) < len(names):
        names = [f"{d.parent.name}/{d.name}" for d in dirs]
    return [lab or name for lab, name in zip(labels, names)] if len(dirs) > 1 else names


def load_runs(paths: Sequence[str]) -> list[Run]:
    from wildrobot.train.logging import read_scalars

    dirs = find_runs(paths)
    return [Run(d, lab, read_scalars(d)) for d, lab in zip(dirs, labels_for(dirs))]


def expand(patterns: Sequence[str], runs: Sequence[Run]) -> list[str]:
    """Tags matching the patterns ("prefix/*" = every tag under it), in pattern order."""
    tags: list[str] = []
    available = sorted({t for r in runs for t in r.scalars})
    for pat in patterns:
        hits = [t for t in available if t.startswith(pat[:-1])] if pat.endswith("*") else [t for t in available if t == pat]
        tags.extend(t for t in hits if t not in tags)
    return tags


def plot_tags(runs: Sequence[Run], tags: Sequence[str], path: Path, title: str) -> Optional[Path]:
    """One panel per tag, one line per run; None when no run logged any of the tags."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    if not tags:
        return None
    ncols = min(3, len(tags))
    nrows = math.ceil(len(tags) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.4 * nrows), squeeze=False)
    for ax, tag in zip(axes.flat, tags):
        for i, run in enumerate(runs):
            points = run.scalars.get(tag)
            if not points:
                continue
            steps, values = zip(*points)
            ax.plot(steps, values, label=run.label, color=f"C{i % 10}", marker="." if len(points) < 30 else None)
        ax.set_title(tag, fontsize=10)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tags):]:
        ax.set_visible(False)
    if len(runs) > 1:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(runs)), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(runs) // 4), 1, 0.96))
    else:
        fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def make_plots(paths: Sequence[str], out: Optional[Path] = None, tags: Optional[Sequence[str]] = None) -> list[Path]:
    runs = load_runs(paths)
    if out is None:
        out = _run_dir(runs[0].path) / "plots" if len(runs) == 1 else Path("plots")
    title = runs[0].label if len(runs) == 1 else f"{len(runs)} runs"
    figures = {"custom": list(tags)} if tags else FIGURES
    written = []
    for name, patterns in figures.items():
        p = plot_tags(runs, expand(patterns, runs), Path(out) / f"{name}.png", f"{title}: {name.replace('_', ' ')}")
        if p is not None:
            written.append(p)
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wildrobot.plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories, folders of event files, or sweep folders")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: <run>/plots for one run, ./plots for several)")
    parser.add_argument("--tags", nargs="+", default=None, help="plot these tags instead ('prefix/*' allowed)")
    args = parser.parse_args(argv)
    try:
        written = make_plots(args.runs, args.out, args.tags)
    except FileNotFoundError as e:
        print(f"Error: {e}. Give run directories written by run.py (they hold tensorboard/).", file=sys.stderr)
        return 2
    if not written:
        print("Error: none of the requested tags was logged by these runs.", file=sys.stderr)
        return 2
    for p in written:
        print(f"Wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
