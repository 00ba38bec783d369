"""A report of every job of a Hydra sweep (``run.py -m``): a table, a PNG of learning curves, a JSON.

    uv run python -m wildrobot.sweep <multirun dir> [--sort METRIC] [--ascending] [--metric TAG]
                                     [--group-by KEY ...] [--png PATH] [--json PATH]

<multirun dir> is the folder the sweep wrote, multirun/DATE/TIME, with one folder per job (0/, 1/,
...). The table has a row per job: its number, a column per swept key (the overrides whose value
differs between jobs), then, from the job's TensorBoard events,

  best eval    eval/best, the best evaluation return of the run (the max of the algorithm's
               best metric over its evaluations)
  <name>       eval/tracking/<name>: each tracking error at the last evaluation
  falls        eval/fall_rate at the last evaluation
  steps/s      perf/steps_per_second, the mean over the logged chunks
  iterations   reached / asked (trainer.iterations in the job's .hydra/config.yaml)
  status       finished (its final checkpoint is saved), incomplete (crashed, stopped, still
               running) or no logs (no event files yet)

Rows are sorted by --sort (best eval by default, highest first; --ascending for errors), which takes a
column's header or any logged tag (a tag that is not a column is added as one: its last value).
The PNG (default <multirun dir>/sweep.png) draws --metric (default eval/return) over env steps,
one line per job, jobs with the same value of the swept keys (seed aside) in one colour.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

BEST = "eval/best"  # logged at each evaluation that beats the best so far: the algorithm's best metric
RATE = "perf/steps_per_second"
ITERATION = "perf/iteration"
FALLS = "eval/fall_rate"
TRACKING = "eval/tracking/"
CURVE = "eval/return"
FINISHED, INCOMPLETE, NO_LOGS = "finished", "incomplete", "no logs"
WHAT_TO_PASS = ("Pass the folder a sweep wrote, multirun/DATE/TIME (from `uv run run.py -m ...`, or the "
                "hydra.sweep.dir you set): it holds one folder per job, 0/, 1/, ...")


class SweepError(RuntimeError):
    """The path is not a sweep, or a metric no job logged; the message says what to pass instead."""


@dataclass
class Job:
    name: str  # the job's folder name: Hydra's job number
    path: Path
    overrides: dict[str, str]  # key -> value, from .hydra/overrides.yaml
    scalars: dict[str, list[tuple[int, float]]]
    iterations: int  # the last iteration logged or checkpointed
    target: Optional[int]  # trainer.iterations; None when the job's config is missing
    status: str
    note: str = ""

    def value(self, tag: str) -> Optional[float]:
        """The table's number for ``tag``: the max of ``eval/best``, the mean of the steps per second,
        otherwise the last logged value; None when the job did not log it."""
        values = [v for _, v in self.scalars.get(tag, [])]
        if not values:
            return None
        if tag == BEST:
            return max(values)
        if tag == RATE:
            return sum(values) / len(values)
        return values[-1]


@dataclass
class Column:
    header: str
    tag: str
    fmt: str = "{:.4g}"


@dataclass
class Report:
    sweep: Path
    jobs: list[Job]  # in table order
    swept: list[str]
    common: list[str]  # the overrides every job shares
    columns: list[Column]
    sort: Optional[Column]
    ascending: bool
    notes: list[str] = field(default_factory=list)


# -- reading a sweep ------------------------------------------------------------------------------
def job_dirs(sweep: Path) -> list[Path]:
    """The job folders of a sweep folder (each holds .hydra/ or tensorboard/), in job-number order,
    or a ``SweepError`` that says what the path is and what to pass."""
    sweep = Path(sweep).expanduser()
    if not sweep.exists():
        raise SweepError(f"{sweep} does not exist. {WHAT_TO_PASS}")
    if not sweep.is_dir():
        raise SweepError(f"{sweep} is a file, not a folder. {WHAT_TO_PASS}")
    jobs = sorted((p for p in sweep.iterdir() if _is_job(p)), key=_job_order)
    if jobs:
        return jobs
    if _is_job(sweep):
        raise SweepError(f"{sweep} is one run, not a sweep (it holds .hydra/ or tensorboard/ itself). Pass its "
                         f"parent folder if that is a sweep, or use `python -m wildrobot.plot {sweep}` for one run.")
    below = sorted({str(p.parent) for p in sweep.glob("*/*") if _is_job(p)} |
                   {str(p.parent) for p in sweep.glob("*/*/*") if _is_job(p)})
    if below:
        listed = ", ".join(below[:5]) + (f" and {len(below) - 5} more" if len(below) > 5 else "")
        raise SweepError(f"{sweep} holds no job folders itself; the sweeps under it are: {listed}. Pass one of them.")
    raise SweepError(f"{sweep} holds no job folders (none of its sub-folders has .hydra/ or tensorboard/). "
                     f"{WHAT_TO_PASS}")


def _is_job(path: Path) -> bool:
    return path.is_dir() and ((path / ".hydra").is_dir() or (path / "tensorboard").is_dir())


def _job_order(path: Path) -> tuple:
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def load_job(path: Path) -> Job:
    """One job's overrides, scalars, progress and status; an unfinished or broken job is a row too."""
    from wildrobot.runs import run_overrides
    from wildrobot.train.checkpoint import saved_steps
    from wildrobot.train.logging import read_scalars

    note = ""
    scalars: dict[str, list[tuple[int, float]]] = {}
    try:
        scalars = read_scalars(path / "tensorboard")
    except Exception as e:  # noqa: BLE001 - a damaged event file makes a row that says so, not a crash
        note = f"unreadable event file: {type(e).__name__}: {e}"
    logged = [int(v) for _, v in scalars.get(ITERATION, []) if math.isfinite(v)]
    saved = saved_steps(path / "checkpoints").get("latest", [])
    iterations = max(logged + saved, default=0)
    target = _target_iterations(path)
    if not scalars:
        status = NO_LOGS
    elif target is not None and target in saved:
        status = FINISHED
    else:
        status = INCOMPLETE
    return Job(path.name, path, _as_dict(run_overrides(path)), scalars, iterations, target, status, note)


def _as_dict(overrides: Sequence[str]) -> dict[str, str]:
    out = {}
    for o in overrides:
        key, _, value = o.partition("=")
        out[key] = value
    return out


def _target_iterations(path: Path) -> Optional[int]:
    import yaml

    try:
        cfg = yaml.safe_load((path / ".hydra" / "config.yaml").read_text()) or {}
        return int(cfg["trainer"]["iterations"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None


def swept_keys(jobs: Sequence[Job]) -> list[str]:
    """The override keys whose value differs between jobs (or that some jobs lack), in command-line order."""
    keys: list[str] = []
    for job in jobs:
        keys.extend(k for k in job.overrides if k not in keys)
    return [k for k in keys if len({job.overrides.get(k) for job in jobs}) > 1]


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """``algo.learning_rate`` -> ``learning_rate`` where the last part names one key only."""
    last = [k.split(".")[-1] for k in keys]
    return {k: s if last.count(s) == 1 else k for k, s in zip(keys, last)}


# -- the table ----------------------------------------------------------------------------------
def default_columns(jobs: Sequence[Job]) -> list[Column]:
    tags = sorted({t for job in jobs for t in job.scalars})
    cols = [Column("best eval", BEST, "{:.2f}")]
    cols += [Column(t[len(TRACKING):], t, "{:.3f}") for t in tags if t.startswith(TRACKING)]
    cols += [Column("falls", FALLS, "{:.2f}"), Column("steps/s", RATE, "{:,.0f}")]
    return cols


def logged_tags(jobs: Sequence[Job]) -> list[str]:
    return sorted({t for job in jobs for t, points in job.scalars.items() if points})


def resolve(name: str, jobs: Sequence[Job], columns: Sequence[Column], option: str) -> Column:
    """The column ``name`` (a header or a tag) stands for, or a ``SweepError`` listing what was logged."""
    for c in columns:
        if name in (c.header, c.tag) and any(job.value(c.tag) is not None for job in jobs):
            return c
    if any(job.scalars.get(name) for job in jobs):
        return Column(name, name)
    tags = logged_tags(jobs)
    if not tags:
        raise SweepError(f"{option} {name}: no job of this sweep has logged anything yet")
    headers = [c.header for c in columns if any(job.value(c.tag) is not None for job in jobs)]
    listed = (f"the columns {', '.join(headers)}, or " if headers and option == "--sort" else "") + ", ".join(tags)
    raise SweepError(f"{option} {name}: no job of this sweep logged a metric of that name. Available: {listed}")


def build_report(sweep: Path, sort: Optional[str] = None, ascending: bool = False) -> Report:
    """Every job of the sweep at ``sweep`` as table rows, sorted by ``sort`` (a header or a tag;
    None: the best evaluation return when any job logged one, else job order)."""
    jobs = [load_job(p) for p in job_dirs(sweep)]
    columns = [c for c in default_columns(jobs) if c.tag == BEST or any(j.value(c.tag) is not None for j in jobs)]
    notes = [f"job {job.name}: {job.note}" for job in jobs if job.note]
    if sort is None:
        try:
            chosen: Optional[Column] = resolve(BEST, jobs, columns, "--sort")
        except SweepError:
            chosen = None
            notes.append(f"no job logged {BEST} (no evaluation: none due yet, or an algorithm without one): "
                         "rows in job order")
    else:
        chosen = resolve(sort, jobs, columns, "--sort")
        if chosen not in columns:
            columns.append(chosen)
    if chosen is not None:
        jobs = sort_jobs(jobs, chosen.tag, ascending)
    swept = swept_keys(jobs)
    common = [f"{k}={v}" if v else k for k, v in jobs[0].overrides.items() if k not in swept]
    return Report(Path(sweep), jobs, swept, common, columns, chosen, ascending, notes)


def sort_jobs(jobs: Sequence[Job], tag: str, ascending: bool = False) -> list[Job]:
    """By the table's value of ``tag`` (highest first unless ``ascending``); jobs without one last,
    in job order."""
    have = [j for j in jobs if _finite(j.value(tag))]
    rest = [j for j in jobs if not _finite(j.value(tag))]
    return sorted(have, key=lambda j: j.value(tag), reverse=not ascending) + rest


def _finite(x: Optional[float]) -> bool:
    return x is not None and not math.isnan(x)


def table_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    names = short_names(report.swept)
    header = ["job", *(names[k] for k in report.swept), *(c.header for c in report.columns), "iterations", "status"]
    rows = []
    for job in report.jobs:
        values = [job.value(c.tag) for c in report.columns]
        target = "?" if job.target is None else str(job.target)
        rows.append([job.name, *(job.overrides.get(k, "-") or "-" for k in report.swept),
                     *("-" if v is None else c.fmt.format(v) for c, v in zip(report.columns, values)),
                     f"{job.iterations}/{target}", job.status])
    return header, rows


def format_table(report: Report) -> str:
    header, rows = table_rows(report)
    numeric = {i for i in range(len(header)) if all(_is_number(r[i]) for r in rows)}
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", ""))
    except ValueError:
        return cell == "-"
    return True


def summary_lines(report: Report) -> list[str]:
    counts = {s: sum(j.status == s for j in report.jobs) for s in (FINISHED, INCOMPLETE, NO_LOGS)}
    n = len(report.jobs)
    lines = [f"Sweep {report.sweep}: {n} job{'s' if n > 1 else ''} ("
             + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ")",
             "swept: " + (", ".join(report.swept) or "nothing (every job has the same overrides)"),
             "common: " + (" ".join(report.common) or "-")]
    if report.sort is not None:
        order = "lowest first" if report.ascending else "highest first"
        lines.append(f"sorted by {report.sort.header} ({report.sort.tag}), {order}")
    return lines


def to_dict(report: Report) -> dict:
    """The table as JSON-ready data (None where a job did not log a metric)."""

    def clean(x: Optional[float]) -> Optional[float]:
        return x if _finite(x) else None

    return {
        "sweep": str(report.sweep),
        "swept": report.swept,
        "common_overrides": report.common,
        "sort": None if report.sort is None else {"metric": report.sort.tag, "ascending": report.ascending},
        "columns": {c.header: c.tag for c in report.columns},
        "jobs": [{"job": j.name, "path": str(j.path), "overrides": {k: j.overrides.get(k) for k in report.swept},
                  "status": j.status, "iterations": j.iterations, "target_iterations": j.target,
                  "metrics": {c.tag: clean(j.value(c.tag)) for c in report.columns},
                  **({"note": j.note} if j.note else {})} for j in report.jobs],
    }


# -- the curves ---------------------------------------------------------------------------------
def group_keys(swept: Sequence[str], group_by: Optional[Sequence[str]] = None) -> list[str]:
    """The keys whose values pick a curve's colour: ``group_by`` (full or short names), else the swept
    keys with ``seed`` left out (repeats of one setting share a colour), else every swept key."""
    if group_by:
        names = short_names(swept)
        keys = []
        for g in group_by:
            match = [k for k in swept if g in (k, names[k])]
            if not match:
                raise SweepError(f"--group-by {g}: not a swept key of this sweep. Swept keys: "
                                 + (", ".join(swept) or "none"))
            keys.extend(match)
        return keys
    return [k for k in swept if k != "seed"] or list(swept)


def curve_groups(report: Report, metric: str, keys: Sequence[str]) -> dict[str, list[Job]]:
    """The jobs that logged ``metric``, by their values of ``keys``, each group under its legend label
    (e.g. ``learning_rate=0.001 (jobs 0, 1)``), in job order."""
    names = short_names(keys)
    groups: dict[tuple, list[Job]] = {}
    for job in sorted(report.jobs, key=lambda j: _job_order(j.path)):
        if job.scalars.get(metric):
            groups.setdefault(tuple(job.overrides.get(k, "-") for k in keys), []).append(job)
    out = {}
    for values, members in groups.items():
        label = " ".join(f"{names[k]}={v}" for k, v in zip(keys, values)) or "all jobs"
        out[f"{label} (job{'s' if len(members) > 1 else ''} {', '.join(j.name for j in members)})"] = members
    return out


def plot_curves(report: Report, metric: str, path: Path, keys: Sequence[str]) -> Path:
    """``metric`` over env steps, one line per job, one colour per value of ``keys``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (label, members) in enumerate(curve_groups(report, metric, keys).items()):
        for n, job in enumerate(members):
            steps, vals = zip(*job.scalars[metric])
            ax.plot(steps, vals, color=f"C{i % 10}", alpha=0.85, label=label if n == 0 else None,
                    marker="." if len(steps) < 30 else None)
    ax.set_xlabel("env steps")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{report.sweep.parent.name}/{report.sweep.name}: {metric}, {len(report.jobs)} jobs", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- the command --------------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wildrobot.sweep", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="the sweep's folder: multirun/DATE/TIME (one folder per job inside)")
    parser.add_argument("--sort", default=None, metavar="METRIC",
                        help="a column header or any logged tag (default: best eval, when any job evaluated)")
    parser.add_argument("--ascending", action="store_true", help="lowest first (for errors and falls)")
    parser.add_argument("--metric", default=None, metavar="TAG", help=f"the tag the PNG draws (default: {CURVE})")
    parser.add_argument("--group-by", nargs="+", default=None, metavar="KEY",
                        help="swept keys that pick the colours (default: every swept key but seed)")
    parser.add_argument("--png", default=None, metavar="PATH",
                        help="the PNG file (default: <sweep>/sweep.png; 'none': no PNG)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the table to this JSON file")
    args = parser.parse_args(argv)
    try:
        report = build_report(Path(args.sweep), args.sort, args.ascending)
        keys = group_keys(report.swept, args.group_by)
        curve = _curve(report, args.metric)
    except SweepError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(report)))
    print()
    print(format_table(report))
    for note in report.notes:
        print(f"Note: {note}")
    if args.png != "none":
        if curve is None:
            print(f"Note: no job logged {CURVE}, so no PNG; choose a curve with --metric "
                  f"(logged: {', '.join(logged_tags(report.jobs)) or 'nothing yet'})")
        else:
            png = Path(args.png) if args.png else report.sweep / "sweep.png"
            plot_curves(report, curve, png, keys)
            print(f"Wrote {png} ({curve}; colours: {', '.join(keys) or 'one for all jobs'})")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(to_dict(report), indent=2) + "\n")
        print(f"Wrote {out}")
    return 0


def _curve(report: Report, metric: Optional[str]) -> Optional[str]:
    """The tag the PNG draws: ``metric`` (a ``SweepError`` when no job logged it), else eval/return
    when any job logged it, else None."""
    if metric is None:
        return CURVE if any(j.scalars.get(CURVE) for j in report.jobs) else None
    return resolve(metric, report.jobs, report.columns, "--metric").tag


if __name__ == "__main__":
    sys.exit(main())
