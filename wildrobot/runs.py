"""Loading a trained (or interrupted) run back for the tools (evaluation, export, sim-to-sim,
benchmarks): its typed config, algorithm, trained state and env, from the checkpoint alone (its
metadata holds the resolved config of the run that wrote it).

Paths are read as ``trainer.resume`` reads them (``wildrobot.train.resume``): a run directory, its
``checkpoints/`` folder, or one checkpoint ``checkpoints/{latest,best}/<step>``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import jax

from wildrobot.config import Config, ConfigError, config_from_dict
from wildrobot.dispatch import trainer_class
from wildrobot.envs.core import Env
from wildrobot.envs.factory import evaluation_config, make_env
from wildrobot.train.checkpoint import Checkpointer, CheckpointError, StateShapeError, saved_steps
from wildrobot.train.resume import resolve_resume

log = logging.getLogger(__name__)
# What evaluation and export read from a train state: the policy and its observation normaliser.
POLICY_FIELDS = ("params", "obs_stats")


class LoadError(RuntimeError):
    """No trained policy at that path; the message says what was found and what is expected."""


@dataclass
class LoadedRun:
    cfg: Config
    run_dir: Path
    step: int
    meta: dict
    algorithm: Any  # e.g. wildrobot.algos.ppo.PPO, built from cfg
    state: Any  # the algorithm's carry at ``step`` (for PPO: PPOState); see load_run for a policy-only load
    env: Env  # the (unbatched) env built from cfg.env


def load_run(path: str | Path, step: Optional[int] = None, which: str = "latest") -> LoadedRun:
    """The run at ``path`` (newest checkpoint of ``which``, or ``step``), or a ``LoadError``.

    When the env state this version builds no longer matches the checkpoint's (a run trained by an
    earlier version whose env kept other fields), only the policy (``POLICY_FIELDS``) is read: the
    rest of ``state`` stays abstract (shapes only), which is all evaluation and export use."""
    if which not in ("latest", "best"):
        raise LoadError(f"which must be 'latest' or 'best'; got {which!r}")
    try:
        return _load(path, step, which)
    except (ConfigError, CheckpointError, KeyError, ValueError, OSError) as e:
        found = _steps_found(Path(path).expanduser())
        raise LoadError(
            f"cannot load a trained policy from {path}: {e}{found}\nExpected a run directory written by run.py "
            f"(with checkpoints/latest/<step>/ inside), its checkpoints/ folder, or one checkpoint "
            f"directory checkpoints/{{latest,best}}/<step>.") from None


def _load(path: str | Path, step: Optional[int], which: str) -> LoadedRun:
    location = resolve_resume(str(path), Path.cwd(), Path("/nonexistent"), option="run")
    step = step if step is not None else location.step
    which = location.which if location.step is not None else which
    ckpt = Checkpointer(location.run_dir / "checkpoints", keep=1_000_000)
    try:
        meta = ckpt.newest_meta(which, step)
        if meta is None:
            found = saved_steps(location.run_dir / "checkpoints").get(which, [])
            what = f"no checkpoint at step {step}" if step is not None and step not in found else "no readable checkpoint"
            raise CheckpointError(f"{what} in {location.run_dir / 'checkpoints' / which}")
        cfg = config_from_dict(meta["config"])
        cfg.trainer.resume = None
        env = make_env(cfg.env)
        algorithm = trainer_class(cfg)(cfg, location.run_dir).make_algorithm(env)
        abstract = jax.eval_shape(algorithm.init, jax.random.key(cfg.seed))
        try:
            state, meta, step = ckpt.restore_newest(abstract, step=step, manager=which)
        except StateShapeError as mismatch:
            state, step = _restore_policy_only(ckpt, abstract, step, which, mismatch)
    finally:
        ckpt.close()
    return LoadedRun(cfg=cfg, run_dir=location.run_dir, step=step, meta=meta, algorithm=algorithm, state=state,
                     env=env)


def _restore_policy_only(ckpt: Checkpointer, abstract: Any, step: Optional[int], which: str,
                         mismatch: StateShapeError) -> tuple[Any, int]:
    fields = {k: getattr(abstract, k) for k in POLICY_FIELDS if hasattr(abstract, k)}
    if len(fields) != len(POLICY_FIELDS) or not hasattr(abstract, "replace"):
        raise mismatch
    step = step if step is not None else max(ckpt.manager(which).all_steps())
    try:
        restored = ckpt.restore_fields(fields, step, which)
    except Exception:  # noqa: BLE001 - the policy itself differs: the shape error says what to do
        raise mismatch from None
    log.warning("the checkpoint's train state differs from what this version builds (an env changed since "
                "the run?); loaded its policy and observation normaliser only, which is what evaluation and "
                "export need (resuming it is not possible)")
    return abstract.replace(**restored), step


def _steps_found(path: Path) -> str:
    """' (steps found: latest [20, 40], best [40])' for a path in or above a run's checkpoints, else ''."""
    for cand in (path, path.parent, path.parent.parent, path.parent.parent.parent):
        found = saved_steps(cand if cand.name == "checkpoints" else cand / "checkpoints")
        if found:
            return " (steps found: " + ", ".join(f"{w} {s}" for w, s in found.items()) + ")"
    return ""


def policy_of(loaded: LoadedRun):
    """``(params, obs_stats, actor obs) -> action``: the run's deterministic, deployable policy."""
    if not hasattr(loaded.algorithm, "deterministic_action"):
        raise LoadError(f"this checkpoint's algorithm ({type(loaded.algorithm).__name__}) has no policy")
    return loaded.algorithm.deterministic_action


def evaluation_env(loaded: LoadedRun, backend: Optional[str] = None, disturbed: bool = False) -> Env:
    """The run's env rebuilt with randomisation, pushes and sensor noise off (``disturbed``: left as
    the run trained with them, for a robustness evaluation); ``backend`` replaces its physics backend
    (``env.sim.backend``) when given."""
    cfg = loaded.cfg.env if disturbed else evaluation_config(loaded.cfg.env)
    if backend is not None:
        cfg = dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, backend=backend))
    return make_env(cfg)


def run_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides a run was started with (``<run>/.hydra/overrides.yaml``, e.g.
    ``["env=stub", "seed=1"]``), Hydra's own left out; [] when the file is missing or unreadable."""
    f = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not f.exists():
        return []
    import yaml

    try:
        return [str(o) for o in (yaml.safe_load(f.read_text()) or []) if not str(o).startswith("hydra")]
    except (yaml.YAMLError, OSError):
        return []
