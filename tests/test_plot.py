"""Learning-curve plots from TensorBoard event files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wildrobot.plot import labels_for, load_runs, main
from wildrobot.train.logging import read_scalars


def _is_png(path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(monkeypatch):
    """What each figure saved during the test drew, by file name: (suptitle, {panel title: [(label,
    colour, steps, values) of each line]}, the figure legend's labels)."""
    from matplotlib.figure import Figure

    record = {}
    save = Figure.savefig

    def spy(fig, fname, *args, **kwargs):
        panels = {ax.get_title(): [(line.get_label(), line.get_color(), [float(x) for x in line.get_xdata()],
                                    [float(y) for y in line.get_ydata()]) for line in ax.get_lines()]
                  for ax in fig.axes if ax.get_visible()}
        legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
        record[Path(fname).name] = (fig.get_suptitle(), panels, legend)
        return save(fig, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return record


def _points(scalars, tag):
    steps, values = zip(*scalars[tag])
    return [float(s) for s in steps], [float(v) for v in values]


# what the stub's PPO run logs under each figure's patterns (its reward terms: tracking, action_rate, termination)
LEARNING_CURVES = ["episode/return", "eval/return", "episode/length", "eval/length", "episode/fall", "eval/fall_rate",
                   "env/tracking/velocity_error", "eval/tracking/velocity_error"]
REWARD_TERMS = ["episode/reward/action_rate", "episode/reward/termination", "episode/reward/tracking"]


def test_plot_writes_nonempty_pngs_for_one_run(stub_run, capsys, drawn):
    run = stub_run
    assert [r.label for r in load_runs([str(run)])] == ["run"]
    assert main([str(run)]) == 0
    for name in ("learning_curves", "reward_terms", "training"):
        assert _is_png(run / "plots" / f"{name}.png"), name
    assert "learning_curves.png" in capsys.readouterr().out
    assert sorted(drawn) == ["learning_curves.png", "reward_terms.png", "training.png"]
    scalars = read_scalars(run / "tensorboard")
    title, panels, legend = drawn["learning_curves.png"]
    assert title == "run: learning curves" and legend == []  # one run: no legend
    assert list(panels) == LEARNING_CURVES
    assert list(drawn["reward_terms.png"][1]) == REWARD_TERMS
    training = list(drawn["training.png"][1])
    assert {"loss/total", "loss/value", "ppo/kl", "ppo/action_std", "perf/steps_per_second"} <= set(training)
    assert all(t.split("/")[0] in ("loss", "ppo", "optim") or t == "perf/steps_per_second" for t in training)
    for name in drawn:
        for tag, lines in drawn[name][1].items():  # one line per panel: the run's logged points
            assert [(label, colour) for label, colour, _, _ in lines] == [("run", "C0")], (name, tag)
            assert tuple(lines[0][2:]) == _points(scalars, tag), (name, tag)


def test_several_runs_share_one_plot_labelled_by_their_differing_overrides(stub_run, tmp_path, drawn):
    run = stub_run
    # A two-run "sweep": the same events under a second name and a different override.
    sweep = tmp_path / "sweep"
    for i, lr in enumerate(("3e-4", "1e-3")):
        (sweep / str(i) / ".hydra").mkdir(parents=True)
        shutil.copytree(run / "tensorboard", sweep / str(i) / "tensorboard")
        (sweep / str(i) / ".hydra" / "overrides.yaml").write_text(f"- env=stub\n- algo.learning_rate={lr}\n")
    dirs = [sweep / "0" / "tensorboard", sweep / "1" / "tensorboard"]
    labels = ["algo.learning_rate=3e-4", "algo.learning_rate=1e-3"]
    assert labels_for(dirs) == labels
    assert [(r.path, r.label) for r in load_runs([str(sweep)])] == list(zip(dirs, labels))
    assert main([str(sweep), "--out", str(tmp_path / "out"), "--tags", "episode/return", "eval/*"]) == 0
    assert _is_png(tmp_path / "out" / "custom.png")
    assert list(drawn) == ["custom.png"]
    title, panels, legend = drawn["custom.png"]
    assert title == "2 runs: custom" and legend == labels
    assert list(panels) == ["episode/return", "eval/best", "eval/fall_rate", "eval/length", "eval/return",
                            "eval/tracking/velocity_error"]
    scalars = read_scalars(run / "tensorboard")
    for tag, lines in panels.items():  # one line per run, in its own colour, with the (shared) logged points
        assert [(label, colour) for label, colour, _, _ in lines] == [(labels[0], "C0"), (labels[1], "C1")], tag
        assert all(tuple(line[2:]) == _points(scalars, tag) for line in lines), tag


def test_plot_of_a_folder_without_events_fails_clearly(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no TensorBoard event files" in capsys.readouterr().err
