"""Learning-curve plots from TensorBoard event files."""

from __future__ import annotations

import shutil

from wildrobot.plot import labels_for, main


def _is_png(path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_writes_nonempty_pngs_for_one_run(stub_run, capsys):
    run = stub_run
    assert main([str(run)]) == 0
    for name in ("learning_curves", "reward_terms", "training"):
        assert _is_png(run / "plots" / f"{name}.png"), name
    assert "learning_curves.png" in capsys.readouterr().out


def test_several_runs_share_one_plot_labelled_by_their_differing_overrides(stub_run, tmp_path):
    run = stub_run
    # A two-run "sweep": the same events under a second name and a different override.
    sweep = tmp_path / "sweep"
    for i, lr in enumerate(("3e-4", "1e-3")):
        (sweep / str(i) / ".hydra").mkdir(parents=True)
        shutil.copytree(run / "tensorboard", sweep / str(i) / "tensorboard")
        (sweep / str(i) / ".hydra" / "overrides.yaml").write_text(f"- env=stub\n- algo.learning_rate={lr}\n")
    dirs = [sweep / "0" / "tensorboard", sweep / "1" / "tensorboard"]
    assert labels_for(dirs) == ["algo.learning_rate=3e-4", "algo.learning_rate=1e-3"]
    assert main([str(sweep), "--out", str(tmp_path / "out"), "--tags", "episode/return", "eval/*"]) == 0
    assert _is_png(tmp_path / "out" / "custom.png")


def test_plot_of_a_folder_without_events_fails_clearly(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no TensorBoard event files" in capsys.readouterr().err
