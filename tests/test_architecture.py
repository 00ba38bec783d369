"""The layers of docs/architecture.md hold: import-linter's contracts (configured in pyproject.toml)
pass, they catch a lower layer that imports a higher one, and importing an algorithm or an env
leaves Hydra and OmegaConf unloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=env)


def test_the_layer_contracts_hold():
    res = lint_imports(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Contracts: 3 kept, 0 broken." in res.stdout


@pytest.mark.parametrize("module, imports", [
    ("algos/gae.py", "wildrobot.train.runner"),  # an algorithm reaching up into the loop
    ("envs/core.py", "wildrobot.envs.wildrobot"),  # the env interface importing an env
    ("train/checkpoint.py", "wildrobot.train.runner"),  # a phase importing the loop
])
def test_a_lower_layer_importing_a_higher_one_breaks_a_contract(tmp_path, module, imports):
    """A copy of the package with one upward import added (a function-level import counts too)."""
    shutil.copytree(ROOT / "wildrobot", tmp_path / "wildrobot", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "wildrobot" / module
    target.write_text(target.read_text() + f"\n\ndef _upward():\n    import {imports}  # noqa: F401\n")
    res = lint_imports(tmp_path, pythonpath=tmp_path)
    assert res.returncode != 0, res.stdout
    assert "BROKEN" in res.stdout and imports in res.stdout


def modules_loaded_by(*imports: str) -> set[str]:
    """Top-level packages in sys.modules after importing ``imports`` in a fresh interpreter."""
    code = "import sys\n" + "".join(f"import {m}\n" for m in imports) + \
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return set(res.stdout.split())


def test_importing_an_algorithm_or_an_env_never_imports_hydra_or_omegaconf():
    loaded = modules_loaded_by("wildrobot.algos.ppo", "wildrobot.algos.smoke", "wildrobot.envs.wildrobot",
                               "wildrobot.envs.stub", "wildrobot.envs.factory")
    assert "jax" in loaded and "mujoco" in loaded  # the imports did run
    assert not {"hydra", "omegaconf"} & loaded
    assert {"hydra", "omegaconf"} <= modules_loaded_by("wildrobot.cli")  # the edge does load them
