"""The sweep report: a table of every job of a multirun folder, its JSON and its PNG, read from
event files written here (no training), and one real sweep through both CLIs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, TINY_PPO, run_cli
from wildrobot.sweep import build_report, curve_groups, group_keys, main, table_rows
from wildrobot.train.logging import TensorBoardLogger, read_scalars

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COMMON = ["env=stub", "trainer.iterations=4"]
# job -> (learning rate, seed, eval/best points, eval/tracking/vx_error points, perf/steps_per_second)
FINISHED = {
    "0": ("1e-3", "0", [2.0, 5.0], [0.30, 0.20], [100.0, 300.0]),
    "1": ("1e-3", "1", [3.0, 7.0], [0.25, 0.10], [200.0, 200.0]),
    "2": ("3e-4", "0", [1.0, 4.0], [0.40, 0.35], [50.0, 150.0]),
    "3": ("3e-4", "1", [6.0], [0.15, 0.12], [400.0, 500.0]),
}


def write_job(sweep: Path, name: str, overrides: list[str], scalars: dict[str, list[float]], iterations: int = 4,
              final_checkpoint: bool = True) -> Path:
    """A job folder as run.py -m writes it: .hydra/, events at steps 2, 4, ..., checkpoints/latest/<step>."""
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / ".hydra" / "config.yaml").write_text(f"env:\n  name: stub\ntrainer:\n  iterations: {iterations}\n")
    if scalars:
        logger = TensorBoardLogger(job / "tensorboard")
        for tag, values in scalars.items():
            for i, v in enumerate(values):
                logger.scalars({tag: v}, step=2 * (i + 1))
        logger.close()
    for it in ([iterations] if final_checkpoint else []):
        (job / "checkpoints" / "latest" / str(it)).mkdir(parents=True)
    return job


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Four finished jobs (learning rate x seed), one stopped at iteration 2 of 4, one with no events
    yet and one whose event file is damaged (read-only: tests write their outputs elsewhere)."""
    root = tmp_path_factory.mktemp("multirun") / "2026-12-02" / "10-00-00"
    for name, (lr, seed, best, vx, rate) in FINISHED.items():
        write_job(root, name, [*COMMON, f"algo.learning_rate={lr}", f"seed={seed}"], {
            "eval/best": best, "eval/return": [b - 0.5 for b in best], "eval/tracking/vx_error": vx,
            "eval/fall_rate": [0.5, 0.0], "perf/steps_per_second": rate, "perf/iteration": [2, 4]})
    write_job(root, "4", [*COMMON, "algo.learning_rate=1e-2", "seed=0"],
              {"eval/best": [9.0], "eval/return": [9.0], "perf/iteration": [2]}, final_checkpoint=False)
    write_job(root, "5", [*COMMON, "algo.learning_rate=1e-2", "seed=1"], {}, final_checkpoint=False)
    damaged = write_job(root, "6", [*COMMON, "algo.learning_rate=1e-2", "seed=2"], {}, final_checkpoint=False)
    (damaged / "tensorboard").mkdir()
    payload = b"\xff" * 8  # a complete record whose payload is not an Event
    (damaged / "tensorboard" / "events.out.tfevents.1.host").write_bytes(
        len(payload).to_bytes(8, "little") + b"\0" * 4 + payload + b"\0" * 4)
    return root


def rows_by_job(report) -> dict[str, dict[str, str]]:
    header, rows = table_rows(report)
    return {row[0]: dict(zip(header, row)) for row in rows}


def test_the_table_sorts_jobs_by_best_evaluation_return_and_shows_each_jobs_values(sweep, capsys):
    report = build_report(sweep)
    assert [j.name for j in report.jobs] == ["4", "1", "3", "0", "2", "5", "6"]  # 9, 7, 6, 5, 4, then no logs
    assert report.swept == ["algo.learning_rate", "seed"] and report.common == COMMON
    rows = rows_by_job(report)
    assert rows["1"] == {"job": "1", "learning_rate": "1e-3", "seed": "1", "best eval": "7.00", "vx_error": "0.100",
                         "falls": "0.00", "steps/s": "200", "iterations": "4/4", "status": "finished"}
    assert rows["0"]["steps/s"] == "200" and rows["2"]["steps/s"] == "100"  # the mean over chunks
    assert rows["4"]["iterations"] == "2/4" and rows["4"]["status"] == "incomplete" and rows["4"]["vx_error"] == "-"
    assert rows["5"]["status"] == rows["6"]["status"] == "no logs" and rows["5"]["best eval"] == "-"

    assert main([str(sweep), "--png", "none"]) == 0
    out = capsys.readouterr().out
    assert "7 jobs (4 finished, 1 incomplete, 2 no logs)" in out
    assert "sorted by best eval (eval/best), highest first" in out
    table = [line.split() for line in out.splitlines() if line[:3].strip().isdigit()]
    assert [r[0] for r in table] == ["4", "1", "3", "0", "2", "5", "6"]
    assert "Note: job 6: unreadable event file" in out


def test_sort_by_a_tracking_error_ascending_and_the_json_holds_the_table(sweep, tmp_path, capsys):
    out = tmp_path / "report" / "sweep.json"
    assert main([str(sweep), "--sort", "vx_error", "--ascending", "--png", "none", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [j["job"] for j in data["jobs"]] == ["1", "3", "0", "2", "4", "5", "6"]  # 0.10 .. 0.35, then none
    assert data["sort"] == {"metric": "eval/tracking/vx_error", "ascending": True}
    assert data["swept"] == ["algo.learning_rate", "seed"]
    job3 = data["jobs"][1]
    assert job3["overrides"] == {"algo.learning_rate": "3e-4", "seed": "1"}
    assert job3["metrics"] == {"eval/best": 6.0, "eval/tracking/vx_error": pytest.approx(0.12),
                               "eval/fall_rate": 0.0, "perf/steps_per_second": 450.0}
    assert (job3["status"], job3["iterations"], job3["target_iterations"]) == ("finished", 4, 4)
    assert data["jobs"][4]["metrics"]["eval/tracking/vx_error"] is None
    assert data["jobs"][6]["status"] == "no logs" and "unreadable event file" in data["jobs"][6]["note"]
    # a logged tag that is not a column becomes one (its last value)
    capsys.readouterr()
    assert main([str(sweep), "--sort", "eval/return", "--png", "none"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[5].split()[-3:] == ["eval/return", "iterations", "status"]
    assert [(r.split()[0], r.split()[-3]) for r in lines[6:11]] == [
        ("4", "9"), ("1", "6.5"), ("3", "5.5"), ("0", "4.5"), ("2", "3.5")]


def _spy_on_savefig(monkeypatch) -> dict:
    """What each figure saved afterwards drew, by file name: [(title, [(label, colour, steps, values) of each
    line], legend labels) of each panel]."""
    from matplotlib.figure import Figure

    record = {}
    save = Figure.savefig

    def spy(fig, fname, *args, **kwargs):
        record[Path(fname).name] = [
            (ax.get_title(), [(line.get_label(), line.get_color(), [float(x) for x in line.get_xdata()],
                               [float(y) for y in line.get_ydata()]) for line in ax.get_lines()],
             [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else [])
            for ax in fig.axes]
        return save(fig, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return record


def test_the_png_draws_jobs_of_one_swept_value_in_one_colour(sweep, tmp_path, capsys, monkeypatch):
    report = build_report(sweep)
    keys = group_keys(report.swept)
    assert keys == ["algo.learning_rate"]  # seeds of one setting share a colour
    groups = curve_groups(report, "eval/return", keys)
    assert {label: [j.name for j in jobs] for label, jobs in groups.items()} == {
        "learning_rate=1e-3 (jobs 0, 1)": ["0", "1"], "learning_rate=3e-4 (jobs 2, 3)": ["2", "3"],
        "learning_rate=1e-2 (job 4)": ["4"]}
    assert list(curve_groups(report, "eval/return", group_keys(report.swept, ["seed"]))) == [
        "seed=0 (jobs 0, 2, 4)", "seed=1 (jobs 1, 3)"]

    png = tmp_path / "curves.png"
    drawn = _spy_on_savefig(monkeypatch)
    assert main([str(sweep), "--png", str(png), "--metric", "vx_error"]) == 0
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000
    # one panel, a line per job that logged the metric (jobs 0-3, not 4-6), coloured by learning rate
    [(title, lines, legend)] = drawn["curves.png"]
    assert title == f"{sweep.parent.name}/{sweep.name}: eval/tracking/vx_error, 7 jobs"
    assert [(colour, xs, ys) for _, colour, xs, ys in lines] == [  # (event files hold float32)
        ("C0" if FINISHED[job][0] == "1e-3" else "C1", [2.0, 4.0], pytest.approx(FINISHED[job][3], rel=1e-6))
        for job in ("0", "1", "2", "3")]
    assert legend == ["learning_rate=1e-3 (jobs 0, 1)", "learning_rate=3e-4 (jobs 2, 3)"]
    assert f"Wrote {png} (eval/tracking/vx_error; colours: algo.learning_rate)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["{sweep}", "--sort", "eval/nothing"], "--sort eval/nothing: no job of this sweep logged a metric of that name. "
                                            "Available: the columns best eval, vx_error, falls, steps/s, or eval/best"),
    (["{sweep}", "--metric", "returns"], "--metric returns: no job of this sweep logged"),
    (["{sweep}", "--group-by", "gamma"], "--group-by gamma: not a swept key of this sweep. Swept keys: "
                                         "algo.learning_rate, seed"),
    (["{sweep}/missing"], "missing does not exist. Pass the folder a sweep wrote, multirun/DATE/TIME"),
    (["{sweep}/0"], "is one run, not a sweep"),
    (["{sweep}/../.."], "holds no job folders itself; the sweeps under it are: "),
    (["{empty}"], "holds no job folders (none of its sub-folders has .hydra/ or tensorboard/)"),
])
def test_a_wrong_path_or_metric_exits_2_and_says_what_to_pass(sweep, tmp_path, capsys, args, message):
    assert main([a.format(sweep=sweep, empty=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and message in err
    if "--sort" in args:
        assert "eval/tracking/vx_error" in err  # every logged tag is listed
    if "../.." in args[0]:
        assert str(sweep.resolve().relative_to(sweep.parent.parent.resolve())) in err


def test_a_real_sweep_reported_by_the_cli(tmp_path):
    """run.py -m writes two jobs; the report reads them both as finished, sorted, with the PNG."""
    sweep = tmp_path / "multi"
    res = run_cli(["-m", *TINY_PPO, "trainer.iterations=2", "trainer.log_every=1", "trainer.eval_every=2",
                   "trainer.checkpoint_every=2", "env.episode_length=10",
                   "algo.learning_rate=1e-3,3e-4", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([sys.executable, "-m", "wildrobot.sweep", str(sweep), "--json", str(tmp_path / "t.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "2 jobs (2 finished)" in res.stdout and "swept: algo.learning_rate" in res.stdout
    data = json.loads((tmp_path / "t.json").read_text())
    best = [j["metrics"]["eval/best"] for j in data["jobs"]]
    assert best == sorted(best, reverse=True)
    for job in data["jobs"]:  # each job's best evaluation, as its own event files hold it
        logged = read_scalars(sweep / job["job"] / "tensorboard")
        assert job["metrics"]["eval/best"] == pytest.approx(max(v for _, v in logged["eval/best"]), rel=1e-6)
        assert job["metrics"]["eval/best"] == pytest.approx(max(v for _, v in logged["eval/return"]), rel=1e-6)
    assert {j["overrides"]["algo.learning_rate"] for j in data["jobs"]} == {"0.001", "0.0003"}
    assert all(j["iterations"] == 2 and j["metrics"]["perf/steps_per_second"] > 0 for j in data["jobs"])
    assert (sweep / "sweep.png").read_bytes()[:8] == PNG_MAGIC


def test_an_optuna_search_maximises_each_runs_best_evaluation(tmp_path):
    """`hydra/sweeper=optuna`: each trial's value is the run's best evaluation (what `run.py` returns),
    so Optuna's best value is the highest `eval/best` of the sweep's jobs."""
    import yaml

    sweep = tmp_path / "search"
    res = run_cli(["-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.direction=maximize",
                   "hydra.sweeper.sampler.seed=0", "algo.learning_rate=tag(log, interval(1e-4, 3e-3))", *TINY_PPO,
                   "trainer.iterations=2", "trainer.log_every=1", "trainer.eval_every=2", "trainer.checkpoint_every=2",
                   "env.episode_length=10", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    report = build_report(sweep)
    best = [job.value("eval/best") for job in report.jobs]
    assert len(best) == 2 and result["best_value"] == pytest.approx(max(best), rel=1e-6)
